//! A small plugin host: it loads sockbox's guest as a plugin, grants it one address,
//! and calls its typed `dial` export — once where the grant allows, once where it
//! does not.
//!
//! `cargo run --release --example plugin_host [-- HOST:PORT]`: with no address, it
//! starts a native server on 127.0.0.1 (port 0) to be the plugin's peer.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use sockbox_host::{Policy, Runner, Sandbox};

#[tokio::main]
async fn main() -> Result<()> {
    let peer: SocketAddr = match std::env::args().nth(1) {
        Some(addr) => addr.parse().context("parse HOST:PORT")?,
        None => start_native_peer()?,
    };

    // One runner compiles and links the component once; sandboxes describe instances.
    let runner = Arc::new(Runner::new()?);
    let guest = runner.prepare(&runner.builtin_guest()?)?;
    let host = match peer {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    };
    let grant = format!("tcp://{host}:{}", peer.port());
    let sandbox = Sandbox::builder(runner)
        .policy(Policy::deny_all().allow(&grant)?)
        .max_memory(32 << 20)
        .timeout(Duration::from_secs(10))
        .build();
    let mut plugin = sandbox.instantiate_plugin(&guest).await?;
    println!("granted {grant}");

    let reply = plugin
        .dial(&peer.to_string(), b"hello from the host")
        .await?;
    match reply {
        Ok(bytes) => println!("dial {peer}: {}", String::from_utf8_lossy(&bytes)),
        Err(err) => println!("dial {peer}: {err}"),
    }

    // Any other address is refused by the policy, and the plugin is told so, typed.
    let other = SocketAddr::new(peer.ip(), peer.port().wrapping_add(1).max(1));
    match plugin.dial(&other.to_string(), b"hello?").await? {
        Ok(_) => println!("dial {other}: allowed?!"),
        Err(err) => println!("dial {other}: {err}"),
    }
    Ok(())
}

/// Starts a native server that answers one connection with `echo: ` and what it got.
fn start_native_peer() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind the native peer")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        let mut got = Vec::new();
        conn.read_to_end(&mut got)?;
        conn.write_all(b"echo: ")?;
        conn.write_all(&got)?;
        conn.shutdown(Shutdown::Write)
    });
    Ok(addr)
}

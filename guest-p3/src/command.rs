//! The command behind `wasi:cli/run@0.3.0`: the same commands, output lines, error
//! words and exit statuses as the WASI 0.2 build (`sockbox_guest::invocation` parses
//! the line for both), each connection served by its own task.

use std::time::Duration;

use sockbox_guest::invocation::{self, Invocation, MAX_MESSAGE, MAX_REPLY, Mover, USAGE};
use sockbox_guest::net::{Backoff, Error, Reason};
use wasip3::cli::{environment, exit};

use crate::echo;
use crate::net;
use crate::stdio::{announce, err_line, out};

/// What went wrong, and so which exit status to give.
enum Failure {
    Usage(String),
    Net(Error),
    /// A lookup failed: its reason says `lookup NAME: …` itself.
    Lookup(Reason),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Self::Net(err)
    }
}

/// Runs the command its arguments name.
pub(crate) async fn main() -> Result<(), ()> {
    let args = environment::get_arguments();
    let args: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match run(&args).await {
        Ok(()) => Ok(()),
        Err(Failure::Usage(why)) => {
            err_line(&format!("Error: {why}\n\n{USAGE}")).await;
            exit::exit_with_code(2);
            Err(())
        }
        Err(Failure::Net(err)) => {
            err_line(&format!("Error: {err}")).await;
            Err(())
        }
        Err(Failure::Lookup(reason)) => {
            err_line(&format!("Error: {reason}")).await;
            Err(())
        }
    }
}

async fn run(args: &[&str]) -> Result<(), Failure> {
    match invocation::parse(args).map_err(Failure::Usage)? {
        Invocation::Dial {
            addr,
            message,
            timeout,
        } => dial(addr, message, timeout).await,
        Invocation::Lookup { name } => {
            let ips = net::lookup_host(name).await.map_err(Failure::Lookup)?;
            let lines: String = ips.iter().map(|ip| format!("{ip}\n")).collect();
            out(lines.as_bytes()).await;
            Ok(())
        }
        Invocation::Listen { addr } => listen(addr).await,
        Invocation::Echo { addr, count, mover } => {
            let listener = net::listen(addr).await?;
            announce(listener.local_addr()).await;
            // Copying is this build's faster way: wasmtime-wasi 48 forwards a receive
            // stream to a send stream 8 KiB at a time (`docs/performance.md`).
            let mode = match mover.unwrap_or(Mover::Guest) {
                Mover::Guest => echo::Mode::Copy,
                Mover::Host => echo::Mode::Forward,
            };
            echo::serve(listener, count, mode).await?;
            Ok(())
        }
        Invocation::UdpEcho { addr, count } => {
            let conn = net::listen_packet(addr).await?;
            announce(conn.local_addr()).await;
            echo::serve_udp(&conn, count).await?;
            Ok(())
        }
        Invocation::UdpSend {
            addr,
            message,
            timeout,
        } => {
            let conn = net::dial_udp(addr).await?;
            conn.send_to(message.to_vec(), None).await?;
            let (reply, _) = net::within(timeout, conn.recv_from())
                .await
                .unwrap_or_else(|| {
                    Err(Error::new(
                        "read",
                        "udp",
                        Some(addr.to_owned()),
                        Reason::Timeout,
                    ))
                })?;
            received(&reply).await;
            Ok(())
        }
        Invocation::Pair { addr, wait } => pair(addr, wait).await,
        Invocation::Help => {
            out(format!("{USAGE}\n").as_bytes()).await;
            Ok(())
        }
    }
}

/// The classic client: send a message, half-close, print the reply. With a timeout,
/// the connect and then the wait for the reply each get that long.
async fn dial(addr: &str, message: &[u8], timeout: Option<Duration>) -> Result<(), Failure> {
    let mut conn = net::dial(addr, timeout).await?;
    conn.write(message.to_vec()).await?;
    conn.close_write().await?;
    let (local, peer) = (conn.local_addr(), conn.peer_addr());
    let read_all = async {
        let mut reply = Vec::new();
        let mut buf = Vec::new();
        while (reply.len() as u64) < MAX_REPLY {
            let want = usize::try_from(MAX_REPLY).unwrap_or(usize::MAX) - reply.len();
            buf = conn.read(buf, want.min(16 * 1024)).await?;
            if buf.is_empty() {
                break;
            }
            reply.extend_from_slice(&buf);
        }
        Ok::<_, Error>(reply)
    };
    let reply = net::within(timeout, read_all)
        .await
        .unwrap_or_else(|| Err(Error::on_conn("read", local, peer, Reason::Timeout)))?;
    received(&reply).await;
    Ok(())
}

/// A socket pair over loopback, as Python's `socket.socketpair()` makes one on WASI.
async fn pair(addr: &str, wait: Option<&str>) -> Result<(), Failure> {
    let mut listener = net::listen(addr).await?;
    let at = listener.local_addr();
    announce(at).await;
    if let Some(wait) = wait {
        let mut conn = net::dial(wait, None).await?;
        let mut buf = Vec::new();
        loop {
            buf = conn.read(buf, 16 * 1024).await?;
            if buf.is_empty() {
                break;
            }
        }
    }
    let mut client = net::dial(&at.to_string(), None).await?;
    let mut server = listener.accept().await?;
    client.write(b"p".to_vec()).await?;
    let byte = server.read(Vec::new(), 1).await?;
    server.write(byte).await?;
    client.read(Vec::new(), 1).await?;
    out(format!("pair {} -> {}\n", client.local_addr(), server.local_addr()).as_bytes()).await;
    Ok(())
}

/// The classic server: accept one connection, print its message, reply, close.
async fn listen(addr: &str) -> Result<(), Failure> {
    let mut listener = net::listen(addr).await?;
    announce(listener.local_addr()).await;
    let mut backoff = Backoff::new();
    let mut conn = loop {
        match listener.accept().await {
            Ok(conn) => break conn,
            Err(err) if err.is_temporary() => {
                let delay = backoff.next_delay();
                err_line(&format!("Error: {err}; retrying in {delay:?}")).await;
                net::sleep(delay).await;
            }
            Err(err) => return Err(err.into()),
        }
    };
    let message = conn.read(Vec::new(), MAX_MESSAGE).await?;
    received(&message).await;
    conn.write(invocation::HELLO.to_vec()).await?;
    conn.close_write().await?;
    Ok(())
}

async fn received(bytes: &[u8]) {
    let mut line = Vec::with_capacity(bytes.len() + 11);
    line.extend_from_slice(b"Received: ");
    line.extend_from_slice(bytes);
    line.push(b'\n');
    out(&line).await;
}

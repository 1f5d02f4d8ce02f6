//! A concurrent TCP echo server on `wstd`, the Bytecode Alliance's async runtime for
//! WASI 0.2 guests — a task per connection, no sockbox code — the kind of foreign
//! component people run under sockbox, tested through its harness and benched with
//! `sockbox bench --wasm`.
//!
//! `wstd-echo ADDR [COUNT]`: listen on ADDR, print `listening on <bound addr>`, send
//! each connection back every byte it sends until it closes its side, all at once, and
//! exit 0 once COUNT connections have been served (default: serve forever).
//!
//! Build it with `cargo build --release --target wasm32-wasip2 -p wstd-echo`.

use std::process::ExitCode;

use wstd::io;
use wstd::iter::AsyncIterator as _;
use wstd::net::{TcpListener, TcpStream};

#[wstd::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, count) = match args.as_slice() {
        [addr] => (addr.as_str(), None),
        [addr, count] => match count.parse::<usize>() {
            Ok(count) => (addr.as_str(), Some(count)),
            Err(_) => return usage(&format!("`{count}` is not a count")),
        },
        _ => return usage("expected ADDR [COUNT]"),
    };
    match serve(addr, count).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wstd-echo: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("wstd-echo: {why}\nusage: wstd-echo ADDR [COUNT]");
    ExitCode::from(2)
}

async fn serve(addr: &str, count: Option<usize>) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let mut incoming = listener.incoming();
    let mut serving = Vec::new();
    while count.is_none_or(|count| serving.len() < count) {
        let Some(conn) = incoming.next().await else {
            break;
        };
        let task = wstd::runtime::spawn(echo(conn?));
        if count.is_some() {
            serving.push(task);
        } else {
            task.detach();
        }
    }
    // Each connection's own failure is its own: reported, not the server's end.
    for task in serving {
        if let Err(err) = task.await {
            eprintln!("wstd-echo: connection: {err}");
        }
    }
    Ok(())
}

/// Sends back every byte until the peer closes its side; dropping the stream closes ours.
async fn echo(conn: TcpStream) -> io::Result<()> {
    io::copy(&conn, &conn).await
}

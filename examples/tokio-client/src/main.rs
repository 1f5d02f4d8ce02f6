//! A TCP client on tokio, built for `wasm32-wasip2` with `--cfg tokio_unstable` (as
//! tokio's WASI support asks): the way most Rust network code is written, with no
//! sockbox code — a foreign component for sockbox's harness.
//!
//! `tokio-client ADDR MESSAGE`: connect to ADDR, send MESSAGE, close the sending side,
//! and print `reply: ` and whatever the peer sent back until it closed.
//!
//! Build it with `cargo build --release --target wasm32-wasip2 -p tokio-client`.
//!
//! A tokio *server* does not run on wasm32-wasip2 today, under sockbox or stock
//! wasmtime: mio makes each accepted socket non-blocking with `fcntl(F_SETFL,
//! O_NONBLOCK)`, which the wasi-libc of Rust's `wasm32-wasip2` target answers with
//! `EINVAL` for sockets (no host call is made), so every `accept` fails with
//! `Invalid argument`.

use std::process::ExitCode;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, message] = args.as_slice() else {
        eprintln!("tokio-client: expected ADDR MESSAGE\nusage: tokio-client ADDR MESSAGE");
        return ExitCode::from(2);
    };
    match exchange(addr, message.as_bytes()).await {
        Ok(reply) => {
            println!("reply: {}", String::from_utf8_lossy(&reply));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("tokio-client: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn exchange(addr: &str, message: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.write_all(message).await?;
    conn.shutdown().await?;
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).await?;
    Ok(reply)
}

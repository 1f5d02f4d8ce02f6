//! A TCP echo server written with nothing but `std::net`, the way someone who has never
//! heard of sockbox writes one — the kind of component `sockbox_host::harness` tests.
//!
//! `std-echo ADDR [COUNT]`: listen on ADDR, print `listening on <bound addr>`, send
//! each connection back every byte it sends until it half-closes, print
//! `served <n> bytes` for it, and exit 0 after COUNT connections (default: forever).
//!
//! Build it with `cargo build --release --target wasm32-wasip2 -p std-echo`.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, count) = match args.as_slice() {
        [addr] => (addr, None),
        [addr, count] => match count.parse::<u64>() {
            Ok(count) => (addr, Some(count)),
            Err(_) => return usage(&format!("`{count}` is not a count")),
        },
        _ => return usage("expected ADDR [COUNT]"),
    };
    match serve(addr, count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("std-echo: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("std-echo: {why}\nusage: std-echo ADDR [COUNT]");
    ExitCode::from(2)
}

fn serve(addr: &str, count: Option<u64>) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    let mut served = 0;
    while count.is_none_or(|count| served < count) {
        let (conn, _) = listener.accept()?;
        match echo(conn) {
            Ok(bytes) => println!("served {bytes} bytes"),
            Err(err) => eprintln!("std-echo: connection: {err}"),
        }
        served += 1;
    }
    Ok(())
}

fn echo(mut conn: TcpStream) -> io::Result<u64> {
    let mut buf = [0; 16 * 1024];
    let mut total = 0;
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        conn.write_all(&buf[..n])?;
        total += n as u64;
    }
    conn.shutdown(Shutdown::Write)?;
    Ok(total)
}

//! A guest that exceeds one limit on purpose, named by its argument, or shows what
//! its sandbox gave it:
//!
//! - `grow-memory`: allocates 1 MiB blocks, touching each, until stopped;
//! - `spin`: loops forever without a host call;
//! - `hoard-sockets ADDR`: binds TCP listeners on ADDR (port 0) and keeps every one,
//!   printing `holding N` after each, until stopped;
//! - `flood-stdout`: writes to stdout forever (blocks when nobody reads it);
//! - `ok`: prints `ok` and exits 0, to show an instance still runs afterwards;
//! - `show`: prints each argument as `arg: A` and each environment variable as
//!   `env: K=V`, in order.

use std::net::TcpListener;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["grow-memory"] => grow_memory(),
        ["spin"] => spin(),
        ["hoard-sockets", addr] => hoard_sockets(addr),
        ["flood-stdout"] => flood_stdout(),
        ["ok"] => {
            println!("ok");
            ExitCode::SUCCESS
        }
        ["show", ..] => {
            for arg in std::env::args() {
                println!("arg: {arg}");
            }
            for (key, value) in std::env::vars() {
                println!("env: {key}={value}");
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "usage: limits-guest grow-memory | spin | hoard-sockets ADDR | flood-stdout | ok | show [ARGS]"
            );
            ExitCode::from(2)
        }
    }
}

fn flood_stdout() -> ExitCode {
    let line = [b'x'; 4096];
    let mut out = std::io::stdout().lock();
    loop {
        if std::io::Write::write_all(&mut out, &line).is_err() {
            return ExitCode::FAILURE;
        }
    }
}

fn grow_memory() -> ExitCode {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(vec![1; 1 << 20]);
        println!("holding {} MiB", blocks.len());
    }
}

fn spin() -> ExitCode {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn hoard_sockets(addr: &str) -> ExitCode {
    let mut held = Vec::new();
    loop {
        match TcpListener::bind(addr) {
            Ok(listener) => {
                held.push(listener);
                println!("holding {}", held.len());
            }
            Err(err) => {
                eprintln!("bind {addr}: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
}

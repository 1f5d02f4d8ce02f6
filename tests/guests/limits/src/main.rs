//! A guest that exceeds one limit on purpose, named by its argument, or shows what
//! its sandbox gave it:
//!
//! - `grow-memory`: allocates 1 MiB blocks, touching each, until stopped;
//! - `spin`: loops forever without a host call;
//! - `random-bytes SIZE`: asks `wasi:random` for SIZE bytes at a time, forever (each
//!   call a long host call: 16 MiB take tens of milliseconds);
//! - `poll-clocks N`: polls one ready clock and N distinct idle ones, forever (each
//!   `wasi:io/poll.poll` call a long host call for a large N);
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
        ["random-bytes", size] => random_bytes(size),
        ["poll-clocks", count] => poll_clocks(count),
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
                "usage: limits-guest grow-memory | spin | random-bytes SIZE | poll-clocks N | hoard-sockets ADDR | flood-stdout | ok | show [ARGS]"
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

fn random_bytes(size: &str) -> ExitCode {
    let Ok(size) = size.parse::<u64>() else {
        eprintln!("random-bytes: `{size}` is not a number of bytes");
        return ExitCode::from(2);
    };
    loop {
        std::hint::black_box(wasi::random::random::get_random_bytes(size));
    }
}

fn poll_clocks(count: &str) -> ExitCode {
    use wasi::clocks::monotonic_clock::subscribe_duration;
    let Ok(count) = count.parse::<u64>() else {
        eprintln!("poll-clocks: `{count}` is not a number of clocks");
        return ExitCode::from(2);
    };
    const HOUR: u64 = 3_600_000_000_000;
    let pollables: Vec<_> = std::iter::once(subscribe_duration(0))
        .chain((1..=count).map(|i| subscribe_duration(HOUR + i)))
        .collect();
    let list: Vec<_> = pollables.iter().collect();
    loop {
        std::hint::black_box(wasi::io::poll::poll(&list));
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

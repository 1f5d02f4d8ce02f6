//! The fault suite: one `sockbox run … echo` server (splice, then `--copy`) takes a
//! series of faults, each followed by a fresh client whose random bytes must come back
//! whole, and leaks no descriptor over the series (its open fds counted in `/proc`).
//! The 64 MiB client that never reads is `concurrency.rs`'s stalled client;
//! descriptor exhaustion, the blocked stdout and the socket cap are in `hardening.rs`.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Instant;

use anyhow::{Result, ensure};
use rand::RngExt as _;

use crate::common::{Process, TIMEOUT, echo_round_trip, sockbox};
use crate::hardening::reset_mid_stream;

/// The server's open descriptors.
fn open_fds(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Waits (bounded by [`TIMEOUT`]) until the server holds no more descriptors than
/// `baseline`: the peers' closes reach it asynchronously.
fn settles_to(pid: u32, baseline: usize) -> Result<usize> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let now = open_fds(pid)?;
        if now <= baseline || Instant::now() >= deadline {
            return Ok(now);
        }
        std::thread::yield_now();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A fresh client's random bytes come back whole.
fn fresh_client_is_echoed(addr: SocketAddr, fault: &str) -> Result<()> {
    let mut bytes = vec![0u8; 100_000];
    rand::rng().fill(&mut bytes[..]);
    let echoed = echo_round_trip(addr, &bytes)?;
    ensure!(
        echoed == bytes,
        "after {fault}: echoed {} bytes, or others",
        echoed.len()
    );
    Ok(())
}

/// Sends one byte on each of 500 connections, twice, with a fresh client served
/// between: slowloris, bounded.
fn slowloris(addr: SocketAddr) -> Result<()> {
    let slow: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(addr))
        .collect::<std::io::Result<_>>()?;
    for round in 0..2 {
        for mut conn in &slow {
            conn.write_all(b"s")?;
        }
        fresh_client_is_echoed(addr, &format!("500 slow clients, round {round}"))?;
    }
    Ok(())
}

/// Leaves 50 peers half-closed without reading their echo and 50 idle, while a fresh
/// client is served.
fn half_closed_and_idle(addr: SocketAddr) -> Result<()> {
    let half_closed: Vec<TcpStream> = (0..50)
        .map(|_| {
            let conn = TcpStream::connect(addr)?;
            (&conn).write_all(&[1u8; 1000])?;
            conn.shutdown(Shutdown::Write)?;
            Ok(conn)
        })
        .collect::<std::io::Result<_>>()?;
    let idle: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(addr))
        .collect::<std::io::Result<_>>()?;
    fresh_client_is_echoed(addr, "half-closed and idle peers")?;
    drop((half_closed, idle));
    Ok(())
}

/// A fault a peer can cause, against the server at the address it is given.
type Fault = fn(SocketAddr) -> Result<()>;

/// Connects and closes 1,000 times.
fn accept_storm(addr: SocketAddr) -> Result<()> {
    for _ in 0..1000 {
        drop(TcpStream::connect(addr)?);
    }
    Ok(())
}

fn faults(mode: &[&str]) -> Result<()> {
    let mut command = sockbox();
    command
        .args(["run", "--allow-listen", "tcp://127.0.0.1:*", "--"])
        .args(["echo", "127.0.0.1:0"])
        .args(mode);
    let server = Process::spawn(command)?;
    let addr = server.listening_addr()?;
    let pid = server.pid();
    // Listening, with no connection yet: what the server must come back to.
    let baseline = open_fds(pid)?;
    fresh_client_is_echoed(addr, "start")?;
    let faults: [(&str, Fault); 4] = [
        ("a reset mid-stream", reset_mid_stream),
        ("an accept storm of 1,000", accept_storm),
        ("500 slow clients", slowloris),
        ("half-closed and idle peers", half_closed_and_idle),
    ];
    for (fault, cause) in faults {
        cause(addr)?;
        fresh_client_is_echoed(addr, fault)?;
        let after = settles_to(pid, baseline)?;
        ensure!(
            after <= baseline,
            "after {fault}: the server held {baseline} descriptors before and {after} after"
        );
        eprintln!("faults {mode:?}: survived {fault}; fds {baseline} before, {after} after");
    }
    Ok(())
}

/// Every fault, host-side splice.
#[test]
fn faults_splice() -> Result<()> {
    faults(&[])
}

/// Every fault, the guest copying.
#[test]
fn faults_copy() -> Result<()> {
    faults(&["--copy"])
}

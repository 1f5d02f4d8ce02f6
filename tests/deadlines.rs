//! Timeouts in Go's words: a connect that cannot complete, a silent TCP peer and a
//! silent UDP peer each give `i/o timeout`, after at least the time asked for and well
//! before the test's own bound.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use sockbox_host::Policy;

use crate::common::{TIMEOUT, accept_within, connect_to, start};

/// How long the guest is told to wait, and the most the test lets it take.
const ASKED: Duration = Duration::from_millis(200);
const BOUND: Duration = Duration::from_secs(10);

/// Runs the guest with `args` and returns its stderr and how long it ran; it must exit 1.
fn timed_failure(policy: Policy, args: &[&str]) -> Result<(String, Duration)> {
    let started = Instant::now();
    let done = start(policy, args)?.wait(TIMEOUT)?;
    let took = started.elapsed();
    assert_eq!(done.status.code(), Some(1), "{done}");
    ensure!(
        took >= ASKED && took < BOUND,
        "took {took:?} for a {ASKED:?} timeout: {done}"
    );
    eprintln!("{args:?}: i/o timeout after {took:?}");
    Ok((done.stderr, took))
}

/// `dial --timeout` to a listener whose backlog is full (the test fills it and never
/// accepts): the connect cannot complete, and the guest gives up.
#[test]
fn dial_timeout_on_a_full_backlog() -> Result<()> {
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    listener.bind(&"127.0.0.1:0".parse::<SocketAddr>()?.into())?;
    listener.listen(0)?;
    let addr = listener
        .local_addr()?
        .as_socket()
        .ok_or_else(|| anyhow::anyhow!("an IP listener"))?;
    // Connections the listener never accepts, until its queue is full.
    let fillers: Vec<socket2::Socket> = (0..16)
        .map(|_| -> Result<socket2::Socket> {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            socket.set_nonblocking(true)?;
            let _ = socket.connect(&addr.into());
            Ok(socket)
        })
        .collect::<Result<_>>()?;
    let (stderr, _) = timed_failure(
        connect_to(addr),
        &["dial", &addr.to_string(), "--timeout", "200ms"],
    )?;
    assert_eq!(stderr, format!("Error: dial tcp {addr}: i/o timeout\n"));
    drop(fillers);
    Ok(())
}

/// A peer that accepts and then says nothing: the read deadline fires.
#[test]
fn read_timeout_on_a_silent_tcp_peer() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let guest = start(
        connect_to(addr),
        &["dial", &addr.to_string(), "hello?", "--timeout", "200ms"],
    )?;
    // Held open, silent, until the guest has given up.
    let silent: TcpStream = accept_within(&listener, TIMEOUT)?;
    let started = Instant::now();
    let done = guest.wait(TIMEOUT)?;
    assert_eq!(done.status.code(), Some(1), "{done}");
    ensure!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
    let local = silent.peer_addr()?;
    assert_eq!(
        done.stderr,
        format!("Error: read tcp {local}->{addr}: i/o timeout\n")
    );
    Ok(())
}

/// `udp-send --timeout` to a peer that never answers.
#[test]
fn read_timeout_on_a_silent_udp_peer() -> Result<()> {
    let silent = UdpSocket::bind("127.0.0.1:0")?;
    let addr = silent.local_addr()?;
    let policy = Policy::deny_all().allow(&format!("udp://{addr}"))?;
    let (stderr, _) = timed_failure(
        policy,
        &[
            "udp-send",
            &addr.to_string(),
            "anyone?",
            "--timeout",
            "200ms",
        ],
    )?;
    assert_eq!(stderr, format!("Error: read udp {addr}: i/o timeout\n"));
    Ok(())
}

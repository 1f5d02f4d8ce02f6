//! UDP through the guest: `udp-echo` and `udp-send` against each other and against
//! native `std::net::UdpSocket`, with datagram boundaries kept and every payload checked.

use std::net::{SocketAddr, UdpSocket};

use anyhow::{Result, ensure};
use sockbox_host::Policy;

use crate::common::{Build, TIMEOUT, loopbacks, start, start_build};

/// A policy that lets a guest receive on `127.0.0.1` and `[::1]`, any port (and reply
/// to senders).
fn udp_server() -> Policy {
    Policy::deny_all()
        .allow_listen("udp://{127.0.0.1,[::1]}:*")
        .expect("a valid rule")
}

/// A policy that lets a guest send to exactly `addr`.
fn udp_client(addr: SocketAddr) -> Policy {
    Policy::deny_all()
        .allow(&format!("udp://{addr}"))
        .expect("a valid rule")
}

/// A native socket on loopback that gives up after [`TIMEOUT`].
fn native_socket() -> Result<UdpSocket> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    Ok(socket)
}

/// `udp-send` in one instance, `udp-echo` in another, on each loopback: the message
/// comes back.
#[test]
fn guest_to_guest_round_trip() -> Result<()> {
    for host in loopbacks() {
        let server = start(
            udp_server(),
            &["udp-echo", &format!("{host}:0"), "--count", "1"],
        )?;
        let addr = server.listening_addr(TIMEOUT)?;
        let client = start(
            udp_client(addr),
            &[
                "udp-send",
                &addr.to_string(),
                "over udp",
                "--timeout",
                "10s",
            ],
        )?
        .wait(TIMEOUT)?;
        ensure!(client.status.success(), "{host}: {client}");
        assert_eq!(client.stdout, "Received: over udp\n");
        let server = server.wait(TIMEOUT)?;
        ensure!(server.status.success(), "{server}");
    }
    Ok(())
}

/// 1 B, 1,400 B and 65,507 B (the IPv4 maximum) datagrams come back from `udp-echo`
/// one for one, each whole and in its own datagram. Both builds of the guest.
#[test]
fn datagram_boundaries_are_kept() -> Result<()> {
    for build in [Build::P2, Build::P3] {
        datagram_boundaries_are_kept_by(build)?;
    }
    Ok(())
}

fn datagram_boundaries_are_kept_by(build: Build) -> Result<()> {
    let server = start_build(
        build,
        udp_server(),
        &["udp-echo", "127.0.0.1:0", "--count", "3"],
    )?;
    let addr = server.listening_addr(TIMEOUT)?;
    let socket = native_socket()?;
    let mut buf = vec![0; 65_536];
    for size in [1, 1400, 65_507] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        socket.send_to(&payload, addr)?;
        let (n, from) = socket.recv_from(&mut buf)?;
        assert_eq!(from, addr);
        assert_eq!(n, size, "a {size} B datagram came back as {n} B");
        ensure!(buf[..n] == payload[..], "the {size} B datagram changed");
    }
    let server = server.wait(TIMEOUT)?;
    ensure!(server.status.success(), "{server}");
    Ok(())
}

/// A native echo peer answers the guest's `udp-send`.
#[test]
fn guest_client_and_native_server() -> Result<()> {
    let socket = native_socket()?;
    let addr = socket.local_addr()?;
    let client = start(
        udp_client(addr),
        &[
            "udp-send",
            &addr.to_string(),
            "to native",
            "--timeout",
            "10s",
        ],
    )?;
    let mut buf = [0; 100];
    let (n, from) = socket.recv_from(&mut buf)?;
    assert_eq!(&buf[..n], b"to native");
    socket.send_to(b"from native", from)?;
    let client = client.wait(TIMEOUT)?;
    ensure!(client.status.success(), "{client}");
    assert_eq!(client.stdout, "Received: from native\n");
    Ok(())
}

/// A datagram one byte over the IPv4 maximum fails with one clear line, not a trap.
#[test]
fn oversized_datagram_is_a_clear_error() -> Result<()> {
    let socket = native_socket()?;
    let addr = socket.local_addr()?;
    let message = "x".repeat(65_508);
    let client = start(
        udp_client(addr),
        &["udp-send", &addr.to_string(), &message, "--timeout", "10s"],
    )?
    .wait(TIMEOUT)?;
    assert_eq!(client.status.code(), Some(1), "{client}");
    assert_eq!(
        client.stderr,
        format!("Error: write udp {addr}: message too long\n")
    );
    Ok(())
}

/// 1,000 datagrams through one `udp-echo`, each payload distinct and checked; a lost
/// datagram is counted and reported rather than waited for forever.
#[test]
fn a_thousand_datagrams_through_udp_echo() -> Result<()> {
    const COUNT: u32 = 1000;
    let server = start(
        udp_server(),
        &["udp-echo", "127.0.0.1:0", "--count", &COUNT.to_string()],
    )?;
    let addr = server.listening_addr(TIMEOUT)?;
    let socket = native_socket()?;
    // A lost datagram costs this long, not the whole test's bound.
    socket.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    let mut buf = [0; 64];
    let mut lost = 0;
    for i in 0..COUNT {
        let payload = format!("datagram {i}");
        socket.send_to(payload.as_bytes(), addr)?;
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => assert_eq!(&buf[..n], payload.as_bytes(), "datagram {i}"),
            Err(_) => lost += 1,
        }
    }
    ensure!(
        lost == 0,
        "{lost} of {COUNT} datagrams were lost on loopback"
    );
    let server = server.wait(TIMEOUT)?;
    ensure!(server.status.success(), "{server}");
    Ok(())
}

/// A burst from many peers at once: 32 sockets each send 8 datagrams before reading
/// any reply; every peer gets exactly its own 8 back, in the order it sent them, and
/// the server exits after answering all 256.
#[test]
fn a_burst_from_many_peers_is_answered_to_each() -> Result<()> {
    const PEERS: usize = 32;
    const EACH: usize = 8;
    let server = start(
        udp_server(),
        &[
            "udp-echo",
            "127.0.0.1:0",
            "--count",
            &(PEERS * EACH).to_string(),
        ],
    )?;
    let addr = server.listening_addr(TIMEOUT)?;
    let peers = (0..PEERS)
        .map(|_| native_socket())
        .collect::<Result<Vec<_>>>()?;
    for round in 0..EACH {
        for (peer, socket) in peers.iter().enumerate() {
            socket.send_to(format!("peer {peer} datagram {round}").as_bytes(), addr)?;
        }
    }
    let mut buf = [0; 64];
    for (peer, socket) in peers.iter().enumerate() {
        for round in 0..EACH {
            let (n, from) = socket.recv_from(&mut buf)?;
            assert_eq!(from, addr);
            assert_eq!(
                String::from_utf8_lossy(&buf[..n]),
                format!("peer {peer} datagram {round}")
            );
        }
    }
    let server = server.wait(TIMEOUT)?;
    ensure!(server.status.success(), "{server}");
    Ok(())
}

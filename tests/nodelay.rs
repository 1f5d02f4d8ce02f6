//! `TCP_NODELAY` on the guest's TCP sockets (`host/src/wasi/nodelay.rs`): on by
//! default, as Go sets it, for a listener, the connections it accepts and a dialed
//! connection, in both builds of the guest; off with `tcp_nodelay(false)`.
//!
//! The guests run in this process (the harness), so each test finds the guest's socket
//! among this process's descriptors by its addresses and reads the option there.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};

use anyhow::{Context as _, Result, bail};
use rustix::net::sockopt;
use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

use crate::common::{
    Build, HARNESS, Process, TIMEOUT, accept_within, connect_to, serve_on, sockbox,
};

/// Reads `TCP_NODELAY` on this process's socket bound to `local` and, when given,
/// connected to `peer` (else listening).
fn nodelay_of(local: SocketAddr, peer: Option<SocketAddr>) -> Result<bool> {
    nodelay_in(getpid(), local, peer)
}

/// [`nodelay_of`] for process `pid` (this one, or a child).
fn nodelay_in(pid: Pid, local: SocketAddr, peer: Option<SocketAddr>) -> Result<bool> {
    let process = pidfd_open(pid, PidfdFlags::empty())?;
    for entry in std::fs::read_dir(format!("/proc/{}/fd", pid.as_raw_nonzero()))? {
        let Some(fd) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(socket) = pidfd_getfd(&process, fd, PidfdGetfdFlags::empty()) else {
            continue;
        };
        let addr = |got: rustix::io::Result<rustix::net::SocketAddrAny>| {
            got.ok().and_then(|addr| SocketAddr::try_from(addr).ok())
        };
        if addr(rustix::net::getsockname(&socket)) != Some(local) {
            continue;
        }
        let matches = match peer {
            Some(peer) => {
                let got = rustix::net::getpeername(&socket).ok().flatten();
                got.and_then(|got| SocketAddr::try_from(got).ok()) == Some(peer)
            }
            None => sockopt::socket_acceptconn(&socket).unwrap_or(false),
        };
        if matches {
            return Ok(sockopt::tcp_nodelay(&socket)?);
        }
    }
    bail!("no socket of this process is {local} to {peer:?}")
}

/// The guest's listener and the connection it accepted have the option exactly when
/// the sandbox asks for it (the default); both builds.
#[test]
fn a_listener_and_its_connections_get_it_by_default() -> Result<()> {
    for build in [Build::P2, Build::P3] {
        for on in [true, false] {
            let sandbox = HARNESS
                .sandbox()
                .policy(serve_on("127.0.0.1"))
                .tcp_nodelay(on);
            let server = HARNESS.spawn(
                sandbox,
                build.guest(),
                ["echo", "127.0.0.1:0", "--count", "1"],
            )?;
            let addr = server.listening_addr(TIMEOUT)?;
            let mut client = TcpStream::connect(addr)?;
            client.set_read_timeout(Some(TIMEOUT))?;
            std::io::Write::write_all(&mut client, b"ping")?;
            let mut echoed = [0; 4];
            client.read_exact(&mut echoed)?;
            let what = format!("{build:?}, tcp_nodelay({on})");
            assert_eq!(
                nodelay_of(addr, None).context(what.clone())?,
                on,
                "{what}: listener"
            );
            let accepted = nodelay_of(addr, Some(client.local_addr()?)).context(what.clone())?;
            assert_eq!(accepted, on, "{what}: accepted connection");
            client.shutdown(std::net::Shutdown::Write)?;
            server.wait(TIMEOUT)?.assert_success();
        }
    }
    Ok(())
}

/// A connection the guest dials has the option exactly when the sandbox asks for it.
#[test]
fn a_dialed_connection_gets_it_by_default() -> Result<()> {
    for build in [Build::P2, Build::P3] {
        for on in [true, false] {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let target = listener.local_addr()?;
            let sandbox = HARNESS.sandbox().policy(connect_to(target)).tcp_nodelay(on);
            let client = HARNESS.spawn(sandbox, build.guest(), ["dial", &target.to_string()])?;
            let mut conn = accept_within(&listener, TIMEOUT)?;
            let what = format!("{build:?}, tcp_nodelay({on})");
            let dialed = nodelay_of(conn.peer_addr()?, Some(target)).context(what.clone())?;
            assert_eq!(dialed, on, "{what}: dialed connection");
            conn.set_read_timeout(Some(TIMEOUT))?;
            let mut sent = Vec::new();
            conn.read_to_end(&mut sent)?;
            std::io::Write::write_all(&mut conn, b"pong")?;
            drop(conn);
            client.wait(TIMEOUT)?.assert_success();
        }
    }
    Ok(())
}

/// A bind the policy refuses on the port it got is undone by putting a fresh socket in
/// the guest's socket's place: made as any other, it has the option too (shown on the
/// connection the guest then dials with it; WASI 0.2's raw calls, `p2-poll-guest`).
#[test]
fn the_socket_replacing_a_refused_bind_gets_it() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let target = listener.local_addr()?;
    // Port 0 is asked for and allowed; the port it gets is denied.
    let policy = sockbox_host::Policy::deny_all()
        .allow_listen("tcp://127.0.0.2:*")?
        .deny("tcp://127.0.0.2:1-65535")?
        .allow(&format!("tcp://{target}"))?;
    let guest = HARNESS.component(include_bytes!(env!("P2_POLL_WASM")))?;
    let client = HARNESS.start(
        &guest,
        policy,
        ["refused-bind-then-dial", "127.0.0.2:0", &target.to_string()],
    )?;
    let conn = accept_within(&listener, TIMEOUT)?;
    assert!(nodelay_of(conn.peer_addr()?, Some(target))?);
    drop(conn);
    let done = client.wait(TIMEOUT)?;
    done.assert_success();
    assert_eq!(done.stdout, "connected\n");
    Ok(())
}

/// `sockbox run` sets it on the guest's listener, and `--no-tcp-nodelay` leaves it off.
#[test]
fn sockbox_run_sets_it_unless_told_not_to() -> Result<()> {
    for (flags, on) in [(&[][..], true), (&["--no-tcp-nodelay"][..], false)] {
        let mut command = sockbox();
        command
            .args(["run", "--allow-listen", "tcp://127.0.0.1:*"])
            .args(flags)
            .args(["--", "echo", "127.0.0.1:0", "--count", "1"]);
        let server = Process::spawn(command)?;
        let addr = server.listening_addr()?;
        let pid = Pid::from_raw(i32::try_from(server.pid())?).context("a process id")?;
        assert_eq!(nodelay_in(pid, addr, None)?, on, "{flags:?}");
        let mut client = TcpStream::connect(addr)?;
        std::io::Write::write_all(&mut client, b"ping")?;
        client.shutdown(std::net::Shutdown::Write)?;
        client.set_read_timeout(Some(TIMEOUT))?;
        client.read_to_end(&mut Vec::new())?;
        assert_eq!(server.wait()?.code()?, 0, "{flags:?}");
    }
    Ok(())
}

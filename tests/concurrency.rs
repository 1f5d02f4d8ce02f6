//! `echo` serves every connection at once from one instance, in both modes: the host
//! splicing the bytes, and the guest copying them. A server that served connections
//! one after another fails both tests here: the first by deadlock (every client waits
//! for all the others' first echo), the second by stalling behind the client that
//! stopped reading.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};

use crate::common::{Build, TIMEOUT, echo_server_build};

const CLIENTS: usize = 200;
const HALF: usize = 32 * 1024;

/// Each client's 64 KiB: its own pattern, so a byte sent to the wrong client shows.
fn payload(client: usize) -> Vec<u8> {
    (0..2 * HALF)
        .map(|i| (i.wrapping_mul(31) ^ client.wrapping_mul(131)) as u8)
        .collect()
}

/// A barrier that fails instead of waiting forever.
struct Gate {
    arrived: Mutex<usize>,
    all: Condvar,
}

impl Gate {
    fn pass(&self, timeout: Duration) -> Result<()> {
        let mut arrived = self.arrived.lock().expect("not poisoned");
        *arrived += 1;
        self.all.notify_all();
        let (arrived, waited) = self
            .all
            .wait_timeout_while(arrived, timeout, |arrived| *arrived < CLIENTS)
            .expect("not poisoned");
        ensure!(
            !waited.timed_out(),
            "only {} of {CLIENTS} clients got their first echo",
            *arrived
        );
        Ok(())
    }
}

/// One client: the first half and its echo, the gate, the second half, half-close,
/// and the rest of the echo; every byte checked.
fn client(addr: SocketAddr, id: usize, gate: &Gate) -> Result<()> {
    let sent = payload(id);
    let mut conn = TcpStream::connect(addr).context("connect")?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.write_all(&sent[..HALF])?;
    let mut echoed = vec![0; HALF];
    conn.read_exact(&mut echoed)
        .context("read the first half")?;
    ensure!(
        echoed == sent[..HALF],
        "client {id}: the first half came back changed"
    );
    gate.pass(TIMEOUT)?;
    conn.write_all(&sent[HALF..])?;
    conn.shutdown(Shutdown::Write)?;
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest)
        .context("read the second half")?;
    ensure!(
        rest == sent[HALF..],
        "client {id}: the second half came back changed"
    );
    Ok(())
}

pub(crate) fn two_hundred_clients_at_once(build: Build, mode: &[&str]) -> Result<()> {
    let (server, addr) = echo_server_build(build, "127.0.0.1", CLIENTS as u32, mode)?;
    let gate = Arc::new(Gate {
        arrived: Mutex::new(0),
        all: Condvar::new(),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || client(addr, id, &gate))
        })
        .collect();
    for (id, client) in clients.into_iter().enumerate() {
        client
            .join()
            .expect("client thread")
            .with_context(|| format!("client {id}\n{}", server.output_report()))?;
    }
    let output = server.wait(TIMEOUT)?;
    output.assert_success();
    assert_eq!(output.stderr, "");
    Ok(())
}

/// 200 clients exchange 64 KiB each at once through the splicing `echo`.
#[test]
fn two_hundred_clients_at_once_splice() -> Result<()> {
    two_hundred_clients_at_once(Build::P2, &[])
}

/// 200 clients exchange 64 KiB each at once through the copying `echo --copy`.
#[test]
fn two_hundred_clients_at_once_copy() -> Result<()> {
    two_hundred_clients_at_once(Build::P2, &["--copy"])
}

/// A client that sends 64 MiB and never reads fills its own buffers; another client's
/// round trip still completes, and the stalled one is cut off afterwards.
pub(crate) fn stalled_client_does_not_stall_others(build: Build, mode: &[&str]) -> Result<()> {
    let (server, addr) = echo_server_build(build, "127.0.0.1", 2, mode)?;

    let stalled = TcpStream::connect(addr)?;
    let mut writer = stalled.try_clone()?;
    let flood = std::thread::spawn(move || {
        let chunk = vec![7u8; 64 * 1024];
        // Blocks once every buffer between here and the server is full; fails when the
        // test shuts the socket down.
        (0..1024).try_for_each(|_| writer.write_all(&chunk))
    });

    let mut other = TcpStream::connect(addr)?;
    other.set_read_timeout(Some(TIMEOUT))?;
    let sent = payload(1);
    other.write_all(&sent)?;
    other.shutdown(Shutdown::Write)?;
    let mut echoed = Vec::new();
    if let Err(err) = other.read_to_end(&mut echoed) {
        bail!(
            "the other client stalled: {err}\n{}",
            server.output_report()
        );
    }
    assert!(echoed == sent, "the other client's bytes came back changed");
    assert!(
        !flood.is_finished(),
        "the stalled client's 64 MiB should not all fit"
    );

    stalled.shutdown(Shutdown::Both)?;
    assert!(flood.join().expect("flood thread").is_err());
    // Cut it off for good: closed with a zero linger, it resets. (After a shutdown
    // alone, the server's pending echo waits for a zero window to open, which takes
    // TCP's persist timer, backed off to seconds, to find out.)
    socket2::SockRef::from(&stalled).set_linger(Some(Duration::ZERO))?;
    drop(stalled);
    // The server counts the cut-off connection as served (reporting it) and exits 0.
    server.wait(TIMEOUT)?.assert_success();
    Ok(())
}

/// Splice mode: backpressure is per connection.
#[test]
fn stalled_client_does_not_stall_others_splice() -> Result<()> {
    stalled_client_does_not_stall_others(Build::P2, &[])
}

/// Copy mode: backpressure is per connection.
#[test]
fn stalled_client_does_not_stall_others_copy() -> Result<()> {
    stalled_client_does_not_stall_others(Build::P2, &["--copy"])
}

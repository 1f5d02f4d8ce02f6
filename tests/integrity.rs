//! Bytes survive the sandbox exactly: large random streams in uneven chunks, and
//! half-closed connections that still receive everything.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

use crate::common::{
    Build, TIMEOUT, echo_round_trip, echo_server, echo_server_build, loopbacks, start,
};
use anyhow::{Result, ensure};
use rand::rngs::StdRng;
use rand::{Rng as _, RngExt as _, SeedableRng as _};

/// 8 MiB of random bytes written in uneven chunks come back from `echo` identical, in order.
#[test]
fn eight_mib_random_through_echo() -> Result<()> {
    eight_mib_random_through(Build::P2, &[])
}

/// 8 MiB in uneven chunks, each way at once, through `build`'s `echo` with `mode`.
pub(crate) fn eight_mib_random_through(build: Build, mode: &[&str]) -> Result<()> {
    for host in loopbacks() {
        let mut rng = StdRng::seed_from_u64(0x50c6b0c5);
        let mut payload = vec![0; 8 << 20];
        rng.fill_bytes(&mut payload);
        let chunks: Vec<usize> = std::iter::repeat_with(|| rng.random_range(1..=70_000))
            .take(1000)
            .collect();

        let (server, addr) = echo_server_build(build, host, 1, mode)?;
        let conn = TcpStream::connect(addr)?;
        conn.set_read_timeout(Some(TIMEOUT))?;
        let mut writer = conn.try_clone()?;
        let sent = payload.clone();
        let sending = std::thread::spawn(move || -> std::io::Result<()> {
            let mut rest = &sent[..];
            for size in chunks.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*size).min(rest.len()));
                writer.write_all(chunk)?;
                rest = tail;
            }
            writer.shutdown(Shutdown::Write)
        });
        let mut echoed = Vec::with_capacity(payload.len());
        (&conn).read_to_end(&mut echoed)?;
        sending.join().expect("the sender does not panic")?;

        assert_eq!(echoed.len(), payload.len(), "echoed length");
        let first_difference = echoed.iter().zip(&payload).position(|(a, b)| a != b);
        assert_eq!(first_difference, None, "echoed bytes differ");
        let server = server.wait(TIMEOUT)?;
        ensure!(server.status.success(), "{server}");
    }
    Ok(())
}

/// A client that half-closes first still receives everything echoed after its FIN.
#[test]
fn half_closed_client_still_receives() -> Result<()> {
    for host in loopbacks() {
        let (server, addr) = echo_server(host, 1)?;
        let message = vec![b'x'; 300_000];
        let echoed = echo_round_trip(addr, &message)?;
        assert_eq!(echoed.len(), message.len());
        assert!(echoed == message);
        let server = server.wait(TIMEOUT)?;
        ensure!(server.status.success(), "{server}");
    }
    Ok(())
}

/// The guest's `dial` half-closes after sending, and still reads a reply the peer sends afterwards.
#[test]
fn guest_half_close_then_reads_reply() -> Result<()> {
    for host in loopbacks() {
        let (server, addr) = echo_server(host, 1)?;
        let client = start(
            crate::common::connect_to(addr),
            &["dial", &addr.to_string(), "round trip"],
        )?;
        let client = client.wait(TIMEOUT)?;
        ensure!(client.status.success(), "{client}");
        assert_eq!(client.stdout, "Received: round trip\n");
        let server = server.wait(TIMEOUT)?;
        ensure!(server.status.success(), "{server}");
    }
    Ok(())
}

/// A peer that resets its connection costs `echo` that connection only: one error line
/// in Go's words (`readfrom` with `--forward`, as Go's `io.Copy` into a TCP connection
/// says; `read` with `--copy`), and the next connection is served. Both builds, both modes.
#[test]
fn peer_reset_is_one_error_line_and_serving_goes_on() -> Result<()> {
    for (build, mode, host) in every_build_mode_and_host() {
        let (server, addr) = echo_server_build(build, host, 2, mode)?;
        let mut rude = TcpStream::connect(addr)?;
        rude.set_read_timeout(Some(TIMEOUT))?;
        // One echo back proves the guest has accepted this connection and reads from it.
        rude.write_all(b"x")?;
        let mut first = [0; 1];
        rude.read_exact(&mut first)?;
        // Closing with a zero linger sends RST instead of FIN.
        socket2::SockRef::from(&rude).set_linger(Some(std::time::Duration::ZERO))?;
        drop(rude);
        assert_eq!(echo_round_trip(addr, b"polite")?, b"polite");
        let server = server.wait(TIMEOUT)?;
        ensure!(server.status.success(), "{build:?} {mode:?}: {server}");
        let lines: Vec<&str> = server.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{build:?} {mode:?}: {server}");
        let op = if mode == ["--forward"] {
            "readfrom"
        } else {
            "read"
        };
        assert!(
            lines[0].starts_with(&format!("Error: {op} tcp {addr}->{host}:"))
                && lines[0].ends_with(": connection reset by peer"),
            "{build:?} {mode:?}: {server}"
        );
    }
    Ok(())
}

/// Every build of the guest, in each echo mode (`--forward`: the host moves the bytes;
/// `--copy`), on each loopback.
fn every_build_mode_and_host() -> Vec<(Build, &'static [&'static str], &'static str)> {
    let mut cases = Vec::new();
    for build in [Build::P2, Build::P3] {
        for mode in [&["--forward"][..], &["--copy"][..]] {
            for host in loopbacks() {
                cases.push((build, mode, host));
            }
        }
    }
    cases
}

/// How many MiB [`integrity_under_load`] streams: `SOCKBOX_INTEGRITY_MIB`, else the
/// full 256 (about a second per mode here, so CI runs the full size too).
fn integrity_mib() -> usize {
    std::env::var("SOCKBOX_INTEGRITY_MIB")
        .ok()
        .and_then(|mib| mib.parse().ok())
        .unwrap_or(256)
}

/// The stream's bytes: 64 KiB blocks from one seeded generator, so the reader can
/// make the same sequence again to check it without holding it all.
struct Stream(StdRng);

impl Stream {
    const BLOCK: usize = 64 << 10;

    fn new() -> Self {
        Self(StdRng::seed_from_u64(0x1de9_1234))
    }

    fn next_block(&mut self, block: &mut [u8]) {
        self.0.fill_bytes(block);
    }
}

/// `SOCKBOX_INTEGRITY_MIB` MiB of random bytes in random chunks come back from `echo`
/// identical, every byte checked, while 200 ping-pong connections run on the same
/// server and every one of their echoes is checked too.
fn integrity_under_load(mode: &[&str]) -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let total = integrity_mib() << 20;
    let args: Vec<&str> = ["echo", "127.0.0.1:0"]
        .into_iter()
        .chain(mode.iter().copied())
        .collect();
    let server = start(crate::common::serve_on("127.0.0.1"), &args)?;
    let addr = server.listening_addr(TIMEOUT)?;
    let stop = AtomicBool::new(false);
    let round_trips = AtomicU64::new(0);

    std::thread::scope(|scope| -> Result<()> {
        let pingers: Vec<_> = (0..200u8)
            .map(|id| {
                let (stop, round_trips) = (&stop, &round_trips);
                scope.spawn(move || -> Result<u64> {
                    let mut conn = TcpStream::connect(addr)?;
                    conn.set_read_timeout(Some(TIMEOUT))?;
                    let ping = [id; 64];
                    let mut pong = [0u8; 64];
                    let mut done = 0;
                    while done == 0 || !stop.load(Ordering::Relaxed) {
                        conn.write_all(&ping)?;
                        conn.read_exact(&mut pong)?;
                        ensure!(pong == ping, "ping-pong {id}: echoed other bytes");
                        done += 1;
                    }
                    round_trips.fetch_add(done, Ordering::Relaxed);
                    Ok(done)
                })
            })
            .collect();

        let conn = TcpStream::connect(addr)?;
        conn.set_read_timeout(Some(TIMEOUT))?;
        let mut writer = conn.try_clone()?;
        let sending = scope.spawn(move || -> std::io::Result<()> {
            let mut sizes = StdRng::seed_from_u64(7);
            let mut stream = Stream::new();
            let mut block = vec![0; Stream::BLOCK];
            for _ in 0..total / Stream::BLOCK {
                stream.next_block(&mut block);
                let mut rest = &block[..];
                while !rest.is_empty() {
                    let size = sizes.random_range(1..=70_000).min(rest.len());
                    writer.write_all(&rest[..size])?;
                    rest = &rest[size..];
                }
            }
            writer.shutdown(Shutdown::Write)
        });
        let mut expected = Stream::new();
        let mut want = vec![0; Stream::BLOCK];
        let mut got = vec![0; Stream::BLOCK];
        for index in 0..total / Stream::BLOCK {
            expected.next_block(&mut want);
            (&conn).read_exact(&mut got)?;
            if let Some(at) = got.iter().zip(&want).position(|(a, b)| a != b) {
                anyhow::bail!("byte {} differs", index * Stream::BLOCK + at);
            }
        }
        let mut tail = Vec::new();
        (&conn).read_to_end(&mut tail)?;
        ensure!(tail.is_empty(), "{} bytes more than were sent", tail.len());
        sending.join().expect("the sender does not panic")?;

        stop.store(true, Ordering::Relaxed);
        for pinger in pingers {
            let done = pinger.join().expect("a ping-pong client does not panic")?;
            ensure!(done > 0, "a ping-pong connection got no echo");
        }
        Ok(())
    })?;
    eprintln!(
        "integrity {mode:?}: {total} bytes checked, {} ping-pong round trips checked alongside",
        round_trips.load(Ordering::Relaxed)
    );
    server.stop();
    Ok(())
}

/// Integrity under load, host-side splice.
#[test]
fn integrity_under_load_splice() -> Result<()> {
    integrity_under_load(&[])
}

/// Integrity under load, the guest copying.
#[test]
fn integrity_under_load_copy() -> Result<()> {
    integrity_under_load(&["--copy"])
}

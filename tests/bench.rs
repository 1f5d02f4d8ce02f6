//! `sockbox bench` measures real servers and checks every echoed byte: a server that
//! corrupts or drops a byte fails the run with one line saying where, and a good run
//! writes its table, JSON and chart.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};

use anyhow::Result;

use crate::common::{Process, sockbox};

/// How a test server mangles the echo.
#[derive(Clone, Copy)]
enum Fault {
    /// Flips one bit of the byte at this offset of the connection's echo.
    FlipAt(usize),
    /// Closes the connection after echoing this many bytes.
    CloseAfter(usize),
}

/// A native echo server, a thread per connection, that mangles its echo on purpose.
fn faulty_server(fault: Fault) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || mangle(conn, fault));
        }
    });
    Ok(addr)
}

fn mangle(mut conn: TcpStream, fault: Fault) -> std::io::Result<()> {
    let mut buf = vec![0; 64 * 1024];
    let mut offset = 0;
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return conn.shutdown(Shutdown::Write);
        }
        let chunk = &mut buf[..n];
        match fault {
            Fault::FlipAt(at) if (offset..offset + n).contains(&at) => chunk[at - offset] ^= 0x20,
            Fault::CloseAfter(limit) if offset + n > limit => {
                conn.write_all(&chunk[..limit - offset])?;
                return conn.shutdown(Shutdown::Both);
            }
            _ => {}
        }
        conn.write_all(chunk)?;
        offset += n;
    }
}

/// Runs the bench against one external server only, briefly (unpinned: its one line
/// is the failure's).
fn bench_against(addr: SocketAddr, scenario: &str) -> Result<crate::common::Finished> {
    let mut command = sockbox();
    command
        .args(["bench", "--pin", "none", "--only", "faulty", "--target"])
        .arg(format!("faulty={addr}"))
        .args([
            "--scenarios",
            scenario,
            "--duration",
            "300ms",
            "--warmup",
            "50ms",
        ]);
    Process::run(command)
}

/// A server that flips one bit in its third echo fails ping-pong, naming the
/// connection, the round, the byte and both values.
#[test]
fn a_corrupted_echo_fails_ping_pong() -> Result<()> {
    // Round 2's message starts at byte 128 of the connection; its byte 9 is at 137.
    let finished = bench_against(faulty_server(Fault::FlipAt(137))?, "pingpong")?;
    assert_eq!(finished.status.code(), Some(1), "{finished}");
    assert_eq!(finished.stdout, "", "no table for a failed run");
    let line = finished.stderr.trim_end();
    assert!(
        line.starts_with(
            "sockbox: bench: faulty: ping-pong 64 B ×1: connection 0, round 2: echoed byte 9 is 0x"
        ),
        "{finished}"
    );
    assert_eq!(finished.stderr.lines().count(), 1, "{finished}");
    Ok(())
}

/// A server that flips one bit 100,000 bytes into the stream fails the stream at
/// exactly that byte.
#[test]
fn a_corrupted_byte_fails_the_stream() -> Result<()> {
    let finished = bench_against(faulty_server(Fault::FlipAt(100_000))?, "stream")?;
    assert_eq!(finished.status.code(), Some(1), "{finished}");
    assert!(
        finished
            .stderr
            .starts_with("sockbox: bench: faulty: stream 64 KiB: streamed byte 100000 is 0x"),
        "{finished}"
    );
    Ok(())
}

/// A server that stops echoing partway fails ping-pong: a missing echo is a failure,
/// not a slower number.
#[test]
fn a_missing_echo_fails_ping_pong() -> Result<()> {
    let finished = bench_against(faulty_server(Fault::CloseAfter(1000))?, "pingpong")?;
    assert_eq!(finished.status.code(), Some(1), "{finished}");
    assert!(
        finished
            .stderr
            .contains("connection 0: the echo of round 15 is missing"),
        "{finished}"
    );
    Ok(())
}

/// A short run over native, the splicing guest and the forwarding WASI 0.3 guest
/// prints the table and writes JSON with every figure, and an SVG chart.
#[test]
fn a_good_run_writes_table_json_and_chart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (json, chart) = (dir.path().join("bench.json"), dir.path().join("bench.svg"));
    let mut command = sockbox();
    command
        .args([
            "bench",
            "--only",
            "native,sockbox-splice,sockbox-p3-forward",
        ])
        .args(["--scenarios", "pingpong,concurrent,idle-busy,stream"])
        .args([
            "--connections",
            "20",
            "--idle-beside",
            "30",
            "--duration",
            "200ms",
            "--warmup",
            "50ms",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--chart")
        .arg(&chart);
    let finished = Process::run(command)?;
    assert_eq!(finished.status.code(), Some(0), "{finished}");
    let rows: Vec<&str> = finished.stdout.lines().collect();
    assert_eq!(rows.len(), 13, "{finished}");
    assert!(rows[0].starts_with("scenario"), "{finished}");

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let figures = report["figures"].as_array().expect("a list of figures");
    let found: Vec<(&str, &str)> = figures
        .iter()
        .map(|figure| {
            assert!(
                figure["value"].as_f64().is_some_and(|value| value > 0.0),
                "{figure}"
            );
            (
                figure["scenario"].as_str().expect("a scenario"),
                figure["server"].as_str().expect("a server"),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("ping-pong 64 B ×1", "native"),
            ("ping-pong 64 B ×1", "sockbox-splice"),
            ("ping-pong 64 B ×1", "sockbox-p3-forward"),
            ("ping-pong 64 B ×20", "native"),
            ("ping-pong 64 B ×20", "sockbox-splice"),
            ("ping-pong 64 B ×20", "sockbox-p3-forward"),
            ("ping-pong 64 B ×1 + 30 idle", "native"),
            ("ping-pong 64 B ×1 + 30 idle", "sockbox-splice"),
            ("ping-pong 64 B ×1 + 30 idle", "sockbox-p3-forward"),
            ("stream 64 KiB", "native"),
            ("stream 64 KiB", "sockbox-splice"),
            ("stream 64 KiB", "sockbox-p3-forward"),
        ]
    );
    let svg = std::fs::read_to_string(&chart)?;
    assert!(
        svg.starts_with("<svg") && svg.contains("sockbox-p3-forward"),
        "{svg}"
    );
    // Every group says its unit.
    for label in ["ping-pong 64 B ×1 (round trips/s)", "stream 64 KiB (GB/s)"] {
        assert!(svg.contains(label), "no `{label}` in the chart: {svg}");
    }
    Ok(())
}

/// Both native servers stand beside each other: each row's ratio to the thread per
/// connection (`ratio`) and to the event loop (`vs loop`, 1.00× on its own row).
#[test]
fn both_native_servers_are_baselines() -> Result<()> {
    let mut command = sockbox();
    command
        .args(["bench", "--only", "native,native-loop,sockbox-splice"])
        .args([
            "--scenarios",
            "pingpong",
            "--duration",
            "200ms",
            "--warmup",
            "50ms",
        ]);
    let finished = Process::run(command)?;
    assert_eq!(finished.status.code(), Some(0), "{finished}");
    let rows: Vec<Vec<&str>> = finished
        .stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "{finished}");
    assert_eq!(rows[0].last(), Some(&"loop"), "{finished}");
    let row = |server: &str| {
        rows.iter()
            .find(|row| row.contains(&server))
            .unwrap_or_else(|| panic!("no {server} row in\n{finished}"))
    };
    assert_eq!(row("native-loop").last(), Some(&"1.00×"), "{finished}");
    assert_eq!(
        row("native")[row("native").len() - 2],
        "1.00×",
        "{finished}"
    );
    assert!(
        row("sockbox-splice")
            .last()
            .is_some_and(|r| r.ends_with('×')),
        "{finished}"
    );
    Ok(())
}

/// `--pin CPU` says where the single-connection scenarios ran, and the JSON keeps it;
/// a CPU that is not one is one line and exit 2.
#[test]
fn pinning_is_said_and_recorded() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("bench.json");
    let mut command = sockbox();
    command
        .args(["bench", "--only", "native", "--pin", "0", "--json"])
        .arg(&json)
        .args([
            "--scenarios",
            "pingpong",
            "--duration",
            "100ms",
            "--warmup",
            "50ms",
        ]);
    let finished = Process::run(command)?;
    assert_eq!(finished.status.code(), Some(0), "{finished}");
    assert!(
        finished
            .stderr
            .contains("every scenario but the concurrent one runs on CPU 0 alone"),
        "{finished}"
    );
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    assert_eq!(report["settings"]["pinned_cpu"], 0, "{report}");

    let mut command = sockbox();
    command.args(["bench", "--pin", "lots"]);
    let finished = Process::run(command)?;
    assert_eq!(finished.status.code(), Some(2), "{finished}");
    assert!(
        finished.stderr.contains("`lots` is not a CPU"),
        "{finished}"
    );
    Ok(())
}

/// `--instances 2` benches each sockbox server as two instances on one port, in rows
/// of their own name.
#[test]
fn sockbox_servers_run_as_several_instances() -> Result<()> {
    let mut command = sockbox();
    command
        .args([
            "bench",
            "--instances",
            "2",
            "--only",
            "native,sockbox-splice",
        ])
        .args(["--scenarios", "concurrent", "--connections", "20"])
        .args(["--duration", "200ms", "--warmup", "50ms"]);
    let finished = Process::run(command)?;
    assert_eq!(finished.status.code(), Some(0), "{finished}");
    let rows: Vec<&str> = finished.stdout.lines().collect();
    assert_eq!(rows.len(), 3, "{finished}");
    assert!(rows[2].contains("sockbox-splice×2"), "{finished}");
    Ok(())
}

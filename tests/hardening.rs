//! The defects an adversarial run found, each through the real `sockbox` binary and
//! the real guest: binds judged on the port they get, servers that outlive descriptor
//! exhaustion, `--timeout` over a blocked stdout, guest-visible errors without host
//! internals, `--max-sockets` as a cap, names normalized once, lookups with no name
//! rule, and per-run output from a reused `Sandbox`. (Over 400 lines: one test per
//! defect, each with the scenario that found it.)

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use rand::RngExt as _;
use sockbox_host::Policy;
use sockbox_host::output::Stdio as GuestStdio;
use sockbox_host::policy::UseKind;
use wait_timeout::ChildExt as _;

use crate::common::{GUEST, HARNESS, Process, TIMEOUT, echo_round_trip, sockbox};

/// `sockbox run ARGS` under `ulimit -n NOFILE` (soft and hard, so sockbox cannot raise it).
fn sockbox_with_nofile(nofile: u32, args: &[&str]) -> Command {
    let template = sockbox();
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
        .arg(template.get_program())
        .args(args);
    for (key, value) in template.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    command
}

/// `run` arguments for the built-in `echo` on 127.0.0.1:0, with `extra` and `mode`;
/// without a socket cap, so the process's descriptors run out first.
fn echo_args<'a>(extra: &[&'a str], mode: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--allow-listen",
        "tcp://127.0.0.1:*",
        "--max-sockets",
        "unlimited",
        "--",
        "echo",
        "127.0.0.1:0",
    ];
    args.extend(extra);
    args.extend(mode);
    args
}

/// Random bytes, echoed back whole by the server at `addr`.
fn assert_echoes(addr: SocketAddr, len: usize) -> Result<()> {
    let mut bytes = vec![0u8; len];
    rand::rng().fill(&mut bytes[..]);
    let echoed = echo_round_trip(addr, &bytes)?;
    ensure!(
        echoed == bytes,
        "echoed {} of {len} bytes, or other bytes",
        echoed.len()
    );
    Ok(())
}

/// A UDP bind to port 0 is judged on the port the system picks: a deny rule on that
/// range refuses it (it used to print `listening on` and echo). TCP, for comparison;
/// both builds of the guest.
#[test]
pub(crate) fn bind_to_port_zero_is_judged_on_the_port_it_gets() -> Result<()> {
    let cases = BUILDS
        .into_iter()
        .flat_map(|build| [(build, "udp", "udp-echo"), (build, "tcp", "echo")]);
    for (build, scheme, command) in cases {
        let mut run = sockbox();
        run.arg("run").args(build);
        run.args([
            "--allow-listen",
            &format!("{scheme}://127.0.0.1:*"),
            "--deny",
            &format!("{scheme}://127.0.0.1:1024-65535"),
            "--",
            command,
            "127.0.0.1:0",
        ]);
        let done = Process::run(run)?;
        assert_eq!(done.code()?, 1, "{done}");
        assert!(!done.stdout.contains("listening on"), "{done}");
        assert!(
            done.stderr.contains(&format!(
                "Error: listen {scheme} 127.0.0.1:0: access denied"
            )),
            "{done}"
        );
        assert!(
            done.stderr
                .contains(&format!("by --deny {scheme}://127.0.0.1:1024-65535")),
            "{done}"
        );
    }
    Ok(())
}

/// A server out of descriptors backs off and serves again once they free: 120 clients
/// held open against `ulimit -n 64`, then released; a fresh client is echoed.
#[test]
fn descriptor_exhaustion_does_not_stop_a_server() -> Result<()> {
    for mode in [None, Some("--copy")] {
        let args = echo_args(&[], mode);
        let server = Process::spawn(sockbox_with_nofile(64, &args))?;
        let addr = server.listening_addr()?;
        let held: Vec<TcpStream> = (0..120)
            .map(|_| TcpStream::connect(addr))
            .collect::<std::io::Result<_>>()?;
        // Every held client that the guest accepted is echoed; the rest wait.
        let mut first = held.first().context("a client")?.try_clone()?;
        first.set_read_timeout(Some(TIMEOUT))?;
        first.write_all(b"x")?;
        let mut one = [0u8; 1];
        first.read_exact(&mut one)?;
        drop(first);
        drop(held);
        assert_echoes(addr, 64 << 10)?;
        assert_echoes(addr, 100)?;
        drop(server);
    }
    Ok(())
}

/// The guest's accept loop names descriptor exhaustion and says it retries.
#[test]
fn descriptor_exhaustion_is_named() -> Result<()> {
    let args = echo_args(&["--count", "80"], None);
    let server = Process::spawn(sockbox_with_nofile(48, &args))?;
    let addr = server.listening_addr()?;
    let held: Vec<TcpStream> = (0..80)
        .map(|_| TcpStream::connect(addr))
        .collect::<std::io::Result<_>>()?;
    for conn in &held {
        conn.shutdown(Shutdown::Write)?;
    }
    let mut echoed = Vec::new();
    for mut conn in held {
        conn.set_read_timeout(Some(TIMEOUT))?;
        conn.read_to_end(&mut echoed)?;
    }
    let done = server.wait()?;
    assert_eq!(done.code()?, 0, "{done}");
    assert!(
        done.stderr
            .contains(": too many open files; retrying in 5ms"),
        "{done}"
    );
    assert!(!done.stderr.contains("unknown error"), "{done}");
    Ok(())
}

/// Without `--max-sockets`, an instance is capped at half the open-file limit: under
/// `ulimit -n 64`, a guest hoarding listeners holds 32 and its next bind fails with
/// `new-socket-limit` (Rust's std words it "No file descriptors available"). With the
/// cap lifted, the process runs out of descriptors first, and that failure has the
/// same name, not `unknown`. Both WASI versions' creates are sockbox's; this guest is
/// WASI 0.2's.
#[test]
fn every_instance_has_a_default_socket_cap() -> Result<()> {
    let wasm = tempfile::NamedTempFile::new()?;
    std::fs::write(wasm.path(), include_bytes!(env!("LIMITS_GUEST_WASM")))?;
    let wasm = wasm.path().to_str().context("a UTF-8 temp path")?;
    let hoard = |cap: &[&str]| -> Result<crate::common::Finished> {
        let mut args = vec!["run", "--wasm", wasm, "--allow-listen", "tcp://127.0.0.1:*"];
        args.extend(cap);
        args.extend(["--", "hoard-sockets", "127.0.0.1:0"]);
        Process::run(sockbox_with_nofile(64, &args))
    };
    let no_more = "bind 127.0.0.1:0: No file descriptors available (os error 33)";

    let capped = hoard(&[])?;
    assert_eq!(capped.code()?, 1, "{capped}");
    assert!(capped.stdout.ends_with("holding 32\n"), "{capped}");
    assert!(capped.stderr.contains(no_more), "{capped}");

    let lifted = hoard(&["--max-sockets", "unlimited"])?;
    assert_eq!(lifted.code()?, 1, "{lifted}");
    let held = lifted.stdout.lines().count();
    assert!(held > 32 && held < 64, "held {held}\n{lifted}");
    assert!(lifted.stderr.contains(no_more), "{lifted}");
    Ok(())
}

/// The embedding API caps an instance it is given no cap for as `sockbox run` does:
/// at [`default_max_sockets`](sockbox_host::default_max_sockets), half of this
/// process's open-file limit.
#[test]
fn the_embedding_api_has_the_default_socket_cap() -> Result<()> {
    let cap = sockbox_host::default_max_sockets().context("this process has a file limit")?;
    let sandbox = HARNESS
        .sandbox()
        .policy(Policy::deny_all().allow_listen("tcp://127.0.0.1:*")?);
    let output = HARNESS
        .spawn(
            sandbox,
            &crate::common::LIMITS_GUEST,
            ["hoard-sockets", "127.0.0.1:0"],
        )?
        .wait(TIMEOUT)?;
    output.assert_exit(1);
    assert!(
        output.stdout.ends_with(&format!("\nholding {cap}\n")),
        "{}",
        output.stdout.lines().last().unwrap_or_default()
    );
    assert!(
        output.stderr.contains("No file descriptors available"),
        "{}",
        output.stderr
    );
    Ok(())
}

/// `--timeout` holds while the guest is blocked writing to a stdout pipe nobody reads.
#[test]
fn timeout_holds_over_a_blocked_stdout() -> Result<()> {
    let wasm = tempfile::NamedTempFile::new()?;
    std::fs::write(wasm.path(), include_bytes!(env!("LIMITS_GUEST_WASM")))?;
    let mut command = sockbox();
    command
        .args(["run", "--timeout", "1s", "--wasm"])
        .arg(wasm.path())
        .args(["--", "flood-stdout"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    // Held open, never read: the guest's writes block once the pipe is full.
    let _stdout = child.stdout.take();
    let Some(status) = child.wait_timeout(TIMEOUT)? else {
        child.kill()?;
        anyhow::bail!("still running {TIMEOUT:?} after a 1s timeout");
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .context("piped")?
        .read_to_string(&mut stderr)?;
    assert_eq!(status.code(), Some(124), "{stderr}");
    assert_eq!(
        stderr,
        "sockbox: stopped the guest: the instance exceeded its timeout (1s)\n"
    );
    Ok(())
}

/// A peer resetting mid-stream reads as Go's `connection reset by peer`, even with
/// `RUST_BACKTRACE=1` in sockbox's environment: no host text, no backtrace.
#[test]
pub(crate) fn a_reset_is_named_without_host_internals() -> Result<()> {
    for mode in [None, Some("--copy")] {
        let args = echo_args(&["--count", "2"], mode);
        let mut command = sockbox();
        command.args(&args).env("RUST_BACKTRACE", "1");
        let server = Process::spawn(command)?;
        let addr = server.listening_addr()?;
        reset_mid_stream(addr)?;
        assert_echoes(addr, 1000)?;
        let done = server.wait()?;
        assert_eq!(done.code()?, 0, "{done}");
        assert!(done.stderr.contains("connection reset by peer"), "{done}");
        for leak in [
            "backtrace",
            "error 15",
            "connection-reset",
            ".rs:",
            "wasmtime",
        ] {
            assert!(!done.stderr.to_lowercase().contains(leak), "{leak}: {done}");
        }
    }
    Ok(())
}

/// Sends to `addr` without reading what comes back, then closes with SO_LINGER 0: the
/// server's next read or write meets a reset.
pub fn reset_mid_stream(addr: SocketAddr) -> Result<()> {
    let conn = TcpStream::connect(addr)?;
    let socket = socket2::SockRef::from(&conn);
    (&conn).write_all(&[7u8; 256 << 10])?;
    // Wait until the echo has started coming back, so the server is mid-stream.
    conn.set_read_timeout(Some(TIMEOUT))?;
    let mut some = [0u8; 1];
    (&conn).read_exact(&mut some)?;
    socket.set_linger(Some(Duration::ZERO))?;
    drop(conn);
    Ok(())
}

/// `--max-sockets 2` is a listener and one connection: that connection is served (it
/// used to read EOF, and sockbox exit 123). Both builds of the guest.
#[test]
fn max_sockets_counts_only_real_sockets() -> Result<()> {
    for build in BUILDS {
        max_sockets_counts_only_real_sockets_with(build)?;
    }
    Ok(())
}

/// `sockbox run`'s flags for each build of the guest: WASI 0.2, and `--p3`.
const BUILDS: [&[&str]; 2] = [&[], &["--p3"]];

fn max_sockets_counts_only_real_sockets_with(build: &[&str]) -> Result<()> {
    let mut command = sockbox();
    command.arg("run").args(build);
    command.args([
        "--allow-listen",
        "tcp://127.0.0.1:*",
        "--max-sockets",
        "2",
        "--",
        "echo",
        "127.0.0.1:0",
        "--count",
        "2",
    ]);
    let server = Process::spawn(command)?;
    let addr = server.listening_addr()?;
    assert_eq!(echo_round_trip(addr, b"abc")?, b"abc");
    assert_eq!(echo_round_trip(addr, b"def")?, b"def");
    let done = server.wait()?;
    assert_eq!(
        (done.code()?, done.stderr.as_str()),
        (0, ""),
        "{build:?}: {done}"
    );
    Ok(())
}

/// `--max-sockets` caps: of 100 clients held at once against a cap of 11 (a listener
/// and ten connections), those past the cap are closed by sockbox and audited as
/// denials by `max-sockets`; the server serves the rest, and anyone once they leave.
/// Both builds of the guest (0.3's connections arrive through `listen`'s stream).
#[test]
pub(crate) fn max_sockets_is_a_cap_under_100_connections() -> Result<()> {
    for build in BUILDS {
        max_sockets_is_a_cap_with(build)?;
    }
    Ok(())
}

fn max_sockets_is_a_cap_with(build: &[&str]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.jsonl");
    let mut command = sockbox();
    command.arg("run").args(build);
    command
        .args([
            "--allow-listen",
            "tcp://127.0.0.1:*",
            "--max-sockets",
            "11",
            "--audit",
        ])
        .arg(&audit)
        .args(["--", "echo", "127.0.0.1:0"]);
    let server = Process::spawn(command)?;
    let addr = server.listening_addr()?;
    let clients: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr))
        .collect::<std::io::Result<_>>()?;
    let (mut served, mut closed) = (Vec::new(), 0);
    // Every client stays connected until all have been answered or closed: none frees
    // a slot for another.
    for mut conn in clients {
        conn.set_read_timeout(Some(TIMEOUT))?;
        // A connection closed by the host may take the write or fail it; either way
        // its read ends without an echo.
        let _ = conn.write_all(b"ping");
        let mut got = [0u8; 4];
        match conn.read_exact(&mut got) {
            Ok(()) if &got == b"ping" => served.push(conn),
            Ok(()) => anyhow::bail!("echoed {got:?}"),
            Err(_) => closed += 1,
        }
    }
    let served_count = served.len();
    assert_eq!(served_count + closed, 100);
    assert!(
        served_count >= 10,
        "{build:?}: served {served_count}, closed {closed}"
    );
    assert!(
        closed > 0,
        "{build:?}: served {served_count}, closed {closed}"
    );
    // The served leave: each half-closes and waits for the echo to end, so the guest
    // has seen it go.
    for mut conn in served {
        conn.shutdown(Shutdown::Write)?;
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest)?;
        ensure!(rest.is_empty(), "{build:?}: echoed {rest:?} after the ping");
    }
    // Everyone has left: the server takes new clients again. The guest ends its side of
    // a connection a moment before it drops the socket, and until then a newcomer is
    // over the cap and closed like the rest; so a closed newcomer tries again, within
    // a bound.
    let (deadline, mut refused) = (Instant::now() + TIMEOUT, 0);
    while let Err(error) = assert_echoes(addr, 10_000) {
        refused += 1;
        ensure!(
            Instant::now() < deadline,
            "{build:?}: after everyone left, {refused} newcomers were refused: {error}"
        );
    }
    drop(server);
    let lines = std::fs::read_to_string(&audit)?;
    let capped = lines
        .lines()
        .filter(|line| line.contains(r#""rule":"max-sockets""#))
        .count();
    assert!(
        capped > 0,
        "{build:?}: no max-sockets denial in the audit:\n{lines}"
    );
    Ok(())
}

/// Runs the guest's `dial NAME:443` allowed any host on 443 but denied `deny`.
fn dial_denied(deny: &str, name: &str) -> Result<crate::common::Finished> {
    let mut command = sockbox();
    command.args(["run", "--allow", "tcp://*:443", "--deny", deny, "--"]);
    command.args(["dial", &format!("{name}:443")]);
    Process::run(command)
}

/// A name is normalized once, before it is decided, recorded and resolved: a second
/// trailing dot makes it invalid (it used to slip past a deny rule by name).
#[test]
fn names_are_normalized_once() -> Result<()> {
    for (name, error) in [
        ("evil.example..", "invalid argument"),
        ("a..b", "invalid argument"),
        (&format!("{}.example", "x".repeat(64)), "invalid argument"),
    ] {
        let done = dial_denied("tcp://evil.example:*", name)?;
        assert_eq!(done.code()?, 1, "{done}");
        assert!(done.stderr.contains(error), "{name}: {done}");
        assert!(!done.stderr.contains("allowed"), "{done}");
    }
    // One final dot, and any case, is the same name: denied by the rule naming it.
    let done = dial_denied("*://evil.example:*", "EVIL.example.")?;
    assert_eq!(done.code()?, 1, "{done}");
    assert!(
        done.stderr
            .contains("sockbox: denied lookup of evil.example (by --deny *://evil.example:*)"),
        "{done}"
    );
    Ok(())
}

/// With no rule that could allow a name, lookups are off: `permanent-resolver-failure`,
/// as under wasmtime with lookups off. With lookups on, a refused name stays
/// `name-unresolvable`, like a missing one.
#[test]
fn lookups_without_name_rules_are_off() -> Result<()> {
    let cases = [
        (
            "tcp://127.0.0.1:80",
            "lookup localhost: non-recoverable failure in name resolution",
        ),
        ("tcp://example.com:80", "lookup localhost: no such host"),
    ];
    for (rule, error) in cases {
        let mut command = sockbox();
        command.args(["run", "--allow", rule, "--", "lookup", "localhost"]);
        let done = Process::run(command)?;
        assert_eq!(done.code()?, 1, "{done}");
        assert!(done.stderr.contains(error), "{rule}: {done}");
    }
    Ok(())
}

/// A reused `Sandbox` gives each run its own captured output and denials.
#[test]
fn a_reused_sandbox_reports_each_run_alone() -> Result<()> {
    let sandbox = HARNESS
        .sandbox()
        .policy(Policy::deny_all().allow("tcp://127.0.0.1:1")?)
        .stdout(GuestStdio::capture())
        .stderr(GuestStdio::capture())
        .build();
    let first = HARNESS.block_on(sandbox.run_command(&GUEST, ["dial", "127.0.0.2:9"]))?;
    let second = HARNESS.block_on(sandbox.run_command(&GUEST, ["dial", "127.0.0.3:9"]))?;
    let third = HARNESS.block_on(sandbox.run_command(&GUEST, ["help"]))?;
    for (output, addr) in [(&first, "127.0.0.2:9"), (&second, "127.0.0.3:9")] {
        output.assert_exit(1);
        assert_eq!(
            output.stderr,
            format!("Error: dial tcp {addr}: access denied\n"),
            "{output}"
        );
        assert_eq!(output.denials.len(), 1, "{output}");
        assert_eq!(output.denials[0].use_kind, UseKind::TcpConnect);
        assert_eq!(output.denials[0].subject.to_string(), addr);
    }
    third.assert_success();
    assert!(third.stdout.starts_with("usage"), "{third}");
    assert!(
        third.stderr.is_empty() && third.denials.is_empty(),
        "{third}"
    );
    Ok(())
}

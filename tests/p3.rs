//! The guest's WASI 0.3 build (`guest-p3/`, `sockbox run --p3`) end to end, under the
//! same policy, limits and audit as the 0.2 build, with the same output lines: the
//! classic flows with itself, the 0.2 build, native peers and names; integrity, half
//! close, 200 clients at once and a stalled one; UDP; limits; usage errors. Tests
//! written for both builds live with their concern: the policy matrix (`policy.rs`),
//! Go's peers (`go_interop.rs`), binds judged on the port they get and the socket cap
//! (`hardening.rs`), a peer's reset (`integrity.rs`), datagram boundaries (`udp.rs`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use anyhow::Result;
use sockbox_host::Policy;

use crate::common::{
    Build, GUEST, Process, TIMEOUT, answer_once, connect_to, echo_round_trip, echo_server_build,
    loopbacks, serve_on, sockbox, start_build,
};
use crate::concurrency::{stalled_client_does_not_stall_others, two_hundred_clients_at_once};
use crate::integrity::eight_mib_random_through;

const P3: Build = Build::P3;

/// The 0.3 build's classic server answers a 0.3 client and a 0.2 client, each with only
/// its own grant, with the lines both builds print.
#[test]
fn classic_flows_between_builds() -> Result<()> {
    for host in loopbacks() {
        for client_build in [Build::P3, Build::P2] {
            let server = start_build(P3, serve_on(host), &["listen", &format!("{host}:0")])?;
            let addr = server.listening_addr(TIMEOUT)?;
            let client = start_build(client_build, connect_to(addr), &["dial", &addr.to_string()])?
                .wait(TIMEOUT)?;
            let server = server.wait(TIMEOUT)?;
            client.assert_success();
            server.assert_success();
            assert_eq!(client.stdout, "Received: Hello, World!\n", "{client}");
            assert_eq!(
                server.stdout,
                format!("listening on {addr}\nReceived: Hello, World!\n"),
                "{server}"
            );
        }
        // And the 0.2 server with the 0.3 client.
        let server = start_build(Build::P2, serve_on(host), &["listen", &format!("{host}:0")])?;
        let addr = server.listening_addr(TIMEOUT)?;
        let client =
            start_build(P3, connect_to(addr), &["dial", &addr.to_string(), "p3"])?.wait(TIMEOUT)?;
        client.assert_success();
        assert_eq!(client.stdout, "Received: Hello, World!\n");
        assert!(server.wait(TIMEOUT)?.stdout.ends_with("Received: p3\n"));
    }
    Ok(())
}

/// Native `std::net` peers on both sides of the 0.3 build.
#[test]
fn native_peers() -> Result<()> {
    for host in loopbacks() {
        let server = start_build(P3, serve_on(host), &["listen", &format!("{host}:0")])?;
        let addr = server.listening_addr(TIMEOUT)?;
        let mut conn = TcpStream::connect(addr)?;
        conn.set_read_timeout(Some(TIMEOUT))?;
        conn.write_all(b"ping from std::net")?;
        let mut reply = Vec::new();
        conn.read_to_end(&mut reply)?;
        assert_eq!(reply, b"Hello, World!");
        let server = server.wait(TIMEOUT)?;
        server.assert_success();
        assert!(server.stdout.ends_with("Received: ping from std::net\n"));

        let listener = TcpListener::bind(format!("{host}:0"))?;
        let addr = listener.local_addr()?;
        let client = start_build(P3, connect_to(addr), &["dial", &addr.to_string()])?;
        assert_eq!(answer_once(&listener, b"native reply")?, b"Hello, World!");
        let client = client.wait(TIMEOUT)?;
        client.assert_success();
        assert_eq!(client.stdout, "Received: native reply\n");
    }
    Ok(())
}

/// Names go through sockbox's lookup for 0.3 too: a name rule lets `lookup` and
/// `dial` by name through; without one, the name looks missing.
#[test]
pub(crate) fn names_follow_the_policy() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let by_name = Policy::deny_all().allow(&format!("tcp://localhost:{port}"))?;
    let client = start_build(P3, by_name.clone(), &["dial", &format!("localhost:{port}")])?;
    assert_eq!(answer_once(&listener, b"by name")?, b"Hello, World!");
    let client = client.wait(TIMEOUT)?;
    client.assert_success();
    assert_eq!(client.stdout, "Received: by name\n");

    let lookup = start_build(P3, by_name, &["lookup", "localhost"])?.wait(TIMEOUT)?;
    lookup.assert_success();
    assert!(
        lookup.stdout.lines().any(|line| line == "127.0.0.1"),
        "{lookup}"
    );

    let other = Policy::deny_all().allow("tcp://example.invalid:80")?;
    let refused = start_build(P3, other, &["lookup", "localhost"])?.wait(TIMEOUT)?;
    assert_eq!(refused.status.code(), Some(1), "{refused}");
    assert_eq!(refused.stderr, "Error: lookup localhost: no such host\n");
    Ok(())
}

/// 8 MiB in uneven chunks through `echo` (`--forward`, and `--copy`) comes back
/// identical; a client that half-closes first still gets everything back.
#[test]
fn integrity_and_half_close() -> Result<()> {
    for mode in [&["--forward"][..], &["--copy"]] {
        eight_mib_random_through(P3, mode)?;
        for host in loopbacks() {
            let (server, addr) = echo_server_build(P3, host, 1, mode)?;
            let message = vec![b'x'; 300_000];
            assert!(
                echo_round_trip(addr, &message)? == message,
                "{mode:?} {host}"
            );
            server.wait(TIMEOUT)?.assert_success();
        }
    }
    Ok(())
}

/// 200 clients at once through the forwarding `echo`.
#[test]
fn two_hundred_clients_forward() -> Result<()> {
    two_hundred_clients_at_once(P3, &["--forward"])
}

/// 200 clients at once through `echo --copy`.
#[test]
fn two_hundred_clients_copy() -> Result<()> {
    two_hundred_clients_at_once(P3, &["--copy"])
}

/// A stalled client does not stall the others (forwarding).
#[test]
fn stalled_client_forward() -> Result<()> {
    stalled_client_does_not_stall_others(P3, &["--forward"])
}

/// A stalled client does not stall the others (`--copy`).
#[test]
fn stalled_client_copy() -> Result<()> {
    stalled_client_does_not_stall_others(P3, &["--copy"])
}

/// The 0.3 `udp-send` gets its answer from the 0.3 `udp-echo`. (Datagram boundaries
/// through the 0.3 `udp-echo` are checked in `udp.rs`.)
#[test]
fn udp_send_and_echo() -> Result<()> {
    let policy = Policy::deny_all().allow_listen("udp://127.0.0.1:*")?;
    let server = start_build(P3, policy, &["udp-echo", "127.0.0.1:0", "--count", "1"])?;
    let addr = server.listening_addr(TIMEOUT)?;
    let policy = Policy::deny_all().allow(&format!("udp://{addr}"))?;
    let client = start_build(
        P3,
        policy,
        &["udp-send", &addr.to_string(), "over p3", "--timeout", "10s"],
    )?
    .wait(TIMEOUT)?;
    client.assert_success();
    assert_eq!(client.stdout, "Received: over p3\n");
    server.wait(TIMEOUT)?.assert_success();
    Ok(())
}

/// `sockbox run --p3 ARGS`, its exit status and output.
fn run_p3(args: &[&str]) -> Result<crate::common::Finished> {
    let mut command = sockbox();
    command.args(["run", "--p3"]).args(args);
    Process::run(command)
}

/// The limits hold for 0.3 guests as for 0.2: the timeout stops a server (124), a
/// memory cap too small to start stops it (137), and `--max-sockets 0` (`unlimited`)
/// lifts the socket cap rather than allowing no socket. (The cap's refusals are
/// `hardening::max_sockets_*`'s, for both builds.)
#[test]
fn limits_hold() -> Result<()> {
    let done = run_p3(&[
        "--allow-listen",
        "tcp://127.0.0.1:*",
        "--timeout",
        "300ms",
        "--",
        "echo",
        "127.0.0.1:0",
    ])?;
    assert_eq!(done.code()?, 124, "{done}");
    assert!(done.stdout.starts_with("listening on 127.0.0.1:"), "{done}");
    assert!(
        done.stderr.contains("sockbox: stopped the guest: "),
        "{done}"
    );

    let done = run_p3(&["--max-memory", "64KiB", "--", "help"])?;
    assert_eq!(done.code()?, 137, "{done}");

    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    for lifted in ["0", "unlimited"] {
        let done = run_p3(&[
            "--allow",
            &format!("tcp://{closed}"),
            "--max-sockets",
            lifted,
            "--",
            "dial",
            &closed.to_string(),
        ])?;
        assert_eq!(done.code()?, 1, "{done}");
        assert_eq!(
            done.stderr,
            format!("Error: dial tcp {closed}: connection refused\n"),
            "{done}"
        );
    }
    Ok(())
}

/// A bad command line is the same usage error, exit 2, from both builds.
#[test]
fn usage_errors_match_the_0_2_build() -> Result<()> {
    for args in [
        &["dial"][..],
        &["dial", "1.2.3.4"],
        &["dial", "127.0.0.1:1", "--tiemout", "1s"],
        &["frobnicate"],
    ] {
        let p2 = crate::common::HARNESS
            .start(&GUEST, Policy::deny_all(), args.iter().copied())?
            .wait(TIMEOUT)?;
        let p3 = start_build(P3, Policy::deny_all(), args)?.wait(TIMEOUT)?;
        assert_eq!(p3.status, p2.status, "{args:?}: {p3}");
        assert_eq!(p3.status.code(), Some(2), "{args:?}");
        assert_eq!(p3.stderr, p2.stderr, "{args:?}");
    }
    Ok(())
}

/// sockbox's own `wasi:sockets@0.3.0` conformance set (`tests/guests/p3-sockets`):
/// every function of `tcp-socket`, `udp-socket` and `ip-name-lookup`, its success and
/// its error paths, passes under sockbox with the network granted.
#[test]
fn conformance_set_passes_with_the_network_granted() -> Result<()> {
    let component = crate::common::HARNESS.component(include_bytes!(env!("P3_SOCKETS_WASM")))?;
    let run = crate::common::HARNESS
        .start(
            &component,
            Policy::inherit_network(),
            std::iter::empty::<&str>(),
        )?
        .wait(TIMEOUT)?;
    let failed: Vec<&str> = run
        .stdout
        .lines()
        .filter(|line| !line.starts_with("ok "))
        .collect();
    assert!(failed.is_empty(), "{run}");
    assert_eq!(run.stdout.lines().count(), 16, "{run}");
    run.assert_success();
    Ok(())
}

/// A command exporting both `wasi:cli/run@0.2` (std's `main`) and `@0.3.0` — how Rust's
/// toolchain builds every WASI 0.3 program today — runs its 0.3 entry, as `wasmtime
/// run` chooses: through `sockbox run` (`-v` names the entry) and through the harness.
/// `--wasi 0.2` and the builder's `wasi` force the other; forcing an entry the
/// component lacks is one line and exit 2.
#[test]
fn a_command_exporting_both_runs_its_0_3_entry() -> Result<()> {
    let wasm = tempfile::NamedTempFile::new()?;
    std::fs::write(wasm.path(), include_bytes!(env!("BOTH_ENTRIES_WASM")))?;
    let wasm = wasm.path().to_str().expect("a UTF-8 temp path").to_owned();
    let run = |flags: &[&str]| {
        let mut command = sockbox();
        command.args(["run", "--wasm", &wasm]).args(flags);
        Process::run(command)
    };

    let chosen = run(&["-v"])?;
    assert_eq!(chosen.code()?, 0, "{chosen}");
    assert_eq!(chosen.stdout, "ran wasi:cli/run@0.3.0\n", "{chosen}");
    assert!(
        chosen.stderr.contains("entry=\"wasi:cli/run@0.3.0\""),
        "{chosen}"
    );
    let forced = run(&["--wasi", "0.2"])?;
    assert_eq!(forced.code()?, 1, "{forced}");
    assert_eq!(forced.stdout, "ran wasi:cli/run@0.2\n", "{forced}");
    assert_eq!(run(&["--wasi", "0.3"])?.stdout, "ran wasi:cli/run@0.3.0\n");

    let mut p2_only = sockbox();
    p2_only.args(["run", "--wasi", "0.3", "--", "help"]);
    let refused = Process::run(p2_only)?;
    assert_eq!(refused.code()?, 2, "{refused}");
    assert_eq!(
        refused.stderr,
        "sockbox: component sockbox-guest: the component does not export wasi:cli/run@0.3.0 (it was asked to run as WASI 0.3)\n",
        "{refused}"
    );

    let harness = &crate::common::HARNESS;
    let both = harness.component(include_bytes!(env!("BOTH_ENTRIES_WASM")))?;
    assert!(both.is_p3());
    let output = harness
        .spawn(harness.sandbox(), &both, std::iter::empty::<&str>())?
        .wait(TIMEOUT)?;
    output.assert_success();
    assert_eq!(output.stdout, "ran wasi:cli/run@0.3.0\n");
    let sandbox = harness.sandbox().wasi(sockbox_host::WasiVersion::P2);
    let output = harness
        .spawn(sandbox, &both, std::iter::empty::<&str>())?
        .wait(TIMEOUT)?;
    output.assert_exit(1);
    assert_eq!(output.stdout, "ran wasi:cli/run@0.2\n");
    Ok(())
}

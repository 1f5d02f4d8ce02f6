//! The classic flows, end to end: the guest as server and as client, against itself and
//! against native `std::net` peers, over IPv4, IPv6 and a name.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use crate::common::{
    Process, TIMEOUT, answer_once, connect_to, echo_round_trip, echo_server, loopbacks, serve_on,
    sockbox, start,
};
use anyhow::{Context as _, Result, ensure};
use sockbox_host::Policy;

/// A guest server and a guest client, each with only its own grant, exchange the classic messages.
#[test]
fn guest_server_and_guest_client() -> Result<()> {
    for host in loopbacks() {
        let server = start(serve_on(host), &["listen", &format!("{host}:0")])?;
        let addr = server.listening_addr(TIMEOUT)?;
        let client = start(connect_to(addr), &["dial", &addr.to_string()])?.wait(TIMEOUT)?;
        let server = server.wait(TIMEOUT)?;
        ensure!(client.status.success(), "client: {client}");
        ensure!(server.status.success(), "server: {server}");
        assert_eq!(client.stdout, "Received: Hello, World!\n", "{client}");
        assert_eq!(
            server.stdout,
            format!("listening on {addr}\nReceived: Hello, World!\n"),
            "{server}"
        );
    }
    Ok(())
}

/// A native `std::net` client gets the guest server's reply, and the guest prints the client's bytes.
#[test]
fn guest_server_and_native_client() -> Result<()> {
    for host in loopbacks() {
        let server = start(serve_on(host), &["listen", &format!("{host}:0")])?;
        let addr = server.listening_addr(TIMEOUT)?;
        let mut conn = TcpStream::connect(addr)?;
        conn.write_all(b"ping from std::net")?;
        let mut reply = Vec::new();
        conn.read_to_end(&mut reply)?;
        assert_eq!(reply, b"Hello, World!");
        let server = server.wait(TIMEOUT)?;
        ensure!(server.status.success(), "{server}");
        assert!(
            server.stdout.ends_with("Received: ping from std::net\n"),
            "{server}"
        );
    }
    Ok(())
}

/// The guest client reads a native server's whole reply and prints it byte for byte.
#[test]
fn native_server_and_guest_client() -> Result<()> {
    for host in loopbacks() {
        let listener = TcpListener::bind(format!("{host}:0"))?;
        let addr = listener.local_addr()?;
        let client = start(connect_to(addr), &["dial", &addr.to_string(), "hi there"])?;
        // The guest half-closes after sending, so the server reads to the end.
        let got = answer_once(&listener, b"reply from std::net")?;
        assert_eq!(got, b"hi there");
        let client = client.wait(TIMEOUT)?;
        ensure!(client.status.success(), "{client}");
        assert_eq!(client.stdout, "Received: reply from std::net\n");
    }
    Ok(())
}

/// `localhost:PORT` is resolved through wasi:sockets/ip-name-lookup and connects.
#[test]
fn dial_by_name() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let policy = Policy::deny_all().allow(&format!("tcp://localhost:{port}"))?;
    let client = start(policy, &["dial", &format!("localhost:{port}")])?;
    let got = answer_once(&listener, b"by name")?;
    let client = client.wait(TIMEOUT)?;
    ensure!(client.status.success(), "{client}");
    assert_eq!(got, b"Hello, World!");
    assert_eq!(client.stdout, "Received: by name\n");
    Ok(())
}

/// `echo --count 2` serves two connections one after another, then exits 0.
#[test]
fn echo_serves_count_connections_then_exits() -> Result<()> {
    for host in loopbacks() {
        let (server, addr) = echo_server(host, 2)?;
        for message in [&b"first"[..], b"second"] {
            assert_eq!(echo_round_trip(addr, message)?, message);
        }
        let server = server.wait(TIMEOUT)?;
        ensure!(server.status.success(), "{server}");
    }
    Ok(())
}

/// `sockbox demo` runs both programs sandboxed in one process and prints their lines, prefixed.
#[test]
fn demo_prints_both_instances() -> Result<()> {
    let mut demo = sockbox();
    demo.arg("demo");
    let done = Process::run(demo)?;
    ensure!(done.code()? == 0, "{done}");
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{done}");
    let addr = lines[0]
        .strip_prefix("[server] listening on 127.0.0.1:")
        .context("first line announces the server")?;
    addr.parse::<u16>().context("a real port")?;
    assert_eq!(
        &lines[1..],
        [
            "[server] Received: Hello, World!",
            "[client] Received: Hello, World!"
        ]
    );
    Ok(())
}

/// `sockbox run` passes the guest's output through and exits with its status.
#[test]
fn run_cli_serves_and_passes_output_through() -> Result<()> {
    let mut run = sockbox();
    run.args([
        "run",
        "--allow-listen",
        "tcp://127.0.0.1:*",
        "--",
        "echo",
        "127.0.0.1:0",
        "--count",
        "1",
    ]);
    let server = Process::spawn(run)?;
    let addr = server.listening_addr()?;
    assert_eq!(
        echo_round_trip(addr, b"through the CLI")?,
        b"through the CLI"
    );
    let done = server.wait()?;
    ensure!(done.code()? == 0, "{done}");
    assert_eq!(done.stdout, format!("listening on {addr}\n"));
    Ok(())
}

/// A guest that fails before listening is reported as such at once, with its output.
#[test]
fn harness_reports_a_server_that_exits_before_listening() -> Result<()> {
    // Self connections off: a loopback port 0 would be a self listener.
    let server = start(
        Policy::deny_all().without_self(),
        &["listen", "127.0.0.1:0"],
    )?;
    let err = server
        .listening_addr(TIMEOUT)
        .expect_err("a denied listen never announces itself");
    let message = format!("{err:#}");
    assert!(
        message.contains("exited before printing a `listening on` line")
            && message.contains("Error: listen tcp 127.0.0.1:0: access denied"),
        "{message}"
    );
    Ok(())
}

/// `sockbox run --inherit-network` grants everything, as `wasmtime run -S inherit-network` does.
#[test]
fn run_cli_inherit_network_dials_anywhere() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut run = sockbox();
    run.args(["run", "--inherit-network", "--", "dial", &addr.to_string()]);
    let client = Process::spawn(run)?;
    let got = answer_once(&listener, b"inherited")?;
    let done = client.wait()?;
    ensure!(done.code()? == 0, "{done}");
    assert_eq!(got, b"Hello, World!");
    assert_eq!(
        (done.stdout.as_str(), done.stderr.as_str()),
        ("Received: inherited\n", "")
    );
    Ok(())
}

/// Stopping a serving guest closes its listener: the port refuses new connections.
#[test]
fn stopped_guest_closes_its_sockets() -> Result<()> {
    for host in loopbacks() {
        let server = start(serve_on(host), &["echo", &format!("{host}:0")])?;
        let addr = server.listening_addr(TIMEOUT)?;
        assert_eq!(echo_round_trip(addr, b"still here")?, b"still here");
        server.stop();
        let refused = TcpStream::connect(addr);
        ensure!(
            matches!(&refused, Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused),
            "the stopped guest's port still answers: {refused:?}"
        );
    }
    Ok(())
}

/// Flags go anywhere, as `--flag value` or `--flag=value`; `--` ends them, so a message
/// may start with `--`.
#[test]
fn guest_flags_in_any_position() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let cases: [(Vec<&str>, &[u8]); 4] = [
        (vec!["dial", "--timeout", "300ms", &addr], b"Hello, World!"),
        (vec!["dial", &addr, "--timeout=300ms"], b"Hello, World!"),
        (vec!["dial", "--timeout=5s", &addr, "hi"], b"hi"),
        (vec!["dial", &addr, "--", "--not-a-flag"], b"--not-a-flag"),
    ];
    for (args, sent) in cases {
        let client = start(connect_to(listener.local_addr()?), &args)?;
        let got = answer_once(&listener, b"ok")?;
        assert_eq!(got, sent, "{args:?}");
        let client = client.wait(TIMEOUT)?;
        ensure!(client.status.success(), "{args:?}: {client}");
        assert_eq!(client.stdout, "Received: ok\n", "{args:?}");
    }
    Ok(())
}

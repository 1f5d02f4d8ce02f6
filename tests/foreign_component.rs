//! Users' own components — `examples/std-echo` (plain `std::net`), `examples/wstd-echo`
//! (wstd) and `examples/p3-echo` (WASI 0.3, wit-bindgen's async exports), none with
//! sockbox code — tested end to end through the public harness, as a user's CI would:
//! served under a policy, dialed with native sockets, output and exit asserted.

use anyhow::Result;
use sockbox_host::Policy;
use sockbox_host::policy::{Subject, UseKind};

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;

use sockbox_host::Output;
use sockbox_host::enforce::AuditLog;

use crate::common::{
    GUEST_DIAL_EXAMPLE, HARNESS, P3_ECHO, STD_ECHO, TIMEOUT, TOKIO_CLIENT, WSTD_ECHO, answer_once,
    connect_to, echo_round_trip, loopbacks, serve_on,
};

/// The component serves two native clients byte for byte, reports each on stdout, and
/// exits 0.
#[test]
fn std_net_component_serves_through_the_harness() -> Result<()> {
    for host in loopbacks() {
        let server = HARNESS.start(&STD_ECHO, serve_on(host), [format!("{host}:0"), "2".into()])?;
        let addr = server.listening_addr(TIMEOUT)?;
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
        assert_eq!(echo_round_trip(addr, &payload)?, payload, "{host}");
        assert_eq!(echo_round_trip(addr, b"hello")?, b"hello", "{host}");
        let output = server.wait(TIMEOUT)?;
        output.assert_success();
        assert_eq!(
            output.stdout,
            format!("listening on {addr}\nserved 200000 bytes\nserved 5 bytes\n")
        );
        assert_eq!(output.stderr, "");
    }
    Ok(())
}

/// Without a listen rule, the component's own bind fails with its own error, exit 1,
/// and the harness shows which use the policy refused.
#[test]
fn std_net_component_is_denied_without_a_rule() -> Result<()> {
    // Self connections off: a loopback port 0 would be a self listener, which only
    // the instance itself can reach (`self_connections.rs`).
    let server = HARNESS.start(
        &STD_ECHO,
        Policy::deny_all().without_self(),
        ["127.0.0.1:0"],
    )?;
    let output = server.wait(TIMEOUT)?;
    output.assert_exit(1);
    assert!(
        output.stderr.starts_with("std-echo: 127.0.0.1:0: "),
        "{output}"
    );
    assert_eq!(output.stdout, "");

    // With a rule for another address only, the refused bind is named.
    let server = HARNESS.start(
        &STD_ECHO,
        serve_on("127.0.0.2").without_self(),
        ["127.0.0.1:0"],
    )?;
    let output = server.wait(TIMEOUT)?;
    output.assert_exit(1);
    let refused: Vec<_> = output
        .denials
        .iter()
        .map(|decision| (decision.use_kind, decision.subject.clone()))
        .collect();
    assert_eq!(
        refused,
        [(UseKind::TcpBind, Subject::Addr("127.0.0.1:0".parse()?))]
    );
    Ok(())
}

/// A component built on the guest library (`sockbox_guest::net`, without the
/// `component` feature) runs its own `main`, not the built-in guest's command: the
/// library's example dials, sends, and prints the reply.
#[test]
fn component_on_the_guest_library_keeps_its_own_main() -> Result<()> {
    for host in loopbacks() {
        let listener = TcpListener::bind(format!("{host}:0"))?;
        let addr = listener.local_addr()?;
        let client = HARNESS.start(&GUEST_DIAL_EXAMPLE, connect_to(addr), [addr.to_string()])?;
        assert_eq!(
            answer_once(&listener, b"hi back")?,
            b"Hello, World!",
            "{host}"
        );
        let output = client.wait(TIMEOUT)?;
        output.assert_success();
        assert_eq!(output.stdout, "Received: hi back\n", "{host}");
    }
    Ok(())
}

/// A concurrent server written on `wstd` (`examples/wstd-echo`), a task per connection
/// and no sockbox code, serves through the harness under a policy: a connection held
/// open does not keep another from being served, every byte comes back, and it exits 0
/// after its count.
#[test]
fn wstd_component_serves_concurrently() -> Result<()> {
    for host in loopbacks() {
        let server = HARNESS.start(
            &WSTD_ECHO,
            serve_on(host),
            [format!("{host}:0"), "3".into()],
        )?;
        let addr = server.listening_addr(TIMEOUT)?;
        serves_three_concurrently(addr)?;
        let output = server.wait(TIMEOUT)?;
        output.assert_success();
        assert_eq!(output.stdout, format!("listening on {addr}\n"));
    }
    Ok(())
}

/// Three connections to the echo server at `addr`: one held open, echoed once, while
/// the other two are echoed whole (200,000 bytes, then 5), then closed.
fn serves_three_concurrently(addr: std::net::SocketAddr) -> Result<()> {
    let mut held = TcpStream::connect(addr)?;
    held.set_read_timeout(Some(TIMEOUT))?;
    held.write_all(b"first")?;
    let mut first = [0; 5];
    held.read_exact(&mut first)?;
    assert_eq!(&first, b"first");
    // While that one stays open, others are served.
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    assert_eq!(echo_round_trip(addr, &payload)?, payload, "{addr}");
    assert_eq!(echo_round_trip(addr, b"hello")?, b"hello", "{addr}");
    Ok(())
}

/// A WASI 0.3 server written with wit-bindgen's async exports (`examples/p3-echo`,
/// which also exports std's `main` as 0.2's run, unreachable) runs its 0.3 entry and
/// serves TCP concurrently through the harness under a policy, its listen in the
/// audit; without a rule its bind is refused and the harness names the use.
#[test]
fn wit_bindgen_p3_component_serves_tcp() -> Result<()> {
    for host in loopbacks() {
        let audit = tempfile::NamedTempFile::new()?;
        let sandbox = HARNESS
            .sandbox()
            .policy(serve_on(host))
            .audit(Arc::new(AuditLog::to_file(audit.reopen()?)));
        let server = HARNESS.spawn(sandbox, &P3_ECHO, ["tcp", &format!("{host}:0"), "3"])?;
        let addr = server.listening_addr(TIMEOUT)?;
        serves_three_concurrently(addr)?;
        let output = server.wait(TIMEOUT)?;
        output.assert_success();
        assert_eq!(output.stdout, format!("listening on {addr}\n"));
        let audit = std::fs::read_to_string(audit.path())?;
        assert!(
            audit
                .lines()
                .any(|line| line.contains(r#""use":"tcp-listen""#)
                    && line.contains(r#""verdict":"allow""#)),
            "{audit}"
        );
    }

    p3_echo_is_refused_without_a_rule("tcp")
}

/// `p3-echo MODE 127.0.0.1:0` with no rule (and no self connections): its bind is
/// refused, in its own words.
fn p3_echo_is_refused_without_a_rule(mode: &str) -> Result<()> {
    let policy = Policy::deny_all().without_self();
    let refused = HARNESS.start(&P3_ECHO, policy, [mode, "127.0.0.1:0"])?;
    let output = refused.wait(TIMEOUT)?;
    output.assert_exit(1);
    assert_eq!(
        output.stderr,
        format!("p3-echo: {mode} 127.0.0.1:0: ErrorCode::AccessDenied\n"),
        "{output}"
    );
    Ok(())
}

/// The same component's UDP echo: each datagram back to its sender, whole, under a
/// listen rule; without one, its bind is refused.
#[test]
fn wit_bindgen_p3_component_exchanges_udp() -> Result<()> {
    for host in loopbacks() {
        let policy = Policy::deny_all().allow_listen(&format!("udp://{host}:*"))?;
        let server = HARNESS.start(&P3_ECHO, policy, ["udp", &format!("{host}:0"), "2"])?;
        let addr = server.listening_addr(TIMEOUT)?;
        let client = UdpSocket::bind(format!("{host}:0"))?;
        client.set_read_timeout(Some(TIMEOUT))?;
        let mut reply = [0u8; 2048];
        for datagram in [&b"one"[..], &[9u8; 1200]] {
            client.send_to(datagram, addr)?;
            let (len, from) = client.recv_from(&mut reply)?;
            assert_eq!((&reply[..len], from), (datagram, addr), "{host}");
        }
        server.wait(TIMEOUT)?.assert_success();
    }
    p3_echo_is_refused_without_a_rule("udp")
}

/// A TCP client on tokio (`examples/tokio-client`) reaches its server with exactly its
/// one grant, and is refused (the use named) with a grant for another server only.
#[test]
fn tokio_client_dials_through_the_harness() -> Result<()> {
    for host in loopbacks() {
        let listener = TcpListener::bind(format!("{host}:0"))?;
        let addr = listener.local_addr()?;
        let client = HARNESS.start(
            &TOKIO_CLIENT,
            connect_to(addr),
            [addr.to_string(), "hello".into()],
        )?;
        assert_eq!(answer_once(&listener, b"olleh")?, b"hello", "{host}");
        let output = client.wait(TIMEOUT)?;
        output.assert_success();
        assert_eq!(output.stdout, "reply: olleh\n", "{host}");
    }
    // Granted another server only: this one is refused, and named.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let other = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let refused = HARNESS.start(
        &TOKIO_CLIENT,
        connect_to(other),
        [addr.to_string(), "hello".into()],
    )?;
    let output = refused.wait(TIMEOUT)?;
    output.assert_exit(1);
    assert!(
        output
            .stderr
            .starts_with(&format!("tokio-client: {addr}: ")),
        "{output}"
    );
    assert!(denied_connect(&output, addr), "{output}");
    Ok(())
}

/// Reports whether the harness recorded a refused TCP connect to `addr`.
fn denied_connect(output: &Output, addr: std::net::SocketAddr) -> bool {
    output.denials.iter().any(|denial| {
        denial.use_kind == UseKind::TcpConnect && denial.subject == Subject::Addr(addr)
    })
}

/// An asyncio client in Python, built by componentize-py (`examples/py-client`, WASI
/// 0.2), reaches its server with only the grant for it and prints the reply; a deny on
/// the server refuses it, named. (asyncio's self-pipe, a loopback socket pair, is a
/// self connection: `self_connections.rs`.)
#[test]
fn python_client_dials_through_the_harness() -> Result<()> {
    let path = env!("PY_CLIENT_WASM");
    assert!(
        !path.is_empty(),
        "examples/py-client was not built: install componentize-py (pip install componentize-py==0.25.1) and build again"
    );
    let client = HARNESS.component(&std::fs::read(path)?)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let granted = || -> Result<Policy> { Ok(Policy::deny_all().allow(&format!("tcp://{addr}"))?) };
    let running = HARNESS.start(&client, granted()?, [addr.to_string(), "hello".into()])?;
    assert_eq!(answer_once(&listener, b"olleh")?, b"hello");
    let output = running.wait(TIMEOUT)?;
    output.assert_success();
    assert_eq!(output.stdout, "reply: olleh\n");

    let denied = granted()?.deny(&format!("tcp://{addr}"))?;
    let output = HARNESS
        .start(&client, denied, [addr.to_string(), "hello".into()])?
        .wait(TIMEOUT)?;
    output.assert_exit(1);
    assert_eq!(
        output.stderr,
        format!("py-client: {addr}: [Errno 2] Permission denied\n"),
        "{output}"
    );
    assert!(denied_connect(&output, addr), "{output}");
    Ok(())
}

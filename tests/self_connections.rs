//! Self connections: an instance's own loopback socket pair needs no rule, and grants
//! nothing else — both builds of the built-in guest (`pair`, made as Python's
//! `socket.socketpair()` makes one on WASI), and an asyncio client built by
//! componentize-py run by the `sockbox` binary.

use std::io::{ErrorKind, Read as _};
use std::net::{SocketAddr, TcpListener, TcpStream};

use anyhow::{Context as _, Result, ensure};
use sockbox_host::Policy;
use sockbox_host::policy::{DecidedBy, Subject, UseKind};

use crate::common::{
    Build, HARNESS, Process, TIMEOUT, accept_within, answer_once, assert_untouched, sockbox,
    start_build, watched_listener,
};

/// Reads `pair CLIENT -> LISTENER` and checks the two are the guest's own loopback.
fn paired(stdout: &str, host: &str) -> Result<(SocketAddr, SocketAddr)> {
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("pair "))
        .with_context(|| format!("no `pair` line in {stdout:?}"))?;
    let (client, listener) = line.split_once(" -> ").context("CLIENT -> LISTENER")?;
    let (client, listener): (SocketAddr, SocketAddr) = (client.parse()?, listener.parse()?);
    let ip = host.trim_matches(['[', ']']);
    ensure!(
        client.ip().to_string() == ip && listener.ip().to_string() == ip,
        "{line}"
    );
    Ok((client, listener))
}

/// A socket pair on either loopback, with no rule at all; `--no-self` refuses its
/// listener as any listen without a rule.
#[test]
fn a_socket_pair_needs_no_rule() -> Result<()> {
    for build in [Build::P2, Build::P3] {
        for host in ["127.0.0.1", "[::1]"] {
            let addr = format!("{host}:0");
            let done = start_build(build, Policy::deny_all(), &["pair", &addr])?.wait(TIMEOUT)?;
            done.assert_success();
            paired(&done.stdout, host).with_context(|| format!("{build:?}: {done}"))?;
            assert_eq!(done.denials, [], "{build:?} {host}");

            let off = Policy::deny_all().without_self();
            let done = start_build(build, off, &["pair", &addr])?.wait(TIMEOUT)?;
            done.assert_exit(1);
            assert_eq!(
                done.stderr,
                format!("Error: listen tcp {addr}: access denied\n"),
                "{build:?}"
            );
        }
    }
    Ok(())
}

/// Another process connecting to the instance's self listener is refused (it sees a
/// reset) and recorded, while the instance's own connection on the same listener is
/// accepted; the self listener lets the instance connect to nothing else.
#[test]
pub(crate) fn only_the_instance_reaches_its_self_listener() -> Result<()> {
    for build in [Build::P2, Build::P3] {
        let gate = TcpListener::bind("127.0.0.1:0")?;
        let gate_addr = gate.local_addr()?;
        let policy = Policy::deny_all().allow(&format!("tcp://{gate_addr}"))?;
        let wait = gate_addr.to_string();
        let guest = start_build(build, policy, &["pair", "127.0.0.1:0", "--wait", &wait])?;
        let listener = guest.listening_addr(TIMEOUT)?;
        // Queued on the self listener before the instance's own connection.
        let mut stranger = TcpStream::connect(listener)?;
        let stranger_addr = stranger.local_addr()?;
        drop(accept_within(&gate, TIMEOUT)?);
        let done = guest.wait(TIMEOUT)?;
        done.assert_success();
        let (client, _) = paired(&done.stdout, "127.0.0.1")?;
        assert_ne!(client, stranger_addr);

        stranger.set_read_timeout(Some(TIMEOUT))?;
        let read = stranger.read(&mut [0; 1]);
        assert!(
            matches!(&read, Err(err) if err.kind() == ErrorKind::ConnectionReset),
            "{build:?}: the stranger sees a reset, got {read:?}"
        );
        let refused: Vec<_> = done
            .denials
            .iter()
            .map(|denial| (denial.use_kind, denial.subject.clone(), denial.by.clone()))
            .collect();
        assert_eq!(
            refused,
            [(
                UseKind::TcpAccept,
                Subject::Addr(stranger_addr),
                DecidedBy::DefaultDeny
            )],
            "{build:?}: {done}"
        );

        // With a self listener of its own, a connect to another local listener is
        // judged by the rules: refused.
        let other_listener = watched_listener("127.0.0.1")?;
        let other = other_listener.local_addr()?;
        let policy = Policy::deny_all();
        let other_text = other.to_string();
        let done = start_build(
            build,
            policy,
            &["pair", "127.0.0.1:0", "--wait", &other_text],
        )?
        .wait(TIMEOUT)?;
        done.assert_exit(1);
        assert_eq!(
            done.stderr,
            format!("Error: dial tcp {other}: access denied\n"),
            "{build:?}"
        );
        assert!(
            done.denials
                .iter()
                .any(|denial| denial.use_kind == UseKind::TcpConnect
                    && denial.subject == Subject::Addr(other)),
            "{build:?}: {done}"
        );
        assert_untouched(&other_listener)?;
    }
    Ok(())
}

/// A self connection's sockets count towards the socket cap.
#[test]
pub(crate) fn the_socket_cap_counts_a_pair() -> Result<()> {
    for build in [Build::P2, Build::P3] {
        let sandbox = HARNESS.sandbox().policy(Policy::deny_all()).max_sockets(1);
        let done = HARNESS
            .spawn(sandbox, build.guest(), ["pair", "127.0.0.1:0"])?
            .wait(TIMEOUT)?;
        done.assert_exit(1);
        assert!(
            done.stderr.starts_with("Error: dial tcp 127.0.0.1:"),
            "{build:?}: the listener is the one socket: {done}"
        );
    }
    Ok(())
}

/// A socket the guest drops frees its slot under the cap at once: with a cap of 3, the
/// guest dials out (one socket), waits for the peer to close and drops that socket,
/// then makes a pair (a listener, a client and the connection it accepts: three).
#[test]
fn a_dropped_socket_frees_its_slot() -> Result<()> {
    for build in [Build::P2, Build::P3] {
        let peer = TcpListener::bind("127.0.0.1:0")?;
        let addr = peer.local_addr()?;
        let policy = Policy::deny_all().allow(&format!("tcp://{addr}"))?;
        let sandbox = HARNESS.sandbox().policy(policy).max_sockets(3);
        let guest = HARNESS.spawn(
            sandbox,
            build.guest(),
            ["pair", "127.0.0.1:0", "--wait", &addr.to_string()],
        )?;
        // Accepted and closed at once: the guest's dial reads its end.
        drop(accept_within(&peer, TIMEOUT)?);
        let done = guest.wait(TIMEOUT)?;
        done.assert_exit(0);
        paired(&done.stdout, "127.0.0.1").with_context(|| format!("{build:?}: {done}"))?;
    }
    Ok(())
}

/// An asyncio client built by componentize-py (`examples/py-client`) reaches its
/// server with only the grant for that server: asyncio's self-pipe, a loopback socket
/// pair, is audited as `"rule":"self"`. With `--no-self` the pair is refused, named.
#[test]
fn python_asyncio_needs_only_its_server() -> Result<()> {
    let wasm = env!("PY_CLIENT_WASM");
    ensure!(
        !wasm.is_empty(),
        "examples/py-client was not built: install componentize-py (pip install componentize-py==0.25.1) and build again"
    );
    let server = TcpListener::bind("127.0.0.1:0")?;
    let addr = server.local_addr()?;
    let audit = tempfile::NamedTempFile::new()?;
    let run = |extra: &[&str]| -> Result<Process> {
        let mut command = sockbox();
        command
            .args(["run", "--wasm", wasm, "--allow"])
            .arg(format!("tcp://{addr}"))
            .arg("--audit")
            .arg(audit.path())
            .args(extra)
            .args(["--", &addr.to_string(), "hello"]);
        Process::spawn(command)
    };
    let client = run(&[])?;
    assert_eq!(answer_once(&server, b"olleh")?, b"hello");
    let done = client.wait()?;
    ensure!(done.code()? == 0, "{done}");
    assert_eq!(done.stdout, "reply: olleh\n");
    let lines = std::fs::read_to_string(audit.path())?;
    let uses: Vec<(String, String)> = lines
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line)?;
            Ok((
                format!(
                    "{} {}",
                    line["use"].as_str().unwrap_or("?"),
                    line["verdict"].as_str().unwrap_or("?")
                ),
                line["rule"].as_str().unwrap_or("?").to_owned(),
            ))
        })
        .collect::<Result<_>>()?;
    for use_kind in ["tcp-bind", "tcp-listen", "tcp-connect", "tcp-accept"] {
        let allowed = format!("{use_kind} allow");
        assert!(
            uses.contains(&(allowed, "self".to_owned())),
            "{use_kind} by self: {lines}"
        );
    }
    assert!(
        uses.contains(&("tcp-connect allow".to_owned(), format!("tcp://{addr}"))),
        "{lines}"
    );
    assert!(
        uses.iter()
            .all(|(use_kind, _)| use_kind.ends_with(" allow")),
        "nothing was refused: {lines}"
    );

    // Before self connections: asyncio cannot make its self-pipe.
    let done = run(&["--no-self"])?.wait()?;
    ensure!(done.code()? != 0, "{done}");
    let lines = std::fs::read_to_string(audit.path())?;
    assert!(
        lines.lines().any(|line| line.contains(
            r#""use":"tcp-bind","address":"127.0.0.1:0","verdict":"deny","rule":"default-deny""#
        )),
        "{lines}"
    );
    Ok(())
}

//! `sockbox policy suggest` through the real binary: a workload of the built-in guest
//! (dials by name and by address, a UDP exchange, a lookup, a server and its peer) run
//! with `--audit-only`; its suggestion, enforced, refuses nothing of the same workload
//! and still refuses what the audit did not contain. Bad audits are one line each.

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::Command;

use anyhow::{Result, ensure};

use crate::common::{Finished, Process, TIMEOUT, answer_once, echo_round_trip, sockbox};

/// The peers the workload talks to, kept for both runs so their ports stay the same.
struct Peers {
    by_name: TcpListener,
    by_address: TcpListener,
    udp: UdpSocket,
    /// A listener the workload never dials.
    unseen: TcpListener,
}

impl Peers {
    fn new() -> Result<Self> {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        udp.set_read_timeout(Some(TIMEOUT))?;
        Ok(Self {
            by_name: TcpListener::bind("127.0.0.1:0")?,
            by_address: TcpListener::bind("127.0.0.1:0")?,
            udp,
            unseen: TcpListener::bind("127.0.0.1:0")?,
        })
    }
}

/// `sockbox run` with `policy` (flags before `--`), the audit in `audit`, and `args`.
fn run(policy: &[&str], audit: &Path, args: &[String]) -> Command {
    let mut command = sockbox();
    command
        .arg("run")
        .args(policy)
        .arg("--audit")
        .arg(audit)
        .arg("--")
        .args(args);
    command
}

/// Runs the workload once, each step's audit in `dir`, and returns the audits.
fn workload(peers: &Peers, policy: &[&str], dir: &Path) -> Result<Vec<String>> {
    let mut audits = Vec::new();
    let mut audit = |name: &str| {
        let path = dir.join(format!("{name}.jsonl"));
        audits.push(path.display().to_string());
        path
    };
    let port = |listener: &TcpListener| listener.local_addr().map(|addr| addr.port());

    // Two dials: by name, by address; each peer answers.
    for (step, target, listener) in [
        (
            "dial-name",
            format!("localhost:{}", port(&peers.by_name)?),
            &peers.by_name,
        ),
        (
            "dial-address",
            format!("127.0.0.1:{}", port(&peers.by_address)?),
            &peers.by_address,
        ),
    ] {
        let listener = listener.try_clone()?;
        let answer = std::thread::spawn(move || answer_once(&listener, b"pong"));
        let done = Process::run(run(
            policy,
            &audit(step),
            &["dial".into(), target, "ping".into()],
        ))?;
        ensure!(
            done.status.success() && done.stdout == "Received: pong\n",
            "{step}: {done}"
        );
        answer.join().expect("the peer's thread")?;
    }

    // A UDP exchange: the peer answers the datagram.
    let udp = peers.udp.try_clone()?;
    let echo = std::thread::spawn(move || -> Result<()> {
        let mut buf = [0; 64];
        let (n, from) = udp.recv_from(&mut buf)?;
        udp.send_to(&buf[..n], from)?;
        Ok(())
    });
    let target = peers.udp.local_addr()?.to_string();
    let done = Process::run(run(
        policy,
        &audit("udp-send"),
        &[
            "udp-send".into(),
            target,
            "hello".into(),
            "--timeout".into(),
            "10s".into(),
        ],
    ))?;
    ensure!(
        done.status.success() && done.stdout == "Received: hello\n",
        "udp-send: {done}"
    );
    echo.join().expect("the peer's thread")?;

    // A lookup.
    let done = Process::run(run(
        policy,
        &audit("lookup"),
        &["lookup".into(), "localhost".into()],
    ))?;
    ensure!(done.status.success(), "lookup: {done}");

    // A server on a port the system picks, and a peer of the test's.
    let server = Process::spawn(run(
        policy,
        &audit("listen"),
        &["listen".into(), "127.0.0.1:0".into()],
    ))?;
    let addr = server.listening_addr()?;
    let reply = echo_round_trip(addr, b"hi server")?;
    ensure!(
        reply == b"Hello, World!",
        "listen: {:?}",
        String::from_utf8_lossy(&reply)
    );
    let done = server.wait()?;
    ensure!(
        done.status.success() && done.stdout.contains("Received: hi server"),
        "listen: {done}"
    );
    Ok(audits)
}

/// Every `deny` and `would-deny` line of the audits.
fn refusals(audits: &[String]) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for audit in audits {
        for line in std::fs::read_to_string(audit)?.lines() {
            if line.contains(r#""verdict":"deny""#) || line.contains(r#""verdict":"would-deny""#) {
                lines.push(line.to_owned());
            }
        }
    }
    Ok(lines)
}

/// The loop the README gives: audit only, suggest, enforce — nothing of the same
/// workload refused, and a dial the audit never saw still refused.
#[test]
fn a_suggested_policy_enforces_what_the_audit_saw_and_no_more() -> Result<()> {
    let peers = Peers::new()?;
    let dir = tempfile::tempdir()?;
    let learned = dir.path().join("learned");
    let enforced = dir.path().join("enforced");
    std::fs::create_dir_all(&learned)?;
    std::fs::create_dir_all(&enforced)?;

    let audits = workload(&peers, &["--audit-only"], &learned)?;
    ensure!(
        !refusals(&audits)?.is_empty(),
        "an audit-only run with no rules refuses something"
    );

    let mut suggest = sockbox();
    suggest.args(["policy", "suggest"]).args(&audits);
    let suggested = Process::run(suggest)?;
    ensure!(
        suggested.status.success() && suggested.stderr.is_empty(),
        "{suggested}"
    );
    let toml = &suggested.stdout;
    // Names stay names; the ports the system picked are any port; peers' too.
    let name_port = peers.by_name.local_addr()?.port();
    for rule in [
        format!("\"tcp://localhost:{name_port}\""),
        format!("\"tcp://{}\"", peers.by_address.local_addr()?),
        format!("\"udp://{}\"", peers.udp.local_addr()?),
        "\"tcp://127.0.0.1:*\"".to_owned(),
    ] {
        ensure!(toml.contains(&rule), "no {rule} in:\n{toml}");
    }
    ensure!(!toml.contains("127.0.0.1:0"), "{toml}");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, toml)?;
    let policy_arg = policy.display().to_string();

    let audits = workload(&peers, &["--policy", &policy_arg], &enforced)?;
    let refused = refusals(&audits)?;
    ensure!(
        refused.is_empty(),
        "refused under the suggestion:\n{}\n{toml}",
        refused.join("\n")
    );

    // A use the audit did not contain: a listener it never dialled.
    let unseen = peers.unseen.local_addr()?;
    let mut dial = sockbox();
    dial.args([
        "run",
        "--policy",
        &policy_arg,
        "--",
        "dial",
        &unseen.to_string(),
    ]);
    let done = Process::run(dial)?;
    ensure!(done.status.code() == Some(1), "{done}");
    ensure!(done.stderr.contains("access denied"), "{done}");
    peers.unseen.set_nonblocking(true)?;
    ensure!(
        peers.unseen.accept().is_err(),
        "the unseen listener was reached"
    );
    Ok(())
}

/// A malformed or truncated audit line is one line naming the file and the line
/// number, exit 2; a missing file likewise.
#[test]
fn a_bad_audit_is_one_line_naming_the_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let good = r#"{"time":"t","instance":"i","use":"tcp-connect","address":"10.0.0.1:80","verdict":"allow","rule":"x"}"#;
    let cases = [
        (
            format!("{good}\n{}", &good[..40]),
            "audit.jsonl:2: a truncated audit line",
        ),
        (
            format!("{good}\n\n{{}}\n"),
            "audit.jsonl:3: not an audit line: missing field `instance`",
        ),
        (
            good.replace("tcp-connect", "teleport"),
            "audit.jsonl:1: not an audit line: unknown variant `teleport`",
        ),
    ];
    for (text, expected) in cases {
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, &text)?;
        let mut suggest = sockbox();
        suggest.args(["policy", "suggest"]).arg(&path);
        let done = Process::run(suggest)?;
        ensure!(done.status.code() == Some(2), "{done}");
        ensure!(done.stdout.is_empty(), "{done}");
        let lines: Vec<&str> = done.stderr.lines().collect();
        ensure!(
            lines.len() == 1 && lines[0].contains(expected),
            "{expected}: {done}"
        );
    }
    let mut missing = sockbox();
    missing
        .args(["policy", "suggest"])
        .arg(dir.path().join("none.jsonl"));
    let done = Process::run(missing)?;
    ensure!(
        done.status.code() == Some(2) && done.stderr.lines().count() == 1,
        "{done}"
    );
    Ok(())
}

/// Standard input, `--group` and `--format annotations`.
#[test]
fn suggest_reads_standard_input_and_prints_annotations() -> Result<()> {
    let lines = [
        r#"{"time":"t","instance":"i","use":"tcp-connect","address":"10.0.0.1:80","verdict":"would-deny","rule":"default-deny"}"#,
        r#"{"time":"t","instance":"i","use":"tcp-connect","address":"10.0.0.1:81","verdict":"would-deny","rule":"default-deny"}"#,
        r#"{"time":"t","instance":"i","use":"tcp-connect","address":"169.254.169.254:80","verdict":"would-deny","rule":"special:metadata"}"#,
    ];
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("audit.jsonl");
    std::fs::write(&input, lines.join("\n"))?;
    let mut suggest = sockbox();
    suggest
        .args([
            "policy",
            "suggest",
            "--group",
            "ports",
            "--format",
            "annotations",
            "-",
        ])
        .stdin(std::fs::File::open(&input)?);
    // Reading a file to its end: it cannot wait on anything.
    let output = suggest.output()?;
    let done = Finished {
        status: output.status,
        stdout: String::from_utf8(output.stdout)?,
        stderr: String::from_utf8(output.stderr)?,
    };
    ensure!(done.status.success(), "{done}");
    ensure!(
        done.stdout
            .contains("sockbox.io/allow: \"tcp://10.0.0.1:80-81\""),
        "{done}"
    );
    ensure!(
        done.stdout
            .contains("# sockbox.io/allow: tcp://169.254.169.254:80"),
        "{done}"
    );
    ensure!(
        done.stderr
            .starts_with("sockbox: warning: the special-address preset refused")
            && done.stderr.lines().count() == 1,
        "{done}"
    );
    Ok(())
}

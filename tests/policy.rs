//! The policy at work on the real guest, through `sockbox run`: what each attempt does
//! (exit status, output, `access denied` in Go's words), and the audit file's line for
//! every decision. (Over 400 lines: the matrix of rules × attempts, one table.)

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

use crate::common::{Process, TIMEOUT, assert_untouched, sockbox, watched_listener};

/// Runs `sockbox run ARGS -- GUEST` with an audit file; returns how it ended and the
/// audit lines, each as `USE SUBJECT VERDICT [DIRECTION] RULE`.
fn run_audited(
    dir: &Path,
    tag: &str,
    args: &[String],
    guest: &[&str],
) -> Result<(i32, String, String, Vec<String>)> {
    let audit = dir.join(format!("{tag}.jsonl"));
    let mut command = sockbox();
    command
        .arg("run")
        .args(args)
        .arg("--audit")
        .arg(&audit)
        .arg("--")
        .args(guest);
    let done = Process::run(command)?;
    let lines = audit_lines(&audit)?
        .into_iter()
        .map(|line| ephemeral_bind_port(&line))
        .collect();
    Ok((done.code()?, done.stdout, done.stderr, lines))
}

/// An audit line of a bind to the unspecified address with the port the system picked
/// (`udp-bind 0.0.0.0:43518 …`, the bind judged again on what it got), with that port
/// written `P`.
fn ephemeral_bind_port(line: &str) -> String {
    for prefix in ["udp-bind 0.0.0.0:", "tcp-bind 0.0.0.0:"] {
        if let Some(rest) = line.strip_prefix(prefix)
            && let Some((port, verdict)) = rest.split_once(' ')
            && port != "0"
        {
            return format!("{prefix}P {verdict}");
        }
    }
    line.to_owned()
}

/// Reads an audit file, checking each line's fields, as `USE SUBJECT VERDICT [DIRECTION] RULE`.
fn audit_lines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    text.lines()
        .map(|line| {
            let record: Value =
                serde_json::from_str(line).with_context(|| format!("parse `{line}`"))?;
            let field = |name: &str| record.get(name).and_then(Value::as_str);
            let time = field("time").context("time")?;
            ensure!(
                time.ends_with('Z') && time.len() == 24,
                "RFC 3339 time in `{line}`"
            );
            ensure!(
                field("instance") == Some("sockbox-guest"),
                "instance in `{line}`"
            );
            let subject = field("address")
                .or(field("name"))
                .context("address or name")?;
            let mut compact = vec![
                field("use").context("use")?,
                subject,
                field("verdict").context("verdict")?,
            ];
            compact.extend(field("direction"));
            compact.push(field("rule").context("rule")?);
            Ok(compact.join(" "))
        })
        .collect()
}

/// A native server that answers every connection `pong` after the peer half-closes,
/// serving at most `limit` connections, in a thread.
fn pong_server(limit: usize) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming().take(limit) {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(TIMEOUT));
            let mut sink = Vec::new();
            let _ = conn.read_to_end(&mut sink);
            let _ = conn.write_all(b"pong");
        }
    });
    Ok(addr)
}

/// The audit lines `dial NAME:PORT` gives when the lookup is allowed by `lookup_rule`
/// (its answers by the same rule) and each address NAME resolves to (in resolver order, as the guest tries them) is
/// judged by `verdict(addr)` until one connects (`connects(addr)`).
fn dial_by_name_lines(
    name: &str,
    port: u16,
    lookup_rule: &str,
    bind_rule: &str,
    verdict: impl Fn(SocketAddr) -> String,
    connects: impl Fn(SocketAddr) -> bool,
) -> Result<Vec<String>> {
    let mut lines = vec![format!("lookup {name} allow allow {lookup_rule}")];
    let addrs: Vec<SocketAddr> = (name, port).to_socket_addrs()?.collect();
    // Each answer is decided before the guest sees it.
    for addr in &addrs {
        let ip = addr.ip().to_canonical();
        lines.push(format!("lookup-answer {ip} allow allow {lookup_rule}"));
    }
    for addr in addrs {
        let addr = SocketAddr::new(addr.ip().to_canonical(), port);
        let unspecified = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        lines.push(format!("tcp-bind {unspecified} allow allow {bind_rule}"));
        lines.push(format!("tcp-connect {addr} {}", verdict(addr)));
        if connects(addr) {
            break;
        }
    }
    Ok(lines)
}

/// An attempt and its expected outcome: guest arguments, exit status, stdout, stderr,
/// audit lines.
type Case = (Vec<String>, i32, String, String, Vec<String>);

/// One policy — from a file plus flags — and a list of attempts: each attempt's exit
/// status, stdout, stderr and audit lines are exactly the expected ones, and denied
/// connects never reach their listeners.
#[test]
fn attempts_match_the_policy_matrix() -> Result<()> {
    policy_matrix(&[])
}

/// The same matrix, the same lines, with the guest's WASI 0.3 build (`--p3`): the
/// policy and the audit hold for p3's binds, connects, listens, accepts and lookups.
#[test]
fn attempts_match_the_policy_matrix_p3() -> Result<()> {
    policy_matrix(&["--p3"])
}

/// The matrix, run with `build` among `sockbox run`'s flags.
fn policy_matrix(build: &[&str]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let open = pong_server(3)?;
    let denied = watched_listener("127.0.0.1")?;
    let uncovered = watched_listener("127.0.0.1")?;
    let (a, b, c) = (
        open.port(),
        denied.local_addr()?.port(),
        uncovered.local_addr()?.port(),
    );
    let file = dir.path().join("policy.toml");
    std::fs::write(
        &file,
        format!(
            "# the matrix's policy\n\
             allow = [\"tcp://127.0.0.1:{{{a},{b}}}\", \"tcp://localhost:{a}\"]\n\
             deny = [\"tcp://127.0.0.1:{b}\"]\n"
        ),
    )?;
    // The rules' matrix: self connections (`self_connections.rs`) are off, so a listen
    // on [::1] port 0 is refused as the rules refuse it.
    let args: Vec<String> = [
        "--policy",
        file.to_str().context("UTF-8 path")?,
        "--allow-listen",
        "tcp://127.0.0.1:*",
        "--no-self",
    ]
    .iter()
    .chain(build)
    .map(|arg| (*arg).to_owned())
    .collect();
    let allow_rule = format!("tcp://127.0.0.1:{{{a},{b}}}");
    let name_rule = format!("tcp://localhost:{a}");
    let bind = format!("tcp-bind 0.0.0.0:0 allow allow {allow_rule}");

    let mut cases: Vec<Case> = vec![
        (
            vec!["dial".into(), format!("127.0.0.1:{a}")],
            0,
            "Received: pong\n".into(),
            String::new(),
            vec![
                bind.clone(),
                format!("tcp-connect 127.0.0.1:{a} allow allow {allow_rule}"),
            ],
        ),
        (
            vec!["dial".into(), format!("127.0.0.1:{b}")],
            1,
            String::new(),
            format!("Error: dial tcp 127.0.0.1:{b}: access denied\n"),
            vec![
                bind.clone(),
                format!("tcp-connect 127.0.0.1:{b} deny deny tcp://127.0.0.1:{b}"),
            ],
        ),
        (
            vec!["dial".into(), format!("127.0.0.1:{c}")],
            1,
            String::new(),
            format!("Error: dial tcp 127.0.0.1:{c}: access denied\n"),
            vec![
                bind.clone(),
                format!("tcp-connect 127.0.0.1:{c} deny default-deny"),
            ],
        ),
        (
            vec!["dial".into(), "not-in-any-rule.invalid:80".into()],
            1,
            String::new(),
            "Error: dial tcp: lookup not-in-any-rule.invalid: no such host\n".into(),
            vec!["lookup not-in-any-rule.invalid deny default-deny".into()],
        ),
        (
            vec![
                "echo".into(),
                "127.0.0.1:0".into(),
                "--count".into(),
                "0".into(),
            ],
            0,
            "listening on 127.0.0.1:PORT\n".into(),
            String::new(),
            vec![
                "tcp-bind 127.0.0.1:0 allow listen tcp://127.0.0.1:*".into(),
                // Judged again on the port it got.
                "tcp-bind 127.0.0.1:PORT allow listen tcp://127.0.0.1:*".into(),
                "tcp-listen 127.0.0.1:PORT allow listen tcp://127.0.0.1:*".into(),
            ],
        ),
        (
            vec![
                "echo".into(),
                "[::1]:0".into(),
                "--count".into(),
                "0".into(),
            ],
            1,
            String::new(),
            "Error: listen tcp [::1]:0: access denied\n".into(),
            vec!["tcp-bind [::1]:0 deny default-deny".into()],
        ),
    ];
    // By name: localhost is allowed for port a only, and only through the lookup.
    let by_name_ok = dial_by_name_lines(
        "localhost",
        a,
        &name_rule,
        &allow_rule,
        |addr| {
            if addr.is_ipv4() {
                format!("allow allow {allow_rule}")
            } else {
                format!("allow allow {name_rule}")
            }
        },
        |addr| addr == open,
    )?;
    cases.push((
        vec!["dial".into(), format!("localhost:{a}")],
        0,
        "Received: pong\n".into(),
        String::new(),
        by_name_ok.clone(),
    ));
    // A name is judged (and looked up) as lookups see it: lowercase, without a final dot.
    cases.push((
        vec!["dial".into(), format!("LocalHost.:{a}")],
        0,
        "Received: pong\n".into(),
        String::new(),
        by_name_ok,
    ));
    let by_name_denied = dial_by_name_lines(
        "localhost",
        c,
        &name_rule,
        &allow_rule,
        |_| "deny default-deny".into(),
        |_| false,
    )?;
    let last = by_name_denied
        .last()
        .and_then(|line| line.split(' ').nth(1))
        .context("localhost resolves")?
        .to_owned();
    cases.push((
        vec!["dial".into(), format!("localhost:{c}")],
        1,
        String::new(),
        format!("Error: dial tcp {last}: access denied\n"),
        by_name_denied,
    ));

    let results = std::thread::scope(|scope| {
        let runs: Vec<_> = cases
            .iter()
            .enumerate()
            .map(|(i, (guest, ..))| {
                let args = &args;
                let dir = dir.path();
                scope.spawn(move || {
                    let guest: Vec<&str> = guest.iter().map(String::as_str).collect();
                    run_audited(dir, &format!("case{i}"), args, &guest)
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("no panic"))
            .collect::<Vec<_>>()
    });
    for ((guest, exit, stdout, stderr, audit), result) in cases.iter().zip(results) {
        let (got_exit, got_stdout, got_stderr, got_audit) = result?;
        // A listener's port is the OS's choice: compare it as PORT.
        let port = got_stdout
            .strip_prefix("listening on 127.0.0.1:")
            .map(|rest| rest.trim_end().to_owned());
        let normalize = |text: &str| match &port {
            Some(port) => text.replace(&format!("127.0.0.1:{port}"), "127.0.0.1:PORT"),
            None => text.to_owned(),
        };
        let got_audit: Vec<String> = got_audit.iter().map(|line| normalize(line)).collect();
        assert_eq!(
            (
                got_exit,
                normalize(&got_stdout).as_str(),
                got_stderr.as_str()
            ),
            (*exit, stdout.as_str(), stderr.as_str()),
            "{guest:?}"
        );
        assert_eq!(&got_audit, audit, "audit lines of {guest:?}");
    }
    assert_untouched(&denied)?;
    assert_untouched(&uncovered)
}

/// `--allow-accept` chooses which peers a listener accepts: a peer it does not cover is
/// reset and audited as denied, and serving goes on for the next, covered peer.
#[test]
fn accept_rules_choose_peers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let audit = dir.path().join("audit.jsonl");
    let mut command = sockbox();
    command.args([
        "run",
        "--allow-listen",
        "tcp://127.0.0.1:*",
        "--allow-accept",
        "tcp://127.0.0.2:*",
        "--audit",
        audit.to_str().context("UTF-8 path")?,
        "--",
        "echo",
        "127.0.0.1:0",
        "--count",
        "1",
    ]);
    let server = Process::spawn(command)?;
    let addr = server.listening_addr()?;

    // From 127.0.0.1: reset without a byte.
    let mut refused = TcpStream::connect(addr)?;
    refused.set_read_timeout(Some(TIMEOUT))?;
    let _ = refused.write_all(b"let me in");
    let mut got = Vec::new();
    let read = refused.read_to_end(&mut got);
    ensure!(
        got.is_empty(),
        "a refused peer got bytes: {got:?} ({read:?})"
    );
    let refused_from = refused.local_addr()?;

    // From 127.0.0.2: served.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&"127.0.0.2:0".parse::<SocketAddr>()?.into())?;
    socket.connect(&addr.into())?;
    let mut allowed: TcpStream = socket.into();
    allowed.set_read_timeout(Some(TIMEOUT))?;
    allowed.write_all(b"hello")?;
    allowed.shutdown(Shutdown::Write)?;
    let mut echoed = Vec::new();
    allowed.read_to_end(&mut echoed)?;
    assert_eq!(echoed, b"hello");
    let allowed_from = allowed.local_addr()?;

    let done = server.wait()?;
    assert_eq!((done.code()?, done.stderr.as_str()), (0, ""), "{done}");
    assert_eq!(
        audit_lines(&audit)?,
        [
            "tcp-bind 127.0.0.1:0 allow listen tcp://127.0.0.1:*".to_owned(),
            format!("tcp-bind {addr} allow listen tcp://127.0.0.1:*"),
            format!("tcp-listen {addr} allow listen tcp://127.0.0.1:*"),
            format!("tcp-accept {refused_from} deny default-deny"),
            format!("tcp-accept {allowed_from} allow accept tcp://127.0.0.2:*"),
        ]
    );
    Ok(())
}

/// Without `--audit`, each distinct denial is one `sockbox: denied …` line on stderr —
/// a lookup's too — before the guest's own error line.
#[test]
fn denials_without_audit_go_to_stderr_once() -> Result<()> {
    let mut command = sockbox();
    command.args([
        "run",
        "--allow",
        "tcp://10.0.0.0/8:*",
        "--",
        "dial",
        "nowhere.invalid:80",
    ]);
    let done = Process::run(command)?;
    assert_eq!(done.code()?, 1, "{done}");
    assert_eq!(
        done.stderr,
        "sockbox: denied lookup of nowhere.invalid (no rule allows it)\n\
         Error: dial tcp: lookup nowhere.invalid: non-recoverable failure in name resolution\n"
    );
    Ok(())
}

/// A name rule grants only what a lookup in the same instance returned: dialing the
/// address directly, without the lookup, is denied.
#[test]
fn a_name_rule_does_not_allow_the_address_without_a_lookup() -> Result<()> {
    let listener = watched_listener("127.0.0.1")?;
    let addr = listener.local_addr()?;
    let mut command = sockbox();
    command.args([
        "run".to_owned(),
        "--allow".to_owned(),
        format!("tcp://localhost:{}", addr.port()),
        "--".to_owned(),
        "dial".to_owned(),
        addr.to_string(),
    ]);
    let done = Process::run(command)?;
    assert_eq!(done.code()?, 1, "{done}");
    assert_eq!(
        done.stderr,
        format!(
            "sockbox: denied tcp connect to {addr} (no rule allows it)\n\
             Error: dial tcp {addr}: access denied\n"
        )
    );
    assert_untouched(&listener)
}

/// Bad policy files and rules: one precise line, exit 2, and no guest code runs (the
/// guest would print usage for `frobnicate`; an audit file is never created).
#[test]
fn bad_policies_stop_before_the_guest_runs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let write = |name: &str, text: &str| -> Result<String> {
        let path = dir.path().join(name);
        std::fs::write(&path, text)?;
        Ok(path.to_str().context("UTF-8 path")?.to_owned())
    };
    let unknown_key = write(
        "unknown.toml",
        "allow = []\n\nalow = [\"tcp://10.0.0.1:80\"]\n",
    )?;
    let bad_rule = write(
        "bad-rule.toml",
        "deny = [\n  \"tcp://10.0.0.1:80\",\n  \"tcp://10.0.0.0/33:80\",\n]\n",
    )?;
    let bad_toml = write("bad.toml", "allow = [\"tcp://10.0.0.1:80\"\n")?;
    let bad_port = write("port.toml", "listen = [\"tcp://127.0.0.1:70000\"]\n")?;
    let missing = dir
        .path()
        .join("missing.toml")
        .to_str()
        .context("UTF-8 path")?
        .to_owned();
    let audit = dir.path().join("audit.jsonl");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--policy", &unknown_key],
            format!("sockbox: {unknown_key}:3: unknown field `alow`, expected one of `inherit_network`, `allow`, `listen`, `accept`, `deny`, `mode`, `allow_special`, `no_self`, `publish`, `nat64_prefixes`\n"),
        ),
        (
            vec!["--policy", &bad_rule],
            format!("sockbox: {bad_rule}:3: deny: invalid rule `tcp://10.0.0.0/33:80`: host prefix length `/33` is not between 0 and 32\n"),
        ),
        (
            vec!["--policy", &bad_port],
            format!("sockbox: {bad_port}:1: listen: invalid rule `tcp://127.0.0.1:70000`: ports port 70000 is out of range (1-65535)\n"),
        ),
        (
            vec!["--policy", &missing],
            format!("sockbox: {missing}: cannot read the policy file: No such file or directory (os error 2)\n"),
        ),
        (
            vec!["--deny", "tcp://{}:80"],
            "sockbox: invalid rule `tcp://{}:80`: host list `{}` is empty: give at least one of the hosts\n".into(),
        ),
        (
            vec!["--allow", "tcp://"],
            "sockbox: invalid rule `tcp://`: rule has nothing after the scheme: expected HOST:PORTS, for example 127.0.0.1:8080\n".into(),
        ),
    ];
    for (flags, expected) in &cases {
        let mut command = sockbox();
        command
            .arg("run")
            .args(flags)
            .arg("--audit")
            .arg(&audit)
            .args(["--", "frobnicate"]);
        let done = Process::run(command)?;
        assert_eq!(
            (done.code()?, done.stdout.as_str()),
            (2, ""),
            "{flags:?}: {done}"
        );
        assert_eq!(&done.stderr, expected, "{flags:?}");
        ensure!(!audit.exists(), "{flags:?}: the audit file was created");
    }
    // `policy check` reports the same errors the same way.
    let mut check = sockbox();
    check.args(["policy", "check", &bad_toml]);
    let done = Process::run(check)?;
    assert_eq!(done.code()?, 2, "{done}");
    ensure!(
        done.stderr.starts_with(&format!("sockbox: {bad_toml}:1: "))
            && done.stderr.lines().count() == 1,
        "{done}"
    );
    Ok(())
}

/// `policy check` lists the effective rules and what the sandbox enables; `policy
/// explain` prints the verdict and the deciding rule, exit 0 allowed and 1 denied.
#[test]
fn policy_check_and_explain() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("policy.toml");
    std::fs::write(
        &file,
        "allow = [\"tcp://*.example.com:443\", \"udp://10.0.0.53:53\"]\n\
         listen = [\"tcp://127.0.0.1:8080\"]\n\
         accept = [\"udp://10.0.0.0/8:*\"]\n\
         deny = [\"tcp://bad.example.com:*\"]\n",
    )?;
    let file = file.to_str().context("UTF-8 path")?;
    let mut check = sockbox();
    check.args(["policy", "check", file]);
    let done = Process::run(check)?;
    assert_eq!((done.code()?, done.stderr.as_str()), (0, ""), "{done}");
    assert_eq!(
        done.stdout,
        "allow  tcp://*.example.com:443\n\
         allow  udp://10.0.0.53:53\n\
         listen tcp://127.0.0.1:8080\n\
         accept udp://10.0.0.0/8:*\n\
         deny   tcp://bad.example.com:*\n\
         mode: enforce (denials are refused)\n\
         special addresses: denied unless a rule names them (metadata, link-local, multicast, broadcast, unspecified)\n\
         self connections: on (an instance's own loopback socket pairs need no rule)\n\
         tcp: on, udp: on, name lookups: on\n\
         note: udp accept rules have no effect without a udp listen rule\n"
    );

    for (extra, attempt, code, line) in [
        (
            &[][..],
            "connect tcp www.example.com:443",
            0,
            "allowed tcp connect to www.example.com:443 (by --allow tcp://*.example.com:443)",
        ),
        (
            &[],
            "connect tcp bad.example.com:443",
            1,
            "denied tcp connect to bad.example.com:443 (by --deny tcp://bad.example.com:*)",
        ),
        (
            &[],
            "connect tcp 10.1.2.3:443",
            1,
            "denied tcp connect to 10.1.2.3:443 (no rule allows it)",
        ),
        (
            &["--allow", "tcp://10.0.0.0/8:443"],
            "connect tcp 10.1.2.3:443",
            0,
            "allowed tcp connect to 10.1.2.3:443 (by --allow tcp://10.0.0.0/8:443)",
        ),
        (
            &[],
            "send udp 10.0.0.53:53",
            0,
            "allowed udp send to 10.0.0.53:53 (by --allow udp://10.0.0.53:53)",
        ),
        (
            &[],
            "listen tcp 127.0.0.1:8080",
            0,
            "allowed tcp listen on 127.0.0.1:8080 (by --allow-listen tcp://127.0.0.1:8080)",
        ),
        (
            &[],
            "lookup example.org",
            1,
            "denied lookup of example.org (no rule allows it)",
        ),
        (
            &["--deny", "*://www.example.com:*"],
            "lookup www.example.com",
            1,
            "denied lookup of www.example.com (by --deny *://www.example.com:*)",
        ),
        // Self connections: a loopback port-0 bind is one; --own decides the rest as
        // on the instance's own sockets.
        (
            &[],
            "bind tcp [::1]:0",
            0,
            "allowed tcp bind to [::1]:0 (by self)",
        ),
        (
            &[],
            "connect tcp 127.0.0.1:41234",
            1,
            "denied tcp connect to 127.0.0.1:41234 (no rule allows it)",
        ),
        (
            &["--own"],
            "connect tcp 127.0.0.1:41234",
            0,
            "allowed tcp connect to 127.0.0.1:41234 (by self)",
        ),
        // The rules decide first: the file's listen rule accepts any peer.
        (
            &["--own"],
            "accept tcp 127.0.0.1:41235",
            0,
            "allowed tcp accept from 127.0.0.1:41235 (by --allow-listen tcp://127.0.0.1:8080)",
        ),
        (
            &["--own", "--no-self"],
            "listen tcp 127.0.0.1:41234",
            1,
            "denied tcp listen on 127.0.0.1:41234 (no rule allows it)",
        ),
        (
            &["--no-self"],
            "bind tcp 127.0.0.1:0",
            1,
            "denied tcp bind to 127.0.0.1:0 (no rule allows it)",
        ),
    ] {
        let mut explain = sockbox();
        explain
            .args(["policy", "explain", "--policy", file])
            .args(extra)
            .args(attempt.split(' '));
        let done = Process::run(explain)?;
        assert_eq!(
            (done.code()?, done.stdout.as_str(), done.stderr.as_str()),
            (code, format!("{line}\n").as_str(), ""),
            "{attempt}"
        );
    }
    let mut bad = sockbox();
    bad.args(["policy", "explain", "frob", "tcp", "10.0.0.1:80"]);
    let done = Process::run(bad)?;
    assert_eq!(
        (done.code()?, done.stderr.as_str()),
        (
            2,
            "sockbox: `frob tcp` is not a use: tcp has connect, bind, listen, accept; udp has bind, send, receive\n"
        )
    );
    let mut bad = sockbox();
    bad.args([
        "policy",
        "explain",
        "--own",
        "connect",
        "tcp",
        "localhost:80",
    ]);
    let done = Process::run(bad)?;
    assert_eq!(
        (done.code()?, done.stderr.as_str()),
        (
            2,
            "sockbox: --own decides an address, not a name: write 127.0.0.1:PORT or [::1]:PORT\n"
        )
    );
    Ok(())
}

/// UDP under the policy: a send where a rule allows it gets its reply, with one audit
/// line per check wasmtime-wasi makes; a send a deny rule covers fails with `access
/// denied` before any datagram leaves; a server replies to whoever it received from.
#[test]
fn udp_uses_follow_the_policy() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let peer = std::net::UdpSocket::bind("127.0.0.1:0")?;
    peer.set_read_timeout(Some(TIMEOUT))?;
    let blocked = std::net::UdpSocket::bind("127.0.0.1:0")?;
    blocked.set_nonblocking(true)?;
    let (open, shut) = (peer.local_addr()?, blocked.local_addr()?);
    let args = [
        "--allow".to_owned(),
        "udp://127.0.0.1:*".to_owned(),
        "--deny".to_owned(),
        format!("udp://{shut}"),
    ];
    let answer = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
        let mut buf = [0; 64];
        let (n, from) = peer.recv_from(&mut buf)?;
        peer.send_to(b"pong", from)?;
        Ok(buf[..n].to_vec())
    });
    let (code, stdout, stderr, audit) = run_audited(
        dir.path(),
        "allowed",
        &args,
        &["udp-send", &open.to_string(), "ping", "--timeout", "10s"],
    )?;
    assert_eq!(
        (code, stdout.as_str(), stderr.as_str()),
        (0, "Received: pong\n", "")
    );
    assert_eq!(answer.join().expect("no panic")?, b"ping");
    let allowed = "allow allow udp://127.0.0.1:*";
    assert_eq!(
        audit,
        [
            format!("udp-bind 0.0.0.0:0 {allowed}"),
            // The bind judged again on the port the system picked.
            format!("udp-bind 0.0.0.0:P {allowed}"),
            // Connecting the socket checks both directions; then the send, then the reply.
            format!("udp-send {open} {allowed}"),
            format!("udp-receive {open} {allowed}"),
            format!("udp-send {open} {allowed}"),
            format!("udp-receive {open} {allowed}"),
        ]
    );

    let (code, stdout, stderr, audit) = run_audited(
        dir.path(),
        "denied",
        &args,
        &["udp-send", &shut.to_string(), "ping", "--timeout", "10s"],
    )?;
    assert_eq!(
        (code, stdout.as_str(), stderr.as_str()),
        (
            1,
            "",
            format!("Error: dial udp {shut}: access denied\n").as_str()
        )
    );
    assert_eq!(
        audit,
        [
            format!("udp-bind 0.0.0.0:0 {allowed}"),
            format!("udp-bind 0.0.0.0:P {allowed}"),
            format!("udp-send {shut} deny deny udp://{shut}"),
        ]
    );
    let mut buf = [0; 8];
    ensure!(
        matches!(blocked.recv_from(&mut buf), Err(err) if err.kind() == ErrorKind::WouldBlock),
        "a denied datagram arrived"
    );
    Ok(())
}

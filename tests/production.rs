//! Policy for production: audit-only rollouts, special addresses refused in every
//! spelling, DNS answers filtered, published ports. Through `sockbox run` and through
//! the embedding API, with both builds of the guest where the guest takes part. (Over
//! 400 lines: four features, each tested through both front ends.)

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc;

use anyhow::{Context as _, Result, ensure};
use sockbox_host::enforce::Published;
use sockbox_host::policy::{DecidedBy, Mode, Policy, Publish, Special, Subject, UseKind};

use crate::common::{Build, HARNESS, Process, TIMEOUT, answer_once, echo_round_trip, sockbox};

/// `run` flags choosing each build of the guest.
const BUILDS: [&[&str]; 2] = [&[], &["--p3"]];

/// Every special address, in every spelling, with its kind. wasmtime-wasi itself
/// refuses some as a TCP target before any policy sees them (`invalid argument`):
/// IPv4-mapped and IPv4-compatible IPv6 addresses, multicast, broadcast and the
/// unspecified address written plainly. The rest reach the policy.
const SPECIAL: [(&str, Special); 44] = [
    // Cloud metadata endpoints.
    ("169.254.169.254", Special::Metadata),
    ("100.100.100.200", Special::Metadata),
    ("[fd00:ec2::254]", Special::Metadata),
    ("[::ffff:169.254.169.254]", Special::Metadata),
    ("[::ffff:100.100.100.200]", Special::Metadata),
    ("[::169.254.169.254]", Special::Metadata),
    ("[::100.100.100.200]", Special::Metadata),
    ("[64:ff9b::169.254.169.254]", Special::Metadata),
    ("[64:ff9b::a9fe:a9fe]", Special::Metadata),
    ("[64:ff9b::100.100.100.200]", Special::Metadata),
    ("[2002:a9fe:a9fe::]", Special::Metadata),
    ("[2002:a9fe:a9fe:1::1]", Special::Metadata),
    ("[2002:6464:64c8::1]", Special::Metadata),
    // Link-local.
    ("169.254.0.1", Special::LinkLocal),
    ("169.254.255.254", Special::LinkLocal),
    ("[fe80::1]", Special::LinkLocal),
    ("[febf::1]", Special::LinkLocal),
    ("[::ffff:169.254.1.1]", Special::LinkLocal),
    ("[::169.254.1.1]", Special::LinkLocal),
    ("[64:ff9b::169.254.1.1]", Special::LinkLocal),
    ("[2002:a9fe:101::1]", Special::LinkLocal),
    // Multicast.
    ("224.0.0.1", Special::Multicast),
    ("239.255.255.250", Special::Multicast),
    ("[ff02::1]", Special::Multicast),
    ("[ff05::1:3]", Special::Multicast),
    ("[::ffff:224.0.0.251]", Special::Multicast),
    ("[::224.0.0.251]", Special::Multicast),
    ("[64:ff9b::224.0.0.251]", Special::Multicast),
    ("[64:ff9b::efff:fffa]", Special::Multicast),
    ("[2002:e000:fb::1]", Special::Multicast),
    // Limited broadcast.
    ("255.255.255.255", Special::Broadcast),
    ("[::ffff:255.255.255.255]", Special::Broadcast),
    ("[::255.255.255.255]", Special::Broadcast),
    ("[64:ff9b::255.255.255.255]", Special::Broadcast),
    ("[64:ff9b::ffff:ffff]", Special::Broadcast),
    ("[2002:ffff:ffff::1]", Special::Broadcast),
    // The unspecified address as a target.
    ("0.0.0.0", Special::Unspecified),
    ("[::]", Special::Unspecified),
    ("[::ffff:0.0.0.0]", Special::Unspecified),
    ("[64:ff9b::]", Special::Unspecified),
    ("[64:ff9b::0.0.0.0]", Special::Unspecified),
    ("[2002::]", Special::Unspecified),
    ("[2002::1]", Special::Unspecified),
    ("[2002:0:0:1::1]", Special::Unspecified),
];

/// Reports whether wasmtime-wasi refuses `host` as a TCP target itself.
fn refused_by_wasmtime(host: &str, special: Special) -> bool {
    let ip: std::net::IpAddr = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .expect("a test address");
    let plain = matches!(
        special,
        Special::Multicast | Special::Broadcast | Special::Unspecified
    ) && (ip.is_ipv4()
        || ip.to_canonical().is_ipv4()
        || ip.is_multicast()
        || ip.is_unspecified());
    let mapped_or_compatible = match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some() || v6.to_bits() >> 32 == 0,
        std::net::IpAddr::V4(_) => false,
    };
    plain || mapped_or_compatible
}

/// Every special address in every spelling is refused under `--inherit-network` —
/// through the real binary, by the preset where the policy sees it (the audit names
/// `special:KIND`) — and allowed by a rule naming it explicitly (`policy explain`, the
/// same binary), while `*` and `0.0.0.0/0`-wide rules do not.
#[test]
fn special_addresses_are_refused_in_every_spelling() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for (index, (host, special)) in SPECIAL.into_iter().enumerate() {
        let target = format!("{host}:80");
        let audit = dir.path().join(format!("{index}.jsonl"));
        let mut run = sockbox();
        run.args(["run", "--inherit-network", "--audit"])
            .arg(&audit)
            .args(["--", "dial", &target, "--timeout", "2s"]);
        let done = Process::run(run)?;
        ensure!(done.code()? == 1, "{target}: {done}");
        let lines = std::fs::read_to_string(&audit)?;
        if refused_by_wasmtime(host, special) {
            ensure!(done.stderr.contains("invalid argument"), "{target}: {done}");
        } else {
            ensure!(done.stderr.contains("access denied"), "{target}: {done}");
            let rule = format!(r#""verdict":"deny","rule":"{}""#, special.rule_name());
            ensure!(lines.contains(&rule), "{target}: no {rule} in\n{lines}");
        }
        // The preset is the deciding rule in `explain`, under the widest rules.
        let explain = |rules: &[&str]| -> Result<crate::common::Finished> {
            let mut command = sockbox();
            command.args(["policy", "explain"]).args(rules);
            command.args(["connect", "tcp", &target]);
            Process::run(command)
        };
        for wide in [
            &["--inherit-network"][..],
            &["--allow", "tcp://*:*"],
            &["--allow", "tcp://0.0.0.0/0:*", "--allow", "tcp://[::]/0:*"],
        ] {
            let done = explain(wide)?;
            ensure!(done.code()? == 1, "{target} {wide:?}: {done}");
            let by = format!("(by {})", special.rule_name());
            ensure!(done.stdout.contains(&by), "{target} {wide:?}: {done}");
        }
        let explicit = format!("tcp://{host}:80");
        let done = explain(&["--inherit-network", "--allow", &explicit])?;
        ensure!(done.code()? == 0, "{target}: {done}");
        // Addresses print in their canonical spelling: match the words around them.
        ensure!(
            done.stdout.starts_with("allowed tcp connect to ")
                && done.stdout.contains(":80 (by --allow tcp://"),
            "{target}: {done}"
        );
        let done = explain(&["--inherit-network", "--allow-special"])?;
        ensure!(done.code()? == 0, "{target} --allow-special: {done}");
    }
    Ok(())
}

/// UDP reaches the preset where TCP cannot: wasmtime-wasi lets a datagram go to
/// multicast and broadcast addresses, and sockbox refuses it there.
#[test]
fn special_udp_targets_are_refused() -> Result<()> {
    for build in BUILDS {
        for target in ["224.0.0.251:5353", "255.255.255.255:67", "[ff02::fb]:5353"] {
            let mut run = sockbox();
            run.arg("run").args(build);
            run.args(["--inherit-network", "--", "udp-send", target, "hi"]);
            run.args(["--timeout", "1s"]);
            let done = Process::run(run)?;
            ensure!(done.code()? == 1, "{build:?} {target}: {done}");
            ensure!(
                done.stderr.contains("(by special:multicast)")
                    || done.stderr.contains("(by special:broadcast)"),
                "{build:?} {target}: {done}"
            );
        }
    }
    Ok(())
}

/// The preset through the embedding API: a policy that inherits the network refuses
/// the metadata endpoint, names the preset, and lets an explicit rule or
/// `with_special_allowed` through.
#[test]
fn special_addresses_through_the_api() -> Result<()> {
    use sockbox_host::policy::{Decider, SocketAddrUse};
    let target: SocketAddr = "169.254.169.254:80".parse()?;
    let policy = Policy::inherit_network();
    let verdict = policy.decide(target, SocketAddrUse::TcpConnect);
    assert!(!verdict.allowed);
    assert_eq!(verdict.by, Decider::Special(Special::Metadata));
    assert_eq!(policy.describe(verdict.by), "special:metadata");
    let explicit = Policy::inherit_network().allow("tcp://169.254.169.254:80")?;
    assert!(explicit.decide(target, SocketAddrUse::TcpConnect).allowed);
    let link_local = Policy::inherit_network().allow("tcp://169.254.0.0/16:*")?;
    assert!(
        !link_local.decide(target, SocketAddrUse::TcpConnect).allowed,
        "a link-local rule does not name the metadata endpoint"
    );
    let off = Policy::inherit_network().with_special_allowed();
    assert!(off.decide(target, SocketAddrUse::TcpConnect).allowed);
    // A run under that policy: refused before any packet, the denial named by the
    // preset. Both builds of the guest.
    for build in [Build::P2, Build::P3] {
        let output = HARNESS.block_on(
            HARNESS
                .sandbox()
                .policy(Policy::inherit_network())
                .build()
                .run_command(build.guest(), ["dial", "[64:ff9b::a9fe:a9fe]:80"]),
        )?;
        output.assert_exit(1);
        let [denial] = &output.denials[..] else {
            anyhow::bail!("{build:?}: {:?}", output.denials);
        };
        ensure!(
            denial.by == DecidedBy::Special(Special::Metadata) && !denial.allowed,
            "{build:?}: {denial:?}"
        );
    }
    // Loopback is not special.
    let loopback = Policy::inherit_network();
    assert!(
        loopback
            .decide("127.0.0.1:80".parse()?, SocketAddrUse::TcpConnect)
            .allowed
    );
    Ok(())
}

/// Audit only: a dial no rule allows goes through (the native server answers), is
/// recorded as `would-deny` in the audit, and the run ends with a count on stderr.
#[test]
fn audit_only_lets_a_denied_dial_through_and_records_it() -> Result<()> {
    for build in BUILDS {
        let dir = tempfile::tempdir()?;
        let audit = dir.path().join("audit.jsonl");
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mut run = sockbox();
        run.arg("run").args(build).args(["--audit-only", "--audit"]);
        run.arg(&audit)
            .args(["--", "dial", &addr.to_string(), "ping"]);
        let client = Process::spawn(run)?;
        let got = answer_once(&listener, b"pong")?;
        let done = client.wait()?;
        ensure!(done.code()? == 0, "{build:?}: {done}");
        ensure!(got == b"ping", "{build:?}: the server got {got:?}");
        ensure!(done.stdout.contains("Received: pong"), "{build:?}: {done}");
        let lines = std::fs::read_to_string(&audit)?;
        let connect = format!(
            r#""use":"tcp-connect","address":"{addr}","verdict":"would-deny","rule":"default-deny""#
        );
        ensure!(
            lines.contains(&connect),
            "{build:?}: no {connect} in\n{lines}"
        );
        let would_deny = lines.matches(r#""verdict":"would-deny""#).count();
        let summary = format!(
            "sockbox: {would_deny} uses would have been denied; see {}",
            audit.display()
        );
        ensure!(
            done.stderr.contains(&summary),
            "{build:?}: {summary}\n{done}"
        );
        ensure!(!lines.contains(r#""verdict":"deny""#), "{build:?}: {lines}");
    }
    // Without an audit file, each distinct would-be denial is a line of its own.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut run = sockbox();
    run.args(["run", "--audit-only", "--", "dial", &addr.to_string()]);
    let client = Process::spawn(run)?;
    answer_once(&listener, b"pong")?;
    let done = client.wait()?;
    ensure!(done.code()? == 0, "{done}");
    ensure!(
        done.stderr.contains(&format!(
            "sockbox: would deny tcp connect to {addr} (no rule allows it)"
        )),
        "{done}"
    );
    ensure!(
        done.stderr
            .contains("uses would have been denied (listed above)"),
        "{done}"
    );
    // A rule that allows stays quiet; the mode changes nothing that is allowed.
    let mut run = sockbox();
    run.args(["run", "--audit-only", "--allow", &format!("tcp://{addr}")]);
    run.args(["--", "dial", &addr.to_string()]);
    let client = Process::spawn(run)?;
    answer_once(&listener, b"pong")?;
    let done = client.wait()?;
    ensure!(done.code()? == 0, "{done}");
    ensure!(!done.stderr.contains("would"), "{done}");
    Ok(())
}

/// Audit only through the embedding API: the run's output counts the would-be
/// denials, and its denial list marks them.
#[test]
fn audit_only_through_the_api() -> Result<()> {
    for build in [Build::P2, Build::P3] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let policy = Policy::deny_all()
            .allow("tcp://*:*")?
            .deny(&format!("tcp://{}:*", addr.ip()))?
            .with_mode(Mode::Audit);
        let client = HARNESS.spawn(
            HARNESS.sandbox().policy(policy),
            build.guest(),
            ["dial", &addr.to_string()],
        )?;
        answer_once(&listener, b"pong")?;
        let output = client.wait(TIMEOUT)?;
        output.assert_success();
        ensure!(output.would_deny == 1, "{build:?}: {output}");
        let [denial] = &output.denials[..] else {
            anyhow::bail!("{build:?}: {:?}", output.denials);
        };
        ensure!(denial.allowed && denial.would_deny, "{build:?}: {denial:?}");
        ensure!(
            denial.use_kind == UseKind::TcpConnect,
            "{build:?}: {denial:?}"
        );
        ensure!(
            denial.to_string()
                == format!("would deny tcp connect to {addr} (by --deny tcp://127.0.0.1:*)"),
            "{build:?}: {denial}"
        );
    }
    Ok(())
}

/// Answers filtered: `localhost` (127.0.0.1, and ::1 where the system has it) looked up
/// with a deny rule on one family. The refused answers never reach the guest and are
/// audited as `lookup-answer`; when none remain, the name is unresolvable.
#[test]
fn lookup_answers_are_filtered() -> Result<()> {
    let system: Vec<std::net::IpAddr> = std::net::ToSocketAddrs::to_socket_addrs("localhost:0")?
        .map(|addr| addr.ip().to_canonical())
        .collect();
    for build in BUILDS {
        for (deny, refused, kept) in [
            ("tcp://127.0.0.0/8:*", "127.0.0.1", "::1"),
            ("tcp://[::1]:*", "::1", "127.0.0.1"),
        ] {
            let refused_present = system.iter().any(|ip| ip.to_string() == refused);
            let kept_present = system.iter().any(|ip| ip.to_string() == kept);
            let dir = tempfile::tempdir()?;
            let audit = dir.path().join("audit.jsonl");
            let mut run = sockbox();
            run.arg("run").args(build);
            run.args(["--allow", "tcp://localhost:*", "--deny", deny, "--audit"]);
            run.arg(&audit).args(["--", "lookup", "localhost"]);
            let done = Process::run(run)?;
            let lines = std::fs::read_to_string(&audit)?;
            ensure!(!done.stdout.contains(refused), "{build:?} {deny}: {done}");
            if refused_present {
                let line = format!(
                    r#""use":"lookup-answer","address":"{refused}","name":"localhost","verdict":"deny","direction":"deny","rule":"{deny}""#
                );
                ensure!(lines.contains(&line), "{build:?}: no {line} in\n{lines}");
            }
            if kept_present {
                ensure!(done.code()? == 0, "{build:?} {deny}: {done}");
                ensure!(done.stdout.contains(kept), "{build:?} {deny}: {done}");
            } else {
                ensure!(done.code()? == 1, "{build:?} {deny}: {done}");
                ensure!(
                    done.stderr.contains("lookup localhost: no such host"),
                    "{build:?} {deny}: {done}"
                );
            }
        }
    }
    ensure!(
        system.iter().any(std::net::IpAddr::is_ipv4),
        "localhost has no IPv4 address here"
    );
    Ok(())
}

/// Answers filtered through the embedding API: the refused answer is a denial of the
/// run, by the rule that refused it.
#[test]
fn lookup_answers_are_filtered_through_the_api() -> Result<()> {
    let policy = Policy::deny_all()
        .allow("tcp://localhost:*")?
        .deny("tcp://127.0.0.1:*")?;
    let output = HARNESS.block_on(
        HARNESS
            .sandbox()
            .policy(policy)
            .build()
            .run_command(&crate::common::GUEST, ["lookup", "localhost"]),
    )?;
    let answer = output
        .denials
        .iter()
        .find(|denial| denial.use_kind == UseKind::LookupAnswer)
        .with_context(|| format!("no lookup-answer denial: {output}"))?;
    ensure!(
        answer.subject
            == Subject::Answer {
                name: "localhost".into(),
                addr: "127.0.0.1".parse()?,
            },
        "{answer:?}"
    );
    ensure!(
        answer.to_string()
            == "denied lookup answer 127.0.0.1 for localhost (by --deny tcp://127.0.0.1:*)",
        "{answer}"
    );
    Ok(())
}

/// Starts `echo` on guest port `guest_port` published on host port 0, under `build`,
/// and returns it with the guest's address and the host's.
fn published_echo(
    build: &[&str],
    guest_port: u16,
    audit: Option<&std::path::Path>,
) -> Result<(Process, SocketAddr, SocketAddr)> {
    let guest = format!("127.0.0.1:{guest_port}");
    let mut run = sockbox();
    run.arg("run").args(build);
    run.args(["--allow-listen", &format!("tcp://{guest}")]);
    run.args(["--publish", &format!("0:{guest_port}")]);
    if let Some(audit) = audit {
        run.arg("--audit").arg(audit);
    }
    run.args(["--", "echo", &guest]);
    let server = Process::spawn(run)?;
    let published = server.stderr_line("sockbox: published tcp ")?;
    let (seen, host) = published
        .split_once(" on ")
        .with_context(|| format!("`{published}`"))?;
    ensure!(seen == guest, "published {seen}, not {guest}");
    let listening = server.listening_addr()?;
    ensure!(
        listening.to_string() == guest,
        "the guest sees {listening}, not {guest}"
    );
    Ok((server, listening, host.parse()?))
}

/// Two instances each listen on guest port 80 — below 1024, as an unprivileged
/// host — published on two host ports, and both serve at once; a guest on port 81 is
/// reached through its host port. The policy allows only the guest's port: the host's
/// is not judged. The audit shows both addresses.
#[test]
fn published_ports_serve_two_instances_on_guest_port_80() -> Result<()> {
    for build in BUILDS {
        let dir = tempfile::tempdir()?;
        let audit = dir.path().join("audit.jsonl");
        let (first, _, first_host) = published_echo(build, 80, Some(&audit))?;
        let (second, _, second_host) = published_echo(build, 80, None)?;
        ensure!(
            first_host != second_host,
            "{build:?}: one host port for both"
        );
        // Both connections open at once before either is answered.
        let mut a = TcpStream::connect(first_host)?;
        let mut b = TcpStream::connect(second_host)?;
        for conn in [&a, &b] {
            conn.set_read_timeout(Some(TIMEOUT))?;
        }
        a.write_all(b"first")?;
        b.write_all(b"second")?;
        for (conn, sent) in [(&mut a, &b"first"[..]), (&mut b, &b"second"[..])] {
            conn.shutdown(Shutdown::Write)?;
            let mut echoed = Vec::new();
            conn.read_to_end(&mut echoed)?;
            ensure!(echoed == sent, "{build:?}: echoed {echoed:?}");
        }
        let (third, _, third_host) = published_echo(build, 81, None)?;
        ensure!(echo_round_trip(third_host, b"81")? == b"81", "{build:?}");
        drop((first, second, third));
        let lines = std::fs::read_to_string(&audit)?;
        let bind = format!(
            r#""use":"tcp-bind","address":"127.0.0.1:80","host_address":"{first_host}","verdict":"allow""#
        );
        ensure!(lines.contains(&bind), "{build:?}: no {bind} in\n{lines}");
        let listen = format!(
            r#""use":"tcp-listen","address":"127.0.0.1:80","host_address":"{first_host}","verdict":"allow""#
        );
        ensure!(
            lines.contains(&listen),
            "{build:?}: no {listen} in\n{lines}"
        );
    }
    Ok(())
}

/// A published port is judged on the guest's port: a rule for another port refuses
/// it, and nothing is bound on the host.
#[test]
fn published_port_is_judged_on_the_guest_port() -> Result<()> {
    for build in BUILDS {
        let mut run = sockbox();
        run.arg("run").args(build);
        run.args(["--allow-listen", "tcp://127.0.0.1:81", "--publish", "0:80"]);
        run.args(["--", "echo", "127.0.0.1:80"]);
        let done = Process::run(run)?;
        ensure!(done.code()? == 1, "{build:?}: {done}");
        ensure!(
            done.stderr
                .contains("sockbox: denied tcp bind to 127.0.0.1:80 (no rule allows it)"),
            "{build:?}: {done}"
        );
        ensure!(!done.stderr.contains("published"), "{build:?}: {done}");
    }
    Ok(())
}

/// UDP ports publish too (`/udp`): a datagram to the host's port is echoed from it.
#[test]
fn published_udp_port_echoes() -> Result<()> {
    for build in BUILDS {
        let mut run = sockbox();
        run.arg("run").args(build);
        run.args([
            "--allow-listen",
            "udp://127.0.0.1:53",
            "--publish",
            "0:53/udp",
        ]);
        run.args(["--", "udp-echo", "127.0.0.1:53", "--count", "1"]);
        let server = Process::spawn(run)?;
        let published = server.stderr_line("sockbox: published udp 127.0.0.1:53 on ")?;
        let host: SocketAddr = published.parse()?;
        ensure!(
            server.listening_addr()?.to_string() == "127.0.0.1:53",
            "{build:?}"
        );
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(TIMEOUT))?;
        socket.send_to(b"dns?", host)?;
        let mut reply = [0u8; 16];
        let (len, from) = socket.recv_from(&mut reply)?;
        ensure!(&reply[..len] == b"dns?", "{build:?}: {:?}", &reply[..len]);
        ensure!(from == host, "{build:?}: the reply came from {from}");
        let done = server.wait()?;
        ensure!(done.code()? == 0, "{build:?}: {done}");
    }
    Ok(())
}

/// Published ports through the embedding API: the sandbox's publish sink hands over
/// the host's address, where the guest is served.
#[test]
pub(crate) fn published_ports_through_the_api() -> Result<()> {
    for build in [Build::P2, Build::P3] {
        let policy = Policy::deny_all()
            .allow_listen("tcp://127.0.0.1:80")?
            .with_publish("0:80".parse::<Publish>()?)?;
        let (sender, published) = mpsc::channel::<Published>();
        let sender = std::sync::Mutex::new(sender);
        let sandbox = HARNESS.sandbox().policy(policy).on_publish(move |port| {
            let _ = sender.lock().map(|sender| sender.send(*port));
        });
        let server = HARNESS.spawn(sandbox, build.guest(), ["echo", "127.0.0.1:80"])?;
        let port = published.recv_timeout(TIMEOUT)?;
        ensure!(
            port.guest.to_string() == "127.0.0.1:80",
            "{build:?}: {port}"
        );
        ensure!(
            server.listening_addr(TIMEOUT)?.to_string() == "127.0.0.1:80",
            "{build:?}"
        );
        ensure!(echo_round_trip(port.host, b"api")? == b"api", "{build:?}");
        server.stop();
    }
    Ok(())
}

/// Policy files take the new keys, `policy check` shows them, and each one's errors
/// are one line with the file's line number.
#[test]
fn policy_files_take_mode_allow_special_no_self_and_publish() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("policy.toml");
    std::fs::write(
        &file,
        "mode = \"audit\"\nallow_special = true\nno_self = true\nallow = [\"tcp://10.0.0.0/8:443\"]\npublish = [\"8080:80\", \"0:53/udp\"]\n",
    )?;
    let mut check = sockbox();
    check.args(["policy", "check"]).arg(&file);
    let done = Process::run(check)?;
    ensure!(done.code()? == 0, "{done}");
    for line in [
        "mode   audit\n",
        "allow_special\n",
        "no_self\n",
        "self connections: off (no_self)\n",
        "publish 8080:80\n",
        "publish 0:53/udp\n",
        "mode: audit (denials are recorded as would-deny; nothing is refused)\n",
        "special addresses: judged by the rules alone (allow_special)\n",
    ] {
        ensure!(done.stdout.contains(line), "no {line:?} in {done}");
    }
    let mut check = sockbox();
    check.args(["policy", "check"]).arg(&file);
    std::fs::write(&file, "allow = [\"tcp://*:*\"]\n")?;
    let done = Process::run(check)?;
    ensure!(
        done.stdout.contains("mode: enforce (denials are refused)")
            && done
                .stdout
                .contains("special addresses: denied unless a rule names them"),
        "{done}"
    );
    for (text, error) in [
        (
            "mode = \"loud\"\n",
            "policy.toml:1: mode: `loud` is not a mode: use \"enforce\" or \"audit\"",
        ),
        (
            "allow_special = \"yes\"\n",
            "policy.toml:1: invalid type: string \"yes\", expected a boolean",
        ),
        (
            "\npublish = [\"80\"]\n",
            "policy.toml:2: publish `80`: expected HOST_PORT:GUEST_PORT, for example 8080:80 or 0:80/udp",
        ),
        (
            "publish = [\"0:80\", \"0:80\"]\n",
            "policy.toml:1: publish `0:80`: guest port 80 is already published (0:80)",
        ),
        (
            "publish = [\"8080:0\"]\n",
            "policy.toml:1: publish `8080:0`: the guest port cannot be 0",
        ),
        (
            "publish = [\"0:80/sctp\"]\n",
            "policy.toml:1: publish `0:80/sctp`: the transport after `/` must be tcp or udp",
        ),
    ] {
        std::fs::write(&file, text)?;
        let mut check = sockbox();
        check.args(["policy", "check"]).arg(&file);
        let done = Process::run(check)?;
        ensure!(done.code()? == 2, "{text}: {done}");
        ensure!(done.stderr.lines().count() == 1, "{text}: {done}");
        ensure!(
            done.stderr.contains(error),
            "{text}: wanted {error}\n{done}"
        );
    }
    // The flag's errors are one line too, before any guest runs.
    for (flag, error) in [
        ("70000:80", "`70000` is not a host port (0-65535)"),
        ("0:http", "`http` is not a guest port (0-65535)"),
    ] {
        let mut run = sockbox();
        run.args(["run", "--publish", flag, "--", "echo", "127.0.0.1:80"]);
        let done = Process::run(run)?;
        ensure!(done.code()? == 2, "{flag}: {done}");
        ensure!(done.stderr.lines().count() == 1, "{flag}: {done}");
        ensure!(done.stderr.contains(error), "{flag}: {done}");
    }
    Ok(())
}

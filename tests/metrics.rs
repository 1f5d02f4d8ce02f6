//! `sockbox run --metrics ADDR`: Prometheus text at `/metrics`, scraped with a real HTTP
//! client while the guest serves, its counts checked against the traffic this test
//! made and against the audit.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};

use anyhow::{Context as _, Result, ensure};
use socket2::{Domain, Socket, Type};

use crate::common::{Process, TIMEOUT, sockbox};

/// Scrapes `url` and returns the value of the sample `name{labels}` (0 if absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn scrape(url: &str) -> Result<String> {
    let mut response = ureq::get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    ensure!(response.status() == 200, "GET {url}: {}", response.status());
    Ok(response.body_mut().read_to_string()?)
}

/// A connection from `from` to `server`, echoed once; whether it was served.
fn echo_from(from: Ipv4Addr, server: SocketAddr) -> Result<bool> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(IpAddr::V4(from), 0).into())?;
    if socket.connect_timeout(&server.into(), TIMEOUT).is_err() {
        return Ok(false);
    }
    let mut conn: TcpStream = socket.into();
    conn.set_read_timeout(Some(TIMEOUT))?;
    let mut back = [0; 5];
    Ok(conn.write_all(b"hello").is_ok() && conn.read_exact(&mut back).is_ok())
}

/// Three peers served, one refused, one reload: the scrape says so, and agrees with
/// the audit line for line.
#[test]
fn metrics_count_what_the_guest_did() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "listen = [\"tcp://127.0.0.1:*\"]\naccept = [\"tcp://127.0.0.1:*\"]\n",
    )?;
    let audit = dir.path().join("audit.jsonl");
    let mut command = sockbox();
    command
        .args(["run", "--metrics", "127.0.0.1:0", "--policy"])
        .arg(&policy)
        .arg("--audit")
        .arg(&audit)
        .args(["--", "echo", "127.0.0.1:0"]);
    let server = Process::spawn(command)?;
    let url = server.stderr_line("sockbox: metrics on ")?;
    let addr = server.listening_addr()?;

    for _ in 0..3 {
        ensure!(
            echo_from(Ipv4Addr::LOCALHOST, addr)?,
            "a peer of 127.0.0.1 is served"
        );
    }
    ensure!(
        !echo_from(Ipv4Addr::new(127, 0, 0, 2), addr)?,
        "127.0.0.2 is refused"
    );
    let pid = rustix::process::Pid::from_raw(i32::try_from(server.pid())?).context("a pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::HUP)?;
    server.stderr_line("sockbox: policy reloaded from ")?;

    let text = scrape(&url)?;
    ensure!(sample(&text, "sockbox_instances_running") == 1.0, "{text}");
    ensure!(
        sample(&text, r#"sockbox_connections_total{direction="accepted"}"#) == 3.0,
        "{text}"
    );
    let rule = "tcp://127.0.0.1:*";
    let accepted =
        format!(r#"sockbox_decisions_total{{use="tcp-accept",verdict="allow",rule="{rule}"}}"#);
    ensure!(sample(&text, &accepted) == 3.0, "{text}");
    let refused = r#"sockbox_decisions_total{use="tcp-accept",verdict="deny",rule="default-deny"}"#;
    ensure!(sample(&text, refused) == 1.0, "{text}");
    ensure!(
        sample(&text, r#"sockbox_policy_reloads_total{result="applied"}"#) == 1.0,
        "{text}"
    );
    // Three peers' 5 bytes each, in and back out (0.2's splice reads and writes them).
    for direction in ["received", "sent"] {
        let series = format!(r#"sockbox_bytes_total{{transport="tcp",direction="{direction}"}}"#);
        ensure!(sample(&text, &series) == 15.0, "{series}: {text}");
    }
    // The listener; and the connections the guest has not let go of yet, at most.
    let listeners = r#"sockbox_sockets_open{transport="tcp",kind="listener"}"#;
    ensure!(sample(&text, listeners) == 1.0, "{text}");
    let connections = r#"sockbox_sockets_open{transport="tcp",kind="connection"}"#;
    ensure!((0.0..=3.0).contains(&sample(&text, connections)), "{text}");

    // The audit agrees: every decision counted is a line, and back.
    let audit = std::fs::read_to_string(&audit)?;
    let lines = |verdict: &str| {
        audit
            .lines()
            .filter(|line| {
                line.contains(r#""use":"tcp-accept""#)
                    && line.contains(&format!(r#""verdict":"{verdict}""#))
            })
            .count()
    };
    ensure!(lines("allow") == 3 && lines("deny") == 1, "{audit}");
    let decisions: f64 = text
        .lines()
        .filter(|line| line.starts_with("sockbox_decisions_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let decided_lines = audit
        .lines()
        .filter(|line| !line.contains(r#""use":"policy-reload""#))
        .count();
    ensure!(
        decisions == decided_lines as f64,
        "{decisions} vs {decided_lines}\n{text}\n{audit}"
    );

    // Only /metrics is served.
    ensure!(ureq::get(url.replace("/metrics", "/other")).call().is_err());
    Ok(())
}

/// `--metrics` takes an address; anything else is a usage error, exit 2.
#[test]
fn metrics_needs_an_address() -> Result<()> {
    let mut command = sockbox();
    command.args(["run", "--metrics", "nowhere", "--", "lookup", "localhost"]);
    let done = Process::run(command)?;
    ensure!(
        done.status.code() == Some(2) && done.stderr.lines().count() == 1,
        "{done}"
    );
    ensure!(done.stderr.contains("--metrics"), "{done}");
    Ok(())
}

/// The WASI 0.3 build counts alike: its listener, the connections it accepted, and their
/// bytes, counted as the guest lets each connection go (copied by the guest, or its
/// receive stream forwarded by the host).
#[test]
fn metrics_count_a_wasi_0_3_guest_too() -> Result<()> {
    for mode in ["--copy", "--forward"] {
        let mut command = sockbox();
        command.args([
            "run",
            "--p3",
            "--metrics",
            "127.0.0.1:0",
            "--allow-listen",
            "tcp://127.0.0.1:*",
            "--",
            "echo",
            mode,
            "127.0.0.1:0",
        ]);
        let server = Process::spawn(command)?;
        let url = server.stderr_line("sockbox: metrics on ")?;
        let addr = server.listening_addr()?;
        // One connection held open, echoed once; one more echoed and closed.
        let mut held = TcpStream::connect(addr)?;
        held.set_read_timeout(Some(TIMEOUT))?;
        held.write_all(b"hello")?;
        held.read_exact(&mut [0; 5])?;
        let text = scrape(&url)?;
        let connections = r#"sockbox_sockets_open{transport="tcp",kind="connection"}"#;
        ensure!(
            sample(&text, connections) == 1.0,
            "{mode}: {connections}: {text}"
        );
        ensure!(echo_from(Ipv4Addr::LOCALHOST, addr)?, "{mode}: served");
        drop(held);
        let text = scrape(&url)?;
        for (series, value) in [
            (
                r#"sockbox_sockets_open{transport="tcp",kind="listener"}"#,
                1.0,
            ),
            (r#"sockbox_connections_total{direction="accepted"}"#, 2.0),
            ("sockbox_instances_running", 1.0),
        ] {
            ensure!(sample(&text, series) == value, "{mode}: {series}: {text}");
        }
        // Two peers' 5 bytes each, in and back out, once the guest has let both go.
        let bytes = |text: &str, direction| {
            let series =
                format!(r#"sockbox_bytes_total{{transport="tcp",direction="{direction}"}}"#);
            sample(text, &series)
        };
        let deadline = std::time::Instant::now() + TIMEOUT;
        let text = loop {
            let text = scrape(&url)?;
            if bytes(&text, "received") >= 10.0 && sample(&text, connections) == 0.0
                || std::time::Instant::now() > deadline
            {
                break text;
            }
        };
        for direction in ["received", "sent"] {
            ensure!(
                bytes(&text, direction) == 10.0,
                "{mode}: {direction}: {text}"
            );
        }
        ensure!(sample(&text, connections) == 0.0, "{mode}: {text}");
    }
    Ok(())
}

/// UDP datagrams' bytes, both builds: two datagrams in, two replies out.
#[test]
fn metrics_count_datagram_bytes() -> Result<()> {
    for build in [&[][..], &["--p3"][..]] {
        let mut command = sockbox();
        command
            .arg("run")
            .args(build)
            .args([
                "--metrics",
                "127.0.0.1:0",
                "--allow-listen",
                "udp://127.0.0.1:*",
            ])
            .args(["--", "udp-echo", "127.0.0.1:0"]);
        let server = Process::spawn(command)?;
        let url = server.stderr_line("sockbox: metrics on ")?;
        let addr = server.listening_addr()?;
        let client = std::net::UdpSocket::bind("127.0.0.1:0")?;
        client.set_read_timeout(Some(TIMEOUT))?;
        for message in [&b"ping"[..], b"pong"] {
            client.send_to(message, addr)?;
            let mut back = [0; 16];
            let (n, _) = client.recv_from(&mut back)?;
            ensure!(&back[..n] == message, "{build:?}");
        }
        let text = scrape(&url)?;
        for direction in ["received", "sent"] {
            let series =
                format!(r#"sockbox_bytes_total{{transport="udp",direction="{direction}"}}"#);
            ensure!(sample(&text, &series) == 8.0, "{build:?} {series}: {text}");
        }
    }
    Ok(())
}

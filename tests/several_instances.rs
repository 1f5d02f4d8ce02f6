//! `--instances N`: one command served by several instances, each on its own thread,
//! through the real `sockbox` binary — the kernel spreads connections and datagrams
//! over their listeners on one port, under one policy, one audit and one socket cap,
//! and the run prints its `listening on` line once and stops as one. Both builds of
//! the guest, and the embedding API's builder.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;

use anyhow::{Context as _, Result, ensure};
use sockbox_host::output::Stdio;
use sockbox_host::policy::Policy;

use crate::common::{Build, HARNESS, Process, TIMEOUT, echo_round_trip, sockbox};

/// `sockbox run`'s flags for each build of the guest.
const BUILDS: [&[&str]; 2] = [&[], &["--p3"]];

/// Starts `command` (the guest's, after `--`) as 2 instances, guest port 8080 of
/// `transport` published on a host port sockbox picks; returns the server and the
/// host's address.
fn two_instances(
    build: &[&str],
    transport: &str,
    extra: &[&str],
    command: &[&str],
) -> Result<(Process, SocketAddr)> {
    let suffix = if transport == "udp" { "/udp" } else { "" };
    let mut run = sockbox();
    run.arg("run").args(build).args(["--instances", "2"]);
    run.args(["--allow-listen", &format!("{transport}://127.0.0.1:8080")]);
    run.args(["--publish", &format!("0:8080{suffix}")]);
    run.args(extra).arg("--").args(command);
    let server = Process::spawn(run)?;
    let published = server.stderr_line(&format!("sockbox: published {transport} "))?;
    let (_, host) = published
        .split_once(" on ")
        .with_context(|| format!("`{published}`"))?;
    server.listening_addr()?;
    Ok((server, host.parse()?))
}

/// How many audit lines of `use` each instance wrote.
fn uses_by_instance(audit: &Path, wanted: &str) -> Result<BTreeMap<String, usize>> {
    let mut by = BTreeMap::new();
    for line in std::fs::read_to_string(audit)?.lines() {
        let line: serde_json::Value = serde_json::from_str(line)?;
        if line["use"] == wanted {
            let instance = line["instance"].as_str().context("an instance")?;
            *by.entry(instance.to_owned()).or_insert(0) += 1;
        }
    }
    Ok(by)
}

/// 40 connections to one port are served by both instances (the audit names each
/// instance `sockbox-guest/1` and `/2`); the run prints `listening on` and the
/// published port once.
#[test]
fn connections_are_spread_over_the_instances() -> Result<()> {
    for build in BUILDS {
        let dir = tempfile::tempdir()?;
        let audit = dir.path().join("audit.jsonl");
        let audit_flag = ["--audit", audit.to_str().context("UTF-8")?];
        let (server, addr) = two_instances(build, "tcp", &audit_flag, &["echo", "127.0.0.1:8080"])?;
        for i in 0..40 {
            let message = format!("message {i}");
            assert_eq!(
                echo_round_trip(addr, message.as_bytes())?,
                message.as_bytes()
            );
        }
        let done = server.stop()?;
        assert_eq!(
            done.stdout, "listening on 127.0.0.1:8080\n",
            "{build:?}: {done}"
        );
        assert_eq!(
            done.stderr.matches("sockbox: published tcp").count(),
            1,
            "{build:?}: {done}"
        );
        let accepts = uses_by_instance(&audit, "tcp-accept")?;
        let names: Vec<&str> = accepts.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["sockbox-guest/1", "sockbox-guest/2"],
            "{build:?}: {accepts:?}"
        );
        assert_eq!(
            accepts.values().sum::<usize>(),
            40,
            "{build:?}: {accepts:?}"
        );
    }
    Ok(())
}

/// UDP too: datagrams from 40 senders to one port are answered, by both instances.
#[test]
fn datagrams_are_spread_over_the_instances() -> Result<()> {
    for build in BUILDS {
        let dir = tempfile::tempdir()?;
        let audit = dir.path().join("audit.jsonl");
        let audit_flag = ["--audit", audit.to_str().context("UTF-8")?];
        let command = ["udp-echo", "127.0.0.1:8080"];
        let (server, addr) = two_instances(build, "udp", &audit_flag, &command)?;
        for i in 0..40 {
            let client = UdpSocket::bind("127.0.0.1:0")?;
            client.set_read_timeout(Some(TIMEOUT))?;
            let message = format!("datagram {i}");
            client.send_to(message.as_bytes(), addr)?;
            let mut reply = [0u8; 64];
            let (len, _) = client.recv_from(&mut reply)?;
            assert_eq!(&reply[..len], message.as_bytes(), "{build:?}");
        }
        drop(server.stop()?);
        let receives = uses_by_instance(&audit, "udp-receive")?;
        ensure!(receives.len() == 2, "{build:?}: {receives:?}");
    }
    Ok(())
}

/// The socket cap is the run's: with `--max-sockets 3`, two listeners leave room for
/// one connection between them; of 6 clients, each held open, one is served and 5
/// closed by sockbox, each audited as refused by the cap. (`listening on` comes once
/// both instances listen, so no client takes a listener's slot first.)
#[test]
fn the_socket_cap_is_the_runs() -> Result<()> {
    for build in BUILDS {
        let dir = tempfile::tempdir()?;
        let audit = dir.path().join("audit.jsonl");
        let extra = [
            "--max-sockets",
            "3",
            "--audit",
            audit.to_str().context("UTF-8")?,
        ];
        let (server, addr) = two_instances(build, "tcp", &extra, &["echo", "127.0.0.1:8080"])?;
        // One after another, each held open to the end: none frees its slot.
        let mut clients = Vec::new();
        let (mut served, mut closed) = (0, 0);
        for _ in 0..6 {
            let mut conn = TcpStream::connect(addr)?;
            conn.set_read_timeout(Some(TIMEOUT))?;
            let _ = conn.write_all(b"ping");
            let mut got = [0u8; 4];
            match conn.read_exact(&mut got) {
                Ok(()) if &got == b"ping" => served += 1,
                Ok(()) => anyhow::bail!("echoed {got:?}"),
                Err(_) => closed += 1,
            }
            clients.push(conn);
        }
        // Every client is held open to the end: none frees its slot.
        let done = server.stop()?;
        drop(clients);
        let text = std::fs::read_to_string(&audit)?;
        assert_eq!((served, closed), (1, 5), "{build:?}: {done}\n{text}");
        assert_eq!(
            text.matches("\"rule\":\"max-sockets\"").count(),
            5,
            "{build:?}: {text}"
        );
    }
    Ok(())
}

/// A run of instances stops as one: at its timeout, exit 124 and one line.
#[test]
fn instances_stop_as_one_run() -> Result<()> {
    for build in BUILDS {
        let (server, addr) = two_instances(
            build,
            "tcp",
            &["--timeout", "1s"],
            &["echo", "127.0.0.1:8080"],
        )?;
        assert_eq!(echo_round_trip(addr, b"before")?, b"before");
        let done = server.wait()?;
        assert_eq!(done.code()?, 124, "{build:?}: {done}");
        assert_eq!(
            done.stderr.matches("sockbox: stopped the guest").count(),
            1,
            "{build:?}: {done}"
        );
        let mut late = TcpStream::connect(addr);
        if let Ok(conn) = &mut late {
            conn.shutdown(Shutdown::Write)?;
            let mut rest = Vec::new();
            ensure!(
                conn.read_to_end(&mut rest)
                    .map_or(true, |_| rest.is_empty())
            );
        }
    }
    Ok(())
}

/// A bind to port 0 is each instance's own: each one's socket pair (a listener on
/// loopback port 0, connected to itself) works, and is its own; servers on port 0
/// each print their own `listening on`, and each serves.
#[test]
fn each_instance_has_its_own_port_zero() -> Result<()> {
    for build in BUILDS {
        let mut run = sockbox();
        run.arg("run").args(build).args(["--instances", "2"]);
        run.args([
            "--allow-listen",
            "tcp://127.0.0.1:*",
            "--",
            "echo",
            "127.0.0.1:0",
        ]);
        let server = Process::spawn(run)?;
        let (first, second) = (server.listening_addr()?, server.listening_addr()?);
        ensure!(first != second, "{build:?}: {first} twice");
        for addr in [first, second] {
            assert_eq!(echo_round_trip(addr, b"own port")?, b"own port");
        }
        drop(server.stop()?);

        let mut run = sockbox();
        run.arg("run")
            .args(build)
            .args(["--instances", "2", "--", "pair", "127.0.0.1:0"]);
        let done = Process::run(run)?;
        assert_eq!(done.code()?, 0, "{build:?}: {done}");
        let pairs: Vec<&str> = done
            .stdout
            .lines()
            .filter(|l| l.starts_with("pair "))
            .collect();
        assert_eq!(pairs.len(), 2, "{build:?}: {done}");
        ensure!(pairs[0] != pairs[1], "{build:?}: {done}");
    }
    Ok(())
}

/// The embedding API: `SandboxBuilder::instances` runs a command as that many
/// instances, their output together, the run's status 0 when each ends with 0.
#[test]
fn the_builder_runs_instances() -> Result<()> {
    for build in [Build::P2, Build::P3] {
        let sandbox = HARNESS
            .sandbox()
            .policy(Policy::deny_all())
            .stdout(Stdio::capture())
            .instances(3)
            .build();
        let output =
            HARNESS.block_on(sandbox.run_command(build.guest(), ["lookup", "127.0.0.1"]))?;
        output.assert_success();
        assert_eq!(output.stdout, "127.0.0.1\n".repeat(3), "{build:?}");
    }
    Ok(())
}

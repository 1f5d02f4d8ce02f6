//! Policy reload: `sockbox run --policy FILE` reads FILE again on SIGHUP and, with
//! `--watch-policy`, on change; the library's `Sandbox::policy_handle` does the same for
//! embedders. New decisions use the new policy, established connections stay, a file
//! that does not parse changes nothing, and every reload is an audit line.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::path::Path;

use anyhow::{Result, ensure};
use socket2::{Domain, Socket, Type};

use crate::common::{GUEST, HARNESS, Process, TIMEOUT, sockbox};
use sockbox_host::Policy;
use sockbox_host::output::Stdio;

/// A policy file serving on 127.0.0.1, accepting peers `accept` matches.
fn policy_file(path: &Path, accept: &str) -> Result<()> {
    let text = format!("listen = [\"tcp://127.0.0.1:*\"]\naccept = [\"{accept}\"]\n");
    // Written whole, then renamed over the old one, as editors do.
    let next = path.with_extension("next");
    std::fs::write(&next, text)?;
    std::fs::rename(&next, path)?;
    Ok(())
}

/// A connection to `server` from `from` (a loopback address).
fn connect_from(from: Ipv4Addr, server: SocketAddr) -> Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(IpAddr::V4(from), 0).into())?;
    socket.connect_timeout(&server.into(), TIMEOUT)?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(TIMEOUT))?;
    Ok(stream)
}

/// Whether `conn` gets `bytes` echoed back.
fn echoes(conn: &mut TcpStream, bytes: &[u8]) -> bool {
    let mut back = vec![0; bytes.len()];
    conn.write_all(bytes).is_ok() && conn.read_exact(&mut back).is_ok() && back == bytes
}

/// Whether a new connection from `from` is served: echoed, then closed cleanly. A
/// refused one may be reset before the connect even returns.
fn served(from: Ipv4Addr, server: SocketAddr) -> Result<bool> {
    let mut conn = match connect_from(from, server) {
        Ok(conn) => conn,
        Err(err)
            if err
                .downcast_ref::<std::io::Error>()
                .map(std::io::Error::kind)
                == Some(std::io::ErrorKind::ConnectionReset) =>
        {
            return Ok(false);
        }
        Err(err) => return Err(err),
    };
    let echoed = echoes(&mut conn, b"hello");
    let _ = conn.shutdown(Shutdown::Write);
    Ok(echoed)
}

const ONE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const TWO: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// An echo server whose accept rule is narrowed by SIGHUP refuses the next peer the
/// new rule does not cover and keeps serving the one already connected; a broken file
/// then changes nothing. Each reload is an audit line with the file's sha256.
#[test]
fn a_reload_narrows_accept_and_keeps_established_connections() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("policy.toml");
    let audit = dir.path().join("audit.jsonl");
    policy_file(&policy, "tcp://127.0.0.0/8:*")?;
    let server = echo_under(&policy, Some(&audit), false)?;
    let addr = server.listening_addr()?;

    let mut established = connect_from(TWO, addr)?;
    ensure!(
        echoes(&mut established, b"before"),
        "127.0.0.2 is served at first"
    );

    // Narrowed: only 127.0.0.1 from now on.
    policy_file(&policy, "tcp://127.0.0.1:*")?;
    hang_up(&server)?;
    let reloaded = server.stderr_line("sockbox: policy reloaded from ")?;
    ensure!(reloaded.contains("sha256 "), "{reloaded}");
    ensure!(!served(TWO, addr)?, "127.0.0.2 is refused after the reload");
    ensure!(
        served(ONE, addr)?,
        "127.0.0.1 is still served after the reload"
    );
    ensure!(
        echoes(&mut established, b"after"),
        "the established connection stays"
    );

    // A file that does not parse: one line, and the policy as it was.
    std::fs::write(&policy, "accept = [\"tcp://127.0.0.2:*\"\n")?;
    hang_up(&server)?;
    let refused = server.stderr_line("sockbox: policy not reloaded: ")?;
    ensure!(refused.ends_with("; the old policy stays"), "{refused}");
    ensure!(!served(TWO, addr)?, "the broken file let 127.0.0.2 in");
    ensure!(served(ONE, addr)?, "the broken file shut 127.0.0.1 out");
    drop(established);
    drop(server);

    let audit = std::fs::read_to_string(&audit)?;
    let reloads: Vec<&str> = audit
        .lines()
        .filter(|line| line.contains(r#""use":"policy-reload""#))
        .collect();
    ensure!(reloads.len() == 2, "{audit}");
    ensure!(
        reloads[0].contains(r#""verdict":"allow""#) && reloads[0].contains(r#""sha256":""#),
        "{audit}"
    );
    ensure!(
        reloads[1].contains(r#""verdict":"deny""#) && reloads[1].contains(r#""error":""#),
        "{audit}"
    );
    // The audit's reload lines do not trouble `policy suggest`.
    let mut suggest = sockbox();
    suggest
        .args(["policy", "suggest"])
        .arg(dir.path().join("audit.jsonl"));
    let suggested = Process::run(suggest)?;
    ensure!(suggested.status.success(), "{suggested}");
    Ok(())
}

/// `--watch-policy` picks up a change without a signal.
#[test]
fn watch_policy_reloads_on_change() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("policy.toml");
    policy_file(&policy, "tcp://127.0.0.1:*")?;
    let server = echo_under(&policy, None, true)?;
    let addr = server.listening_addr()?;
    ensure!(!served(TWO, addr)?, "127.0.0.2 is refused at first");
    policy_file(&policy, "tcp://127.0.0.2:*")?;
    server.stderr_line("sockbox: policy reloaded from ")?;
    ensure!(served(TWO, addr)?, "127.0.0.2 is served after the change");
    ensure!(!served(ONE, addr)?, "127.0.0.1 is refused after the change");
    Ok(())
}

/// `sockbox run --policy POLICY [--audit AUDIT] [--watch-policy] -- echo 127.0.0.1:0`.
fn echo_under(policy: &Path, audit: Option<&Path>, watch: bool) -> Result<Process> {
    let mut command = sockbox();
    command.arg("run").arg("--policy").arg(policy);
    if let Some(audit) = audit {
        command.arg("--audit").arg(audit);
    }
    if watch {
        command.arg("--watch-policy");
    }
    command.args(["--", "echo", "127.0.0.1:0"]);
    Process::spawn(command)
}

/// Sends SIGHUP to `server`.
fn hang_up(server: &Process) -> Result<()> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(server.pid())?)
        .ok_or_else(|| anyhow::anyhow!("no pid"))?;
    rustix::process::kill_process(pid, rustix::process::Signal::HUP)?;
    Ok(())
}

/// `--watch-policy` needs `--policy`: a usage error, exit 2.
#[test]
fn watch_policy_needs_a_policy_file() -> Result<()> {
    let mut command = sockbox();
    command.args(["run", "--watch-policy", "--", "lookup", "localhost"]);
    let done = Process::run(command)?;
    ensure!(done.status.code() == Some(2), "{done}");
    ensure!(
        done.stderr.lines().count() == 1 && done.stderr.contains("--policy"),
        "{done}"
    );
    Ok(())
}

/// An embedder's handle: a reload between two runs of one sandbox changes what the
/// second may do, and the handle counts reloads and refusals.
#[test]
fn an_embedder_reloads_through_the_handle() -> Result<()> {
    let peer = std::net::TcpListener::bind("127.0.0.1:0")?;
    let target = peer.local_addr()?;
    let sandbox = HARNESS
        .sandbox()
        .policy(Policy::deny_all().allow(&format!("tcp://{target}"))?)
        .stdout(Stdio::capture())
        .stderr(Stdio::capture())
        .build();
    let handle = sandbox.policy_handle();
    let answer = {
        let peer = peer.try_clone()?;
        std::thread::spawn(move || crate::common::answer_once(&peer, b"pong"))
    };
    let first = HARNESS.block_on(sandbox.run_command(&GUEST, ["dial", &target.to_string()]))?;
    ensure!(first.stdout == "Received: pong\n", "{first}");
    answer.join().expect("the peer's thread")?;

    handle.reload(Policy::deny_all(), "test", "")?;
    ensure!(handle.reloads() == 1);
    let second = HARNESS.block_on(sandbox.run_command(&GUEST, ["dial", &target.to_string()]))?;
    ensure!(second.stderr.contains("access denied"), "{second}");
    ensure!(second.denials.len() == 1, "{second}");

    // Publishing other ports than the run started with is refused; the policy stays.
    let publishing = Policy::deny_all().with_publish("8080:80".parse()?)?;
    ensure!(handle.reload(publishing, "test", "").is_err());
    ensure!(handle.refused() == 1 && handle.current().published().is_empty());
    Ok(())
}

//! The guest and the classic programs written with Go's `net` talk to each other byte
//! for byte, in both directions.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use anyhow::{Result, bail, ensure};

use crate::common::{Build, Process, TIMEOUT, connect_to, in_ci, loopbacks, serve_on, start_build};

/// The Go client and server, built once; `None` (a skip) where Go is missing outside CI.
static GO_PROGRAMS: LazyLock<Result<Option<(PathBuf, PathBuf)>, String>> =
    LazyLock::new(|| build_go_programs().map_err(|err| format!("{err:#}")));

fn build_go_programs() -> Result<Option<(PathBuf, PathBuf)>> {
    if Command::new("go").arg("version").output().is_err() {
        if in_ci() {
            bail!("`go` is not installed; CI installs Debian's golang-go");
        }
        eprintln!("skipping: `go` is not installed (apt-get install golang-go)");
        return Ok(None);
    }
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("go");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-peers");
    std::fs::create_dir_all(&out)?;
    let mut built = Vec::new();
    for name in ["client", "server"] {
        let binary = out.join(name);
        let mut build = Command::new("go");
        build
            .env("GOTOOLCHAIN", "local")
            .arg("build")
            .arg("-o")
            .arg(&binary)
            .arg(sources.join(format!("{name}.go")));
        let done = Process::run(build)?;
        ensure!(done.code()? == 0, "go build {name}.go: {done}");
        built.push(binary);
    }
    let server = built.pop().expect("two programs were built");
    let client = built.pop().expect("two programs were built");
    Ok(Some((client, server)))
}

fn go_programs() -> Result<Option<&'static (PathBuf, PathBuf)>> {
    match &*GO_PROGRAMS {
        Ok(programs) => Ok(programs.as_ref()),
        Err(err) => bail!("{err}"),
    }
}

/// Go's classic server and the guest's `dial` (both builds) exchange `Hello, World!`
/// both ways.
#[test]
fn go_server_and_guest_client() -> Result<()> {
    for (host, build) in loopbacks()
        .into_iter()
        .flat_map(|host| [(host, Build::P2), (host, Build::P3)])
    {
        let Some((_, go_server)) = go_programs()? else {
            return Ok(());
        };
        let mut command = Command::new(go_server);
        command.arg(format!("{host}:0"));
        let server = Process::spawn(command)?;
        let addr = server.listening_addr()?;
        let client =
            start_build(build, connect_to(addr), &["dial", &addr.to_string()])?.wait(TIMEOUT)?;
        let server = server.wait()?;
        ensure!(client.status.success(), "guest client: {client}");
        ensure!(server.code()? == 0, "Go server: {server}");
        assert_eq!(client.stdout, "Received: Hello, World!\n");
        assert_eq!(
            server.stdout,
            format!("listening on {addr}\nReceived: Hello, World!\n")
        );
    }
    Ok(())
}

/// The guest's `listen` (both builds) and Go's classic client exchange `Hello, World!`
/// both ways.
#[test]
fn guest_server_and_go_client() -> Result<()> {
    for (host, build) in loopbacks()
        .into_iter()
        .flat_map(|host| [(host, Build::P2), (host, Build::P3)])
    {
        let Some((go_client, _)) = go_programs()? else {
            return Ok(());
        };
        let server = start_build(build, serve_on(host), &["listen", &format!("{host}:0")])?;
        let addr = server.listening_addr(TIMEOUT)?;
        let mut command = Command::new(go_client);
        command.arg(addr.to_string());
        let client = Process::run(command)?;
        let server = server.wait(TIMEOUT)?;
        ensure!(client.code()? == 0, "Go client: {client}");
        ensure!(server.status.success(), "guest server: {server}");
        assert_eq!(client.stdout, "Received: Hello, World!\n");
        assert_eq!(
            server.stdout,
            format!("listening on {addr}\nReceived: Hello, World!\n")
        );
    }
    Ok(())
}

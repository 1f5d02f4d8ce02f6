//! The guest `sockbox guest -o` writes is a plain WASI 0.2 command: stock
//! `wasmtime run -S inherit-network` runs it against a native listener.

use std::net::TcpListener;
use std::process::Command;

use crate::common::{Process, answer_once, in_ci, sockbox};
use anyhow::{Result, bail, ensure};

/// `wasmtime run -S inherit-network guest.wasm dial ADDR` exchanges the classic messages.
#[test]
fn stock_wasmtime_runs_the_exported_guest() -> Result<()> {
    let wasmtime = std::env::var_os("WASMTIME").unwrap_or_else(|| "wasmtime".into());
    if Command::new(&wasmtime).arg("--version").output().is_err() {
        if in_ci() {
            bail!(
                "`wasmtime` is not installed; CI installs it with `cargo install wasmtime-cli --version 48.0.8 --locked`"
            );
        }
        eprintln!(
            "skipping: `wasmtime` is not installed (cargo install wasmtime-cli --version 48.0.8 --locked)"
        );
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let wasm = dir.path().join("sockbox-guest.wasm");
    let mut export = sockbox();
    export.arg("guest").arg("-o").arg(&wasm);
    let exported = Process::run(export)?;
    ensure!(exported.code()? == 0, "{exported}");

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut run = Command::new(&wasmtime);
    run.args(["run", "-S", "inherit-network"])
        .arg(&wasm)
        .args(["dial", &addr.to_string()]);
    let client = Process::spawn(run)?;
    let got = answer_once(&listener, b"from a native server")?;
    let done = client.wait()?;
    ensure!(done.code()? == 0, "{done}");
    assert_eq!(got, b"Hello, World!");
    assert_eq!(done.stdout, "Received: from a native server\n");
    Ok(())
}

//! `sockbox demo`: the classic server and client, each in its own instance.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use sockbox_host::harness::Harness;
use sockbox_host::output::Capture;
use sockbox_host::{Policy, Prepared};

use crate::Failure;

/// How long the demo waits for each of its steps.
const DEMO_TIMEOUT: Duration = Duration::from_secs(30);

/// The classic server and client, each in its own instance with only what it needs.
pub(crate) fn demo() -> Result<ExitCode, Failure> {
    // The demo's guests run side by side in the background while this thread waits on
    // them, so they need a harness's runtime of their own.
    let harness = Harness::new().map_err(Failure::Setup)?;
    let guest = harness.builtin_guest().map_err(Failure::Setup)?;
    run_demo(&harness, &guest).map_err(Failure::Demo)?;
    Ok(ExitCode::SUCCESS)
}

fn run_demo(harness: &Harness, guest: &Prepared) -> Result<()> {
    let server = harness.spawn_with(
        harness
            .sandbox()
            .policy(Policy::deny_all().allow_listen("tcp://127.0.0.1:*")?),
        guest,
        ["listen", "127.0.0.1:0"],
        Capture::tee("[server] "),
        Capture::tee("[server] "),
    )?;
    let addr = server.listening_addr(DEMO_TIMEOUT)?;
    let client = harness.spawn_with(
        harness
            .sandbox()
            .policy(Policy::deny_all().allow(&format!("tcp://127.0.0.1:{}", addr.port()))?),
        guest,
        ["dial".to_owned(), addr.to_string()],
        Capture::tee("[client] "),
        Capture::tee("[client] "),
    )?;
    let client = client.wait(DEMO_TIMEOUT)?;
    let server = server.wait(DEMO_TIMEOUT)?;
    for (name, output) in [("client", client), ("server", server)] {
        if !output.status.success() {
            bail!("the {name} ended with {}", output.status);
        }
    }
    Ok(())
}

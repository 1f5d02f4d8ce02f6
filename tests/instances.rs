//! Many instances from one compiled, linked component (`InstancePre`): each starts
//! fresh, running 100 of them one after another does not grow the host's memory
//! without bound, and 100 live plugin instances cost little each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use sockbox_host::harness::Harness;
use sockbox_host::{Prepared, Runner, Sandbox, SandboxError};

use crate::common::{GUEST, HARNESS};

/// This process's resident memory, in KiB.
fn resident_kib() -> Result<u64> {
    sockbox_cli::bench::resident_kib(std::process::id())
}

/// Runs the built-in guest's `help` `times` times, one after another, each exit 0;
/// returns the time each took.
fn run_help(
    harness: &Harness,
    sandbox: &Sandbox,
    guest: &Prepared,
    times: u32,
) -> Result<Duration> {
    let started = Instant::now();
    for _ in 0..times {
        let output = harness.block_on(sandbox.run_command(guest, ["help"]))?;
        output.assert_success();
    }
    Ok(started.elapsed() / times)
}

/// 100 runs of the built-in guest's `help`, one after another from one `InstancePre`,
/// each exit 0, and resident memory grows by less than a generous 64 MiB over them
/// (other tests share this process). Prints the time per instance and the growth.
#[test]
fn hundred_instances_do_not_grow_memory() -> Result<()> {
    let sandbox = HARNESS.sandbox().build();
    run_help(&HARNESS, &sandbox, &GUEST, 10)?;
    let before = resident_kib()?;
    let each = run_help(&HARNESS, &sandbox, &GUEST, 100)?;
    let grown = resident_kib()?.saturating_sub(before);
    eprintln!(
        "100 commands one after another: {each:?} each (instantiate, run, exit); resident memory grew {grown} KiB"
    );
    assert!(
        grown < 64 * 1024,
        "resident memory grew {grown} KiB over 100 instances"
    );
    Ok(())
}

/// 100 plugin instances held at once all answer a call, and each takes less than a
/// generous 16 MiB of resident memory. Prints the time and memory per instance.
#[test]
fn hundred_live_plugins_are_cheap() -> Result<()> {
    let sandbox = HARNESS.sandbox().build();
    let before = resident_kib()?;
    let started = Instant::now();
    let mut plugins = (0..100)
        .map(|_| HARNESS.block_on(sandbox.instantiate_plugin(&GUEST)))
        .collect::<Result<Vec<_>, _>>()?;
    let each = started.elapsed() / 100;
    let instantiated = resident_kib()?.saturating_sub(before) / 100;
    for plugin in &mut plugins {
        let reply = HARNESS.block_on(plugin.dial("127.0.0.1:1", b""))?;
        assert!(reply.is_err(), "no network was granted");
    }
    let called = resident_kib()?.saturating_sub(before) / 100;
    eprintln!(
        "100 live plugins: instantiated in {each:?} each; resident each: {instantiated} KiB \
         after instantiation, {called} KiB after one call"
    );
    assert!(called < 16 * 1024, "{called} KiB per live instance");
    Ok(())
}

/// A runner with a pool of 4 slots runs 100 commands one after another (each exit 0,
/// slots reused), holds 4 live plugins, refuses a 5th as a setup error with wasmtime's
/// reason, and takes one again once a slot is free. Prints the time per command instance.
#[test]
fn pooled_runner_reuses_its_slots_and_refuses_beyond_them() -> Result<()> {
    let harness = Harness::with_runtime(Arc::new(Runner::pooled(4)?), HARNESS.handle().clone());
    let guest = harness.builtin_guest()?;
    let sandbox = harness.sandbox().build();
    run_help(&harness, &sandbox, &guest, 10)?;
    let each = run_help(&harness, &sandbox, &guest, 100)?;
    eprintln!("100 commands one after another from a pool of 4: {each:?} each");

    let mut plugins = (0..4)
        .map(|_| harness.block_on(sandbox.instantiate_plugin(&guest)))
        .collect::<Result<Vec<_>, _>>()?;
    let refused = match harness.block_on(sandbox.instantiate_plugin(&guest)) {
        Ok(_) => panic!("a 5th live instance fit in a pool of 4"),
        // The host's refusal, not the guest's fault.
        Err(SandboxError::Setup(err)) => format!("{err:#}"),
        Err(other) => panic!("a full pool is not a setup error: {other}"),
    };
    assert!(
        refused.starts_with("instantiate the component: ") && refused.contains("concurrent limit"),
        "the refusal does not say why: {refused}"
    );
    plugins.pop();
    let mut again = harness.block_on(sandbox.instantiate_plugin(&guest))?;
    let reply = harness.block_on(again.dial("127.0.0.1:1", b""))?;
    assert!(reply.is_err(), "no network was granted");
    Ok(())
}

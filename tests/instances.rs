//! Many instances from one compiled, linked component (`InstancePre`): each starts
//! fresh, and running 100 of them one after another does not grow the host's memory
//! without bound.

use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::common::{HARNESS, LIMITS_GUEST};

/// The process's resident memory, in KiB.
fn resident_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS in /proc/self/status")
}

/// 100 instances run one after another from one `InstancePre` each print `ok` and exit
/// 0, and resident memory grows by less than a generous 64 MiB over them (other tests
/// share this process). Prints the time per instance and the growth.
#[test]
fn hundred_instances_do_not_grow_memory() -> Result<()> {
    let sandbox = HARNESS.sandbox().build();
    let run = || -> Result<()> {
        let output = HARNESS.block_on(sandbox.run_command(&LIMITS_GUEST, ["ok"]))?;
        output.assert_success();
        Ok(())
    };
    for _ in 0..10 {
        run()?;
    }
    let before = resident_kib()?;
    let started = Instant::now();
    for _ in 0..100 {
        run()?;
    }
    let elapsed = started.elapsed();
    let grown = resident_kib()?.saturating_sub(before);
    eprintln!(
        "100 instances: {:?} each (instantiate, run, exit); resident memory grew {grown} KiB",
        elapsed / 100
    );
    assert!(
        grown < 64 * 1024,
        "resident memory grew {grown} KiB over 100 instances"
    );
    Ok(())
}

//! Start-up: how long from spawning a runtime to the guest's first byte of output.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// Runs `command` (a guest that prints at once) `runs` times after one unmeasured run
/// (which fills any compile cache) and returns the median time to its first byte on
/// stdout.
pub(super) fn time_to_first_output(mut command: Command, runs: usize) -> Result<Duration> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut times = Vec::with_capacity(runs);
    for run in 0..=runs {
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("spawn {command:?}"))?;
        let mut stdout = child.stdout.take().context("piped stdout")?;
        let mut first = [0u8; 1];
        let read = stdout.read(&mut first);
        let took = started.elapsed();
        let mut rest = Vec::new();
        let _ = stdout.read_to_end(&mut rest);
        let status = child.wait()?;
        if !matches!(read, Ok(1)) || !status.success() {
            bail!("{command:?} printed nothing or failed ({status})");
        }
        if run > 0 {
            times.push(took);
        }
    }
    times.sort();
    Ok(times[times.len() / 2])
}

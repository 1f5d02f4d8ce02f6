//! Limits on one instance: linear memory, wall-clock time, CPU time and live sockets.
//!
//! A limit that trips stops the instance with [`LimitExceeded`], an error wasmtime
//! carries out of the guest as a trap; the store is dropped with everything it holds,
//! and the host process and other instances go on.
//!
//! - Memory: a [`ResourceLimiter`] refuses growth past the cap, summed over the
//!   instance's linear memories.
//! - Time: the caller's `tokio::time::timeout` around the instance's future.
//! - CPU: the epoch ticker (every [`EPOCH_TICK`](super::EPOCH_TICK)) interrupts running
//!   wasm; a tick counts when the instance was still running at the tick before, so a
//!   guest blocked on a socket uses none. The budget is counted in whole ticks.
//!
//! Sockets are not a limit that stops anything: `max_sockets` is a cap a peer cannot
//! use to stop a server (see `sockets`, which enforces it).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::{ResourceLimiter, UpdateDeadline};

use super::EPOCH_TICK;

/// What one instance may use; `None` is no limit. The default limits nothing; set
/// fields on it, or use [`SandboxBuilder`](crate::SandboxBuilder)'s setters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The most linear memory, in bytes, all of the instance's memories may hold.
    pub max_memory: Option<u64>,
    /// The most wall-clock time a run or plugin call may take.
    pub timeout: Option<Duration>,
    /// The most CPU time the instance may spend running, in all (10 ms resolution).
    pub cpu_time: Option<Duration>,
    /// The most TCP and UDP sockets (listeners and accepted connections included) the
    /// instance may hold open at once. A cap, not a limit that stops the instance:
    /// past it, creating a socket fails with `new-socket-limit` and an arriving
    /// connection is closed by the host (and recorded as a denial), while the guest
    /// goes on and serves again once its sockets close.
    pub max_sockets: Option<usize>,
}

/// One of the [`Limits`], with the value it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// `max_memory`, in bytes.
    Memory(u64),
    /// `timeout`.
    Timeout(Duration),
    /// `cpu_time`.
    CpuTime(Duration),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(bytes) => write!(f, "memory limit ({})", format_bytes(*bytes)),
            Self::Timeout(limit) => write!(f, "timeout ({})", humantime::format_duration(*limit)),
            Self::CpuTime(limit) => {
                write!(f, "CPU time limit ({})", humantime::format_duration(*limit))
            }
        }
    }
}

/// Writes a byte count in the largest binary unit that divides it (`64MiB`).
fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["GiB", "MiB", "KiB", "B"];
    UNITS
        .iter()
        .enumerate()
        .map(|(i, unit)| (1u64 << (10 * (3 - i)), unit))
        .find(|(size, _)| bytes.is_multiple_of(*size) && bytes >= *size)
        .map_or_else(
            || format!("{bytes}B"),
            |(size, unit)| format!("{}{unit}", bytes / size),
        )
}

/// The error that stops an instance when a limit trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitExceeded(pub Limit);

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the instance exceeded its {}", self.0)
    }
}

impl std::error::Error for LimitExceeded {}

/// The limit state one store carries.
#[derive(Debug)]
pub(super) struct Meter {
    limits: Limits,
    /// Bytes of linear memory the instance holds, over all its memories.
    memory: u64,
    /// The shared tick counter, and the tick at which the instance last ran.
    ticks: Arc<AtomicU64>,
    last_tick: u64,
    /// Ticks of CPU time used, and allowed.
    used_ticks: u64,
    budget_ticks: Option<u64>,
}

impl Meter {
    pub(super) fn new(limits: Limits, ticks: Arc<AtomicU64>) -> Self {
        let budget_ticks = limits.cpu_time.map(|cpu| {
            let ticks = cpu.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
            u64::try_from(ticks).unwrap_or(u64::MAX)
        });
        Self {
            limits,
            memory: 0,
            last_tick: ticks.load(Ordering::Relaxed),
            ticks,
            used_ticks: 0,
            budget_ticks,
        }
    }

    /// Called when the epoch deadline passes while the instance runs wasm: counts the
    /// tick if the instance also ran through the one before, then yields to tokio.
    pub(super) fn on_epoch(&mut self) -> wasmtime::Result<UpdateDeadline> {
        let now = self.ticks.load(Ordering::Relaxed);
        if now == self.last_tick + 1 {
            self.used_ticks += 1;
        }
        self.last_tick = now;
        if let (Some(budget), Some(limit)) = (self.budget_ticks, self.limits.cpu_time)
            && self.used_ticks > budget
        {
            return Err(LimitExceeded(Limit::CpuTime(limit)).into());
        }
        Ok(UpdateDeadline::Yield(1))
    }

    /// Returns the socket cap, if the instance has one.
    pub(super) fn max_sockets(&self) -> Option<usize> {
        self.limits.max_sockets
    }
}

impl ResourceLimiter for Meter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|maximum| desired > maximum) {
            return Ok(false);
        }
        let grown = self.memory + (desired as u64).saturating_sub(current as u64);
        if let Some(max) = self.limits.max_memory
            && grown > max
        {
            return Err(LimitExceeded(Limit::Memory(max)).into());
        }
        self.memory = grown;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|maximum| desired <= maximum))
    }
}

/// Parses a size: `64MiB`, `512KiB`, `1GiB`, `1000` (bytes), `10MB` (decimal).
///
/// A size past what a 32-bit guest's memory can address (4GiB) is refused, not
/// taken as "no limit": `17EiB` does not fit in 64 bits and would otherwise saturate.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = text.parse().map_err(|_| {
        format!("`{text}` is not a size (use bytes, or a unit: 64MiB, 512KiB, 1GiB)")
    })?;
    match size.as_u64() {
        0 => Err("the size must be more than 0".to_owned()),
        bytes if bytes > MAX_MEMORY => Err(format!(
            "`{text}` is more than a 32-bit guest can address: use at most 4GiB"
        )),
        bytes => Ok(bytes),
    }
}

/// The most `--max-memory` takes: a wasm32 linear memory's whole address space.
const MAX_MEMORY: u64 = 4 << 30;

#[cfg(test)]
mod tests {
    use super::*;

    /// Limits name themselves with the value they had, in the units users wrote.
    #[test]
    fn limits_print_their_value() {
        let cases = [
            (Limit::Memory(64 << 20), "memory limit (64MiB)"),
            (Limit::Memory(1 << 30), "memory limit (1GiB)"),
            (Limit::Memory(1000), "memory limit (1000B)"),
            (Limit::Memory(1536), "memory limit (1536B)"),
            (Limit::Timeout(Duration::from_secs(30)), "timeout (30s)"),
            (
                Limit::CpuTime(Duration::from_millis(250)),
                "CPU time limit (250ms)",
            ),
        ];
        for (limit, text) in cases {
            assert_eq!(limit.to_string(), text);
        }
    }
}

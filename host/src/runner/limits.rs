//! Limits on one instance: linear memory, wall-clock time, CPU time and live sockets.
//!
//! A limit that trips stops the instance with [`LimitExceeded`], an error wasmtime
//! carries out of the guest as a trap; the store is dropped with everything it holds,
//! and the host process and other instances go on.
//!
//! - Memory: a [`ResourceLimiter`] refuses growth past the cap, summed over the
//!   instance's linear memories.
//! - Time: the caller's `tokio::time::timeout` around the instance's future.
//! - CPU: the CPU time of the thread running the instance, host calls included,
//!   counted poll by poll and checked at every epoch tick (see `cpu`); a guest
//!   blocked on a socket uses none.
//!
//! Sockets are not a limit that stops anything: `max_sockets` is a cap a peer cannot
//! use to stop a server (see `sockets`, which enforces it).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{ResourceLimiter, UpdateDeadline};

use super::cpu::CpuClock;

/// What one instance may use; `None` is no limit. The default limits nothing; set
/// fields on it, or use [`SandboxBuilder`](crate::SandboxBuilder)'s setters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The most linear memory, in bytes, all of the instance's memories may hold.
    pub max_memory: Option<u64>,
    /// The most wall-clock time a run or plugin call may take.
    pub timeout: Option<Duration>,
    /// The most CPU time the instance may spend, in all: the CPU time of the thread
    /// running it, its host calls included, checked every 10 ms while it runs.
    pub cpu_time: Option<Duration>,
    /// The most TCP and UDP sockets (listeners and accepted connections included) the
    /// instance may hold open at once. A cap, not a limit that stops the instance:
    /// past it, creating a socket fails with `new-socket-limit` and an arriving
    /// connection is closed by the host (and recorded as a denial), while the guest
    /// goes on and serves again once its sockets close.
    ///
    /// `None`, the default, caps every instance at half the process's open-file limit
    /// (`RLIMIT_NOFILE`, soft) as it is when the instance starts
    /// ([`default_max_sockets`]), so one instance cannot take every descriptor its
    /// host and the other instances share; `Some(0)` lifts the cap.
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
pub(crate) struct Meter {
    limits: Limits,
    /// Bytes of linear memory the instance holds, over all its memories.
    memory: u64,
    /// The CPU time it used, when it has a CPU-time limit.
    cpu: Option<Arc<CpuClock>>,
}

/// The socket cap an instance gets when none is set: half the process's open-file
/// limit (`RLIMIT_NOFILE`, soft) now; `None` when that limit is unlimited.
pub fn default_max_sockets() -> Option<usize> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let soft = usize::try_from(limit.current?).unwrap_or(usize::MAX);
    Some((soft / 2).max(1))
}

impl Meter {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            memory: 0,
            cpu: limits.cpu_time.map(|limit| Arc::new(CpuClock::new(limit))),
        }
    }

    /// Called when the epoch deadline passes while the instance runs wasm: stops it if
    /// it has used up its CPU time, else yields to tokio.
    pub(crate) fn on_epoch(&mut self) -> wasmtime::Result<UpdateDeadline> {
        if let Some(clock) = &self.cpu {
            clock.check()?;
        }
        Ok(UpdateDeadline::Yield(1))
    }

    /// Returns the instance's CPU clock, which its work must be run under
    /// ([`Metered`](super::cpu::Metered)), if it has a CPU-time limit.
    pub(crate) fn cpu_clock(&self) -> Option<Arc<CpuClock>> {
        self.cpu.clone()
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

/// Parses a socket cap: a number of sockets, or `unlimited` (also `0`) for none, as
/// [`Limits::max_sockets`] takes it (`unlimited` is `Some(0)`).
pub fn parse_max_sockets(text: &str) -> Result<usize, String> {
    if text == "unlimited" {
        return Ok(0);
    }
    text.parse()
        .map_err(|_| format!("`{text}` is not a number of sockets (use a number, or `unlimited`)"))
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

//! `--pin CPU`: single-connection scenarios run with the bench (its load client and
//! in-process servers) and every server process it started on one CPU, so that where
//! the scheduler puts the two ends does not swing the figure (3× unpinned on a 2-core
//! machine). Every thread of each process is moved; threads made later inherit.

use anyhow::{Context as _, Result};
use rustix::process::Pid;
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// Which CPU `--pin` names: `auto` (the last CPU this process may use, when it may use
/// at least 2), `none`, or a CPU's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinArg {
    Auto,
    None,
    Cpu(usize),
}

/// Parses `--pin`'s value.
pub fn parse_pin(text: &str) -> Result<PinArg, String> {
    match text {
        "auto" => Ok(PinArg::Auto),
        "none" => Ok(PinArg::None),
        number => number
            .parse()
            .ok()
            .filter(|&cpu| cpu < CpuSet::MAX_CPU)
            .map(PinArg::Cpu)
            .ok_or_else(|| format!("`{text}` is not a CPU: use a CPU's number, `auto` or `none`")),
    }
}

/// The processes to move between one CPU and the CPUs the bench started with.
pub(super) struct Pinning {
    cpu: usize,
    one: CpuSet,
    all: CpuSet,
    pids: Vec<u32>,
}

impl Pinning {
    /// The pinning `arg` asks for, of this process and `pids`; `None` when unpinned.
    pub(super) fn new(arg: PinArg, pids: Vec<u32>) -> Result<Option<Self>> {
        let all = sched_getaffinity(None).context("read the bench's CPU affinity")?;
        let allowed: Vec<usize> = (0..CpuSet::MAX_CPU)
            .filter(|&cpu| all.is_set(cpu))
            .collect();
        let cpu = match arg {
            PinArg::None => return Ok(None),
            PinArg::Auto if allowed.len() < 2 => return Ok(None),
            PinArg::Auto => *allowed.last().context("no CPU to run on")?,
            PinArg::Cpu(cpu) => cpu,
        };
        anyhow::ensure!(
            all.is_set(cpu),
            "--pin {cpu}: the bench may not run on CPU {cpu}"
        );
        let mut one = CpuSet::new();
        one.set(cpu);
        Ok(Some(Self {
            cpu,
            one,
            all,
            pids,
        }))
    }

    /// The CPU single-connection scenarios run on.
    pub(super) fn cpu(&self) -> usize {
        self.cpu
    }

    /// Moves everything to the one CPU (`true`) or back to all (`false`).
    pub(super) fn pin(&self, pinned: bool) -> Result<()> {
        let set = if pinned { &self.one } else { &self.all };
        let own = std::process::id();
        for pid in std::iter::once(own).chain(self.pids.iter().copied()) {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
                .with_context(|| format!("list the threads of process {pid}"))?;
            for task in tasks.flatten() {
                let tid = task.file_name().to_string_lossy().parse::<i32>().ok();
                if let Some(tid) = tid.and_then(Pid::from_raw) {
                    // A thread that ended meanwhile has nothing to move.
                    let _ = sched_setaffinity(Some(tid), set);
                }
            }
        }
        Ok(())
    }
}

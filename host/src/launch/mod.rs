//! The one contract every front end keeps — the `sockbox` CLI and the containerd shim:
//! what a run is given ([`Settings`], from flags or from annotations), how it is set
//! up on a [`SandboxBuilder`], and how its end becomes an exit status and the lines
//! sockbox prints ([`Ending`]). A front end decides only where its settings come from
//! and where the lines go; a new switch is added here and in each source of settings,
//! and a test (`cli/src/run.rs`) proves every `sockbox run` flag has its annotation.
//!
//! Like the rest of the library this module prints nothing: it hands each line to the
//! front end ([`Report`]).

pub mod annotations;

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use crate::enforce::AuditLog;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::sandbox::MAX_INSTANCES;
use crate::{Exit, Limit, LimitExceeded, Limits, Output, Sandbox, SandboxBuilder, SandboxError};

/// The exit status of a run sockbox refused to start: a bad flag, rule, policy file or
/// annotation, or a component that cannot run. Reported in one line before any guest
/// code runs.
pub const SETUP_STATUS: i32 = 2;

/// The exit status a trap gives, as `wasmtime run` gives it on Unix (128 + SIGABRT).
pub const TRAP_STATUS: i32 = 134;

/// The exit status when `limit` stops the guest: 137 for memory (as for a process the
/// OOM killer stops), 124 for the timeout (as `timeout(1)` gives), 152 for CPU time
/// (128 + SIGXCPU, as `RLIMIT_CPU` gives).
pub fn limit_status(limit: Limit) -> i32 {
    match limit {
        Limit::Memory(_) => 137,
        Limit::Timeout(_) => 124,
        Limit::CpuTime(_) => 152,
    }
}

/// Where every decision is written as an audit line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTo {
    /// A file, created or truncated (`--audit FILE`).
    File(PathBuf),
    /// The process's stderr (`sockbox.io/audit: stderr`: the container's log).
    Stderr,
}

/// What one run is given, by flags or by annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Its network policy.
    pub policy: Policy,
    /// Its limits.
    pub limits: Limits,
    /// Where every decision goes (`None`: each distinct denial is one reported line).
    pub audit: Option<AuditTo>,
    /// Whether its TCP sockets keep Nagle's algorithm; by default they get
    /// `TCP_NODELAY`.
    pub no_tcp_nodelay: bool,
    /// How many instances the command runs as (default 1; see
    /// [`SandboxBuilder::instances`]).
    pub instances: usize,
    /// Where to serve Prometheus metrics (`/metrics`), if anywhere.
    pub metrics: Option<SocketAddr>,
}

impl Default for Settings {
    /// No network, no limits, denials reported, `TCP_NODELAY`, one instance.
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            limits: Limits::default(),
            audit: None,
            no_tcp_nodelay: false,
            instances: 1,
            metrics: None,
        }
    }
}

/// Parses a number of instances: `N` (1 to [`MAX_INSTANCES`]) or `auto`, the cores
/// this process may run on (its CPU affinity and cgroup quota counted).
pub fn parse_instances(text: &str) -> Result<usize, String> {
    if text == "auto" {
        return Ok(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
    }
    match text.parse::<usize>() {
        Ok(count) if (1..=MAX_INSTANCES).contains(&count) => Ok(count),
        _ => Err(format!(
            "`{text}` is not a number of instances (use 1 to {MAX_INSTANCES}, or `auto`)"
        )),
    }
}

/// Where a front end sends the lines sockbox reports (`sockbox: denied …`).
pub type Report = Arc<dyn Fn(&str) + Send + Sync>;

impl Settings {
    /// Sets `sandbox` up with these settings: policy, limits, `TCP_NODELAY`, and the
    /// audit trail — or, without one, each distinct denial reported as one line. Each
    /// published port is reported too. Fails (sockbox's own error) when the audit file
    /// cannot be created.
    pub fn apply(
        &self,
        sandbox: SandboxBuilder,
        report: &Report,
    ) -> anyhow::Result<SandboxBuilder> {
        let mut sandbox = sandbox
            .policy(self.policy.clone())
            .limits(self.limits)
            .tcp_nodelay(!self.no_tcp_nodelay)
            .instances(self.instances);
        sandbox = match &self.audit {
            Some(AuditTo::File(path)) => {
                let log = AuditLog::create(path)
                    .with_context(|| format!("create the audit file {}", path.display()))?;
                sandbox.audit(Arc::new(log))
            }
            Some(AuditTo::Stderr) => {
                let stderr = std::os::fd::AsFd::as_fd(&std::io::stderr())
                    .try_clone_to_owned()
                    .context("write the audit to stderr")?;
                sandbox.audit(Arc::new(AuditLog::to_file(File::from(stderr))))
            }
            None => {
                let report = Arc::clone(report);
                sandbox.on_denial(move |denial| report(&format!("sockbox: {denial}")))
            }
        };
        if self.metrics.is_some() {
            sandbox = sandbox.metrics(Metrics::new());
        }
        let report = Arc::clone(report);
        Ok(sandbox.on_publish(move |published| report(&format!("sockbox: {published}"))))
    }

    /// Serves `sandbox`'s metrics where the settings say (inside a tokio runtime),
    /// reporting `sockbox: metrics on http://ADDR/metrics`; the server stops when the
    /// returned task is aborted or the runtime ends. `Ok(None)`: no metrics asked for.
    pub async fn serve_metrics(
        &self,
        sandbox: &Sandbox,
        report: &Report,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        let (Some(addr), Some(metrics)) = (self.metrics, sandbox.metrics()) else {
            return Ok(None);
        };
        let (local, task) = crate::metrics::serve(addr, Arc::clone(metrics))
            .await
            .with_context(|| format!("serve metrics on {addr}"))?;
        report(&format!("sockbox: metrics on http://{local}/metrics"));
        Ok(Some(task))
    }
}

/// How a run ended, as sockbox reports it: the exit status and the lines to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The process's (or container's) exit status.
    pub status: i32,
    /// What sockbox says about the end, one line each.
    pub lines: Vec<String>,
}

impl Ending {
    /// The end of a run under `settings`: the guest's own status (134 for a trap,
    /// with the trap's line), with a count of would-be denials in audit mode, or a
    /// limit's status and line. Any other error is sockbox's own, returned.
    pub fn of(
        result: Result<Output, SandboxError>,
        settings: &Settings,
    ) -> Result<Self, SandboxError> {
        let output = match result {
            Ok(output) => output,
            Err(SandboxError::Limit(limit)) => return Ok(Self::limit(limit)),
            Err(err) => return Err(err),
        };
        let mut lines = Vec::new();
        if let Exit::Trap(message) = &output.status {
            let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
            lines.push(format!("sockbox: guest trapped: {message}"));
        }
        if output.would_deny > 0 {
            let uses = match output.would_deny {
                1 => "1 use".to_owned(),
                n => format!("{n} uses"),
            };
            lines.push(match &settings.audit {
                Some(AuditTo::File(path)) => format!(
                    "sockbox: {uses} would have been denied; see {}",
                    path.display()
                ),
                Some(AuditTo::Stderr) => {
                    format!("sockbox: {uses} would have been denied (the audit lines above)")
                }
                None => format!("sockbox: {uses} would have been denied (listed above)"),
            });
        }
        Ok(Self {
            status: output.status.code().unwrap_or(TRAP_STATUS),
            lines,
        })
    }

    /// The end of a run `limit` stopped.
    pub fn limit(limit: Limit) -> Self {
        Self {
            status: limit_status(limit),
            lines: vec![format!(
                "sockbox: stopped the guest: {}",
                LimitExceeded(limit)
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn output(status: Exit, would_deny: u64) -> Result<Output, SandboxError> {
        Ok(Output {
            status,
            stdout: String::new(),
            stderr: String::new(),
            denials: Vec::new(),
            would_deny,
        })
    }

    #[test]
    fn each_end_has_its_status_and_lines() {
        let plain = Settings::default();
        let ending = Ending::of(output(Exit::Code(3), 0), &plain).expect("an end");
        assert_eq!((ending.status, ending.lines.len()), (3, 0));

        let trapped = Ending::of(output(Exit::Trap("wasm\n  unreachable".into()), 0), &plain)
            .expect("an end");
        assert_eq!(trapped.status, 134);
        assert_eq!(trapped.lines, ["sockbox: guest trapped: wasm unreachable"]);

        let audited = Settings {
            audit: Some(AuditTo::File("audit.jsonl".into())),
            ..Settings::default()
        };
        let ending = Ending::of(output(Exit::Code(0), 2), &audited).expect("an end");
        assert_eq!(
            ending.lines,
            ["sockbox: 2 uses would have been denied; see audit.jsonl"]
        );

        for (limit, status) in [
            (Limit::Memory(1 << 20), 137),
            (Limit::Timeout(Duration::from_secs(1)), 124),
            (Limit::CpuTime(Duration::from_secs(1)), 152),
        ] {
            let ending =
                Ending::of(Err(SandboxError::Limit(limit)), &plain).expect("a limit's end");
            assert_eq!(ending.status, status);
            assert!(ending.lines[0].starts_with("sockbox: stopped the guest: "));
        }
    }
}

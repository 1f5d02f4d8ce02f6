//! [`SandboxBuilder`]'s setters: what a [`Sandbox`]'s instances get.

use std::sync::Arc;
use std::time::Duration;

use super::{Hook, PublishHook, Sandbox, SandboxBuilder};
use crate::enforce::{AuditLog, PolicyHandle, Published};
use crate::metrics::Metrics;
use crate::output::Stdio;
use crate::policy::{Decision, Policy};
use crate::runner::{Limits, WasiVersion};

impl SandboxBuilder {
    /// Sets the network policy (default: none at all).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.sandbox.policy = PolicyHandle::new(policy);
        self
    }

    /// Runs a command's `wasi:cli/run` of WASI `version` (default: 0.3's when the
    /// component exports it, else 0.2's, as wasmtime's CLI chooses); a component that
    /// does not export it fails to run with [`SandboxError::Setup`](super::SandboxError).
    pub fn wasi(mut self, version: WasiVersion) -> Self {
        self.sandbox.wasi = Some(version);
        self
    }

    /// Sets the instance's name in denial and audit lines (default: its program name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.sandbox.name = Some(name.into());
        self
    }

    /// Sets the program name instances see as `argv[0]` (default: `sockbox-guest`).
    pub fn program(mut self, program: impl Into<String>) -> Self {
        self.sandbox.program = program.into();
        self
    }

    /// Adds arguments every instance gets after its program name.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.sandbox.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.sandbox.env.push((key.into(), value.into()));
        self
    }

    /// Sets where instances' stdout goes (default: [`Stdio::Null`]). With a
    /// [`Capture`](crate::output::Capture), each run or plugin gets a fresh one (teeing
    /// as this one does), returned in its [`Output`](super::Output) or read from the [`Plugin`](super::Plugin).
    pub fn stdout(mut self, stdout: Stdio) -> Self {
        self.sandbox.stdout = stdout;
        self
    }

    /// Sets where instances' stderr goes (default: [`Stdio::Null`]).
    pub fn stderr(mut self, stderr: Stdio) -> Self {
        self.sandbox.stderr = stderr;
        self
    }

    /// Runs each command as `count` instances (default 1; 0 is 1; at most
    /// [`MAX_INSTANCES`](super::MAX_INSTANCES)), each on its own thread, under one
    /// policy, audit trail, denial log and socket cap: a server serves on every core,
    /// the kernel spreading connections over the instances' listeners on one port
    /// (`SO_REUSEPORT`). Each instance has its own memory and state; see
    /// [`Sandbox::run_command`](super::Sandbox::run_command). Plugins are one instance.
    pub fn instances(mut self, count: usize) -> Self {
        self.sandbox.instances = count.clamp(1, super::MAX_INSTANCES);
        self
    }

    /// Sets all the limits at once.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.sandbox.limits = limits;
        self
    }

    /// Caps each instance's linear memory, all its memories together, at `bytes`.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.sandbox.limits.max_memory = Some(bytes);
        self
    }

    /// Bounds the wall-clock time of each command run, plugin instantiation and
    /// plugin call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.sandbox.limits.timeout = Some(timeout);
        self
    }

    /// Bounds the CPU time each instance may spend running, in 10 ms ticks.
    pub fn cpu_time(mut self, budget: Duration) -> Self {
        self.sandbox.limits.cpu_time = Some(budget);
        self
    }

    /// Caps the TCP and UDP sockets each instance may hold open at once.
    pub fn max_sockets(mut self, max: usize) -> Self {
        self.sandbox.limits.max_sockets = Some(max);
        self
    }

    /// Sets whether instances' TCP sockets get `TCP_NODELAY`, so small writes go out at
    /// once, as Go's `net` sets it (default: on). wasi:sockets has no option for it.
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.sandbox.tcp_nodelay = on;
        self
    }

    /// Hands each distinct refused use to `sink` as it happens, as well as returning
    /// it in the run's [`Output`](super::Output) (default: only returned, and emitted as a `tracing`
    /// debug event). The `sockbox` CLI prints each as one `sockbox: denied …` line.
    pub fn on_denial(mut self, sink: impl Fn(&Decision) + Send + Sync + 'static) -> Self {
        self.sandbox.on_denial = Some(Hook(Arc::new(sink)));
        self
    }

    /// Hands each port an instance publishes (`--publish`: the guest bound a published
    /// port, the host bound its own) to `sink` as the guest binds it. The `sockbox` CLI
    /// prints each as one `sockbox: published tcp 127.0.0.1:80 on 127.0.0.1:41234` line.
    pub fn on_publish(mut self, sink: impl Fn(&Published) + Send + Sync + 'static) -> Self {
        self.sandbox.on_publish = Some(PublishHook(Arc::new(sink)));
        self
    }

    /// Writes every decision to `audit`.
    pub fn audit(mut self, audit: Arc<AuditLog>) -> Self {
        self.sandbox.audit = Some(audit);
        self
    }

    /// Counts what its instances do in `metrics` (Prometheus; see
    /// [`Metrics::register`] and [`crate::metrics::serve`]).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.sandbox.metrics = Some(metrics);
        self
    }

    /// Returns the sandbox.
    pub fn build(self) -> Sandbox {
        self.sandbox.policy.audit_to(self.sandbox.audit.clone());
        self.sandbox.policy.count_in(self.sandbox.metrics.clone());
        self.sandbox
    }
}

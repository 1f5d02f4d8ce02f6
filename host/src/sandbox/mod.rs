//! The embedding API: a [`Sandbox`] is how one kind of instance is run — its network
//! policy, stdio, arguments, environment and [`Limits`] — and runs any number of
//! instances of [`Prepared`] components, as commands ([`Sandbox::run_command`]) or as
//! plugins with typed calls ([`Sandbox::instantiate_plugin`]).
//!
//! Every instance gets its own store, socket table and limits; all of them share the
//! [`Runner`]'s engine and each component's compiled code and linked imports. A limit
//! that trips ends that instance with [`SandboxError::Limit`]; the process and every
//! other instance go on.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use sockbox_host::{Policy, Runner, Sandbox, output::Stdio};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let runner = Arc::new(Runner::new()?);
//! let guest = runner.prepare(&runner.builtin_guest()?)?;
//! let sandbox = Sandbox::builder(Arc::clone(&runner))
//!     .policy(Policy::deny_all().allow("tcp://127.0.0.1:8080")?)
//!     .stdout(Stdio::Null)
//!     .max_memory(64 << 20)
//!     .timeout(Duration::from_secs(5))
//!     .build();
//!
//! // As a command: `dial 127.0.0.1:8080`.
//! let output = sandbox.run_command(&guest, ["dial", "127.0.0.1:8080"]).await?;
//! println!("the guest ended with {}", output.status);
//!
//! // As a plugin: the same flow, as a typed call.
//! let mut plugin = sandbox.instantiate_plugin(&guest).await?;
//! match plugin.dial("127.0.0.1:8080", b"ping").await? {
//!     Ok(reply) => println!("{}", String::from_utf8_lossy(&reply)),
//!     Err(err) => println!("dial failed: {err}"),
//! }
//! # Ok(())
//! # }
//! ```

mod builder;
mod instances;
mod outcome;
mod plugin;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::enforce::{AuditLog, DenialLog, DenialSink, Enforcer, PolicyHandle, PublishSink};
use crate::metrics::Metrics;
use crate::output::Stdio;
use crate::policy::Policy;
use crate::runner::{
    Command, CpuClock, Exit, GUEST_PROGRAM, Instance, Limit, LimitExceeded, Limits, Metered,
    Prepared, Runner, WasiVersion,
};
use crate::wasi::Siblings;

pub use instances::MAX_INSTANCES;
pub use outcome::{Output, SandboxError};
pub use plugin::Plugin;

/// How instances are run: a policy, stdio, arguments, environment and limits, over one
/// shared [`Runner`]. Cheap to clone; build one with [`Sandbox::builder`].
#[derive(Debug, Clone)]
pub struct Sandbox {
    runner: Arc<Runner>,
    policy: PolicyHandle,
    name: Option<String>,
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdout: Stdio,
    stderr: Stdio,
    limits: Limits,
    /// The WASI version whose `wasi:cli/run` a command runs, when forced.
    wasi: Option<WasiVersion>,
    tcp_nodelay: bool,
    on_denial: Option<Hook>,
    on_publish: Option<PublishHook>,
    audit: Option<Arc<AuditLog>>,
    metrics: Option<Arc<Metrics>>,
    /// How many instances a command runs as (at least 1).
    instances: usize,
}

/// The embedder's publish sink, shown in `Debug` output only as there.
#[derive(Clone)]
struct PublishHook(PublishSink);

impl fmt::Debug for PublishHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublishHook(..)")
    }
}

/// The embedder's denial sink, shown in `Debug` output only as there.
#[derive(Clone)]
struct Hook(DenialSink);

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hook(..)")
    }
}

/// What one run's instances share, and no other run's: where their output and
/// denials go, and their socket count.
#[derive(Debug, Clone)]
pub(crate) struct RunIo {
    pub stdout: Stdio,
    pub stderr: Stdio,
    pub denials: Arc<DenialLog>,
    pub siblings: Siblings,
}

impl RunIo {
    /// Marks captured streams finished, so readers waiting on them stop.
    pub(crate) fn close(&self) {
        for stdio in [&self.stdout, &self.stderr] {
            match stdio {
                Stdio::Capture(capture) => capture.close(),
                Stdio::Lines(lines) => lines.close(),
                Stdio::Inherit | Stdio::Null => {}
            }
        }
    }
}

/// Builds a [`Sandbox`]. Unset, an instance gets no network, no arguments but its
/// program name, an empty environment, its output discarded, and no limits.
#[derive(Debug)]
#[must_use]
pub struct SandboxBuilder {
    sandbox: Sandbox,
}

impl Sandbox {
    /// Starts building a sandbox whose instances run on `runner`.
    pub fn builder(runner: Arc<Runner>) -> SandboxBuilder {
        SandboxBuilder {
            sandbox: Self {
                runner,
                policy: PolicyHandle::new(Policy::deny_all()),
                name: None,
                program: GUEST_PROGRAM.to_owned(),
                args: Vec::new(),
                env: Vec::new(),
                stdout: Stdio::Null,
                stderr: Stdio::Null,
                limits: Limits::default(),
                wasi: None,
                tcp_nodelay: true,
                on_denial: None,
                on_publish: None,
                audit: None,
                metrics: None,
                instances: 1,
            },
        }
    }

    /// Returns the runner its instances run on.
    pub fn runner(&self) -> &Arc<Runner> {
        &self.runner
    }

    /// Returns the policy its instances run under now.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.current()
    }

    /// Returns the handle that replaces its policy while instances run
    /// ([`PolicyHandle::reload`]): the next decision of every instance of every run of
    /// this sandbox (and its clones) uses the new one; what the old one let happen, an
    /// established connection say, stays. Reloads are audit lines of their own.
    /// Take it before running: only instances started after get sockets of every
    /// transport, so that a reload can allow UDP where the first policy had no UDP
    /// rule.
    pub fn policy_handle(&self) -> PolicyHandle {
        self.policy.mark_reloadable();
        self.policy.clone()
    }

    /// Returns the metrics its runs count into, if it has any ([`SandboxBuilder::metrics`]).
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// Returns the limits each of its instances gets.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Returns how many instances a command runs as.
    pub fn instances(&self) -> usize {
        self.instances
    }

    /// Returns fresh output and a fresh denial log for one instance: a captured stream
    /// gets a new, empty capture (teeing as the sandbox's does), so no run sees
    /// another's output.
    pub(crate) fn run_io(&self) -> RunIo {
        let fresh = |stdio: &Stdio| match stdio {
            Stdio::Capture(capture) => Stdio::Capture(capture.fresh()),
            other => other.clone(),
        };
        let denials = match &self.on_denial {
            Some(Hook(sink)) => DenialLog::with_sink(Arc::clone(sink)),
            None => DenialLog::default(),
        };
        RunIo {
            stdout: fresh(&self.stdout),
            stderr: fresh(&self.stderr),
            denials: Arc::new(denials),
            siblings: Siblings::default(),
        }
    }

    /// Runs `component`'s `wasi:cli/run` with arguments `[program, sandbox args…,
    /// args…]` until it returns, exits or traps, and returns how it ended with what it
    /// printed to captured stdio and what the policy refused it. Every run has its own
    /// captures and denial log: a sandbox can be run again and again.
    ///
    /// A trap is [`Exit::Trap`]. A limit that trips is [`SandboxError::Limit`]; a
    /// component that is not a command, or an instance the host cannot make (a full
    /// [pool](Runner::pooled)), is [`SandboxError::Setup`].
    pub async fn run_command<I, S>(
        &self,
        component: &Prepared,
        args: I,
    ) -> Result<Output, SandboxError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if self.instances > 1 {
            let args = args.into_iter().map(Into::into).collect();
            return self.run_instances(component, args).await;
        }
        self.run_command_with(component, args, self.run_io()).await
    }

    /// [`Sandbox::run_command`] with the instance's output and denials going to `io`.
    pub(crate) async fn run_command_with<I, S>(
        &self,
        component: &Prepared,
        args: I,
        io: RunIo,
    ) -> Result<Output, SandboxError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let command = component
            .command(self.wasi)
            .map_err(|why| SandboxError::Setup(anyhow::anyhow!(why)))?;
        let entry = match command {
            Command::P2(_) => WasiVersion::P2.entry(),
            Command::P3(_) => WasiVersion::P3.entry(),
        };
        tracing::info!(parent: &self.span(), entry, "running");
        let mut store = self.store(args, &io);
        let cpu = store.data().cpu_clock();
        let run = async {
            match command {
                Command::P2(pre) => {
                    let command = match pre.instantiate_async(&mut store).await {
                        Ok(command) => command,
                        Err(err) => return Ok(Err(SandboxError::from_instantiate(err))),
                    };
                    command.wasi_cli_run().call_run(&mut store).await.map(Ok)
                }
                Command::P3(pre) => {
                    let command = match pre.instantiate_async(&mut store).await {
                        Ok(command) => command,
                        Err(err) => return Ok(Err(SandboxError::from_instantiate(err))),
                    };
                    store
                        .run_concurrent(async move |store| {
                            command.wasi_cli_run().call_run(store).await
                        })
                        .await?
                        .map(Ok)
                }
            }
        };
        let run = tracing::Instrument::instrument(run, self.span());
        let running = self.metrics.as_ref().map(Metrics::instance_running);
        let outcome = match within(self.limits.timeout, cpu.as_deref(), run).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(err)) => Err(err),
            Err(err) => Err(SandboxError::from_trap(err)),
        };
        drop(running);
        if let (Some(metrics), Err(SandboxError::Limit(limit))) = (&self.metrics, &outcome) {
            metrics.limit_stopped(*limit);
        }
        io.close();
        let status = match outcome {
            Ok(Ok(())) => Exit::Code(0),
            Ok(Err(())) => Exit::Code(1),
            Err(SandboxError::Exit(code)) => Exit::Code(code),
            // A command that traps ends with a status, as a crashing process does.
            Err(SandboxError::Trap(message)) => Exit::Trap(message),
            Err(err) => return Err(err),
        };
        Ok(Output {
            status,
            stdout: io.stdout.text(),
            stderr: io.stderr.text(),
            denials: io.denials.denials(),
            would_deny: io.denials.would_deny(),
        })
    }

    /// Instantiates `component` as a plugin, with arguments `[program, sandbox args…]`,
    /// for typed calls to its `sockbox:net/flows` export.
    ///
    /// The sandbox's timeout bounds each call, not the plugin's life. The plugin has its
    /// own captures and denial log ([`Plugin::stdout`], [`Plugin::denials`]).
    pub async fn instantiate_plugin(&self, component: &Prepared) -> Result<Plugin, SandboxError> {
        let pre = component.plugin.as_ref().ok_or_else(|| {
            SandboxError::Setup(anyhow::anyhow!(
                "the component exports no sockbox:net/flows: it is not a plugin"
            ))
        })?;
        let io = self.run_io();
        let mut store = self.store(std::iter::empty::<String>(), &io);
        let cpu = store.data().cpu_clock();
        let instantiate =
            tracing::Instrument::instrument(pre.instantiate_async(&mut store), self.span());
        let bindings = within(self.limits.timeout, cpu.as_deref(), instantiate)
            .await
            .map_err(SandboxError::from_instantiate)?;
        Ok(Plugin::new(store, bindings, self.limits.timeout, io))
    }

    /// The span an instance's work runs in: its name, for every event inside it.
    fn span(&self) -> tracing::Span {
        let name = self.name.as_deref().unwrap_or(&self.program);
        tracing::info_span!("instance", name)
    }

    /// Makes one instance's store.
    fn store<I, S>(&self, args: I, io: &RunIo) -> wasmtime::Store<crate::runner::GuestState>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = std::iter::once(self.program.clone())
            .chain(self.args.iter().cloned())
            .chain(args.into_iter().map(Into::into))
            .collect();
        let name = self.name.clone().unwrap_or_else(|| self.program.clone());
        let mut enforcer = Enforcer::new(
            name,
            self.policy.clone(),
            Arc::clone(&io.denials),
            self.audit.clone(),
        );
        if let Some(PublishHook(sink)) = &self.on_publish {
            enforcer = enforcer.with_publish_sink(Arc::clone(sink));
        }
        if let Some(metrics) = &self.metrics {
            enforcer = enforcer.with_metrics(Arc::clone(metrics));
        }
        self.runner.store(Instance {
            args,
            env: self.env.clone(),
            stdout: io.stdout.clone(),
            stderr: io.stderr.clone(),
            enforcer: Arc::new(enforcer),
            limits: self.limits,
            tcp_nodelay: self.tcp_nodelay,
            siblings: io.siblings.clone(),
        })
    }
}

/// Runs guest code (`work`), failing with the timeout limit if it takes longer than
/// `timeout`, and charging every poll of it to the instance's CPU clock, if it has one
/// (failing with the CPU-time limit once that is used up).
///
/// Guest code runs outside tokio's cooperative budget: one `wasi:io/poll` call over
/// more than 128 sockets would otherwise spend the task's whole budget partway down
/// its list, every time, and never see the sockets after that point ready (measured:
/// 150 ping-pong connections fell from 43,000 to 6,000 round trips/s, each waiting
/// for the 10 ms epoch tick). The epoch ticker still makes the guest yield to other
/// tasks every 10 ms.
pub(crate) async fn within<T>(
    timeout: Option<Duration>,
    cpu: Option<&CpuClock>,
    work: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    let work = async {
        match cpu {
            Some(clock) => Metered::new(clock, work).await,
            None => work.await,
        }
    };
    let work = tokio::task::unconstrained(work);
    match timeout {
        None => work.await,
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .unwrap_or_else(|_| Err(LimitExceeded(Limit::Timeout(limit)).into())),
    }
}

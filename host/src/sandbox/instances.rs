//! One command run as several instances (`--instances N`), to serve on every core:
//! each instance on its own thread with its own current-thread runtime, all under one
//! policy, one audit trail and one denial log, counting into one socket cap.
//!
//! - **One port, several listeners.** Every socket the instances make gets
//!   `SO_REUSEPORT` (`wasi/sockopt.rs`), so their listeners on one port form a group
//!   and the kernel spreads connections (and UDP datagrams) over them. A guest port
//!   published on host port 0 (`--publish 0:8080`) gets one host port for the whole
//!   run, picked here before any instance starts and held by a bound socket of
//!   sockbox's (in the group, never listening) until an instance binds it. A bind to
//!   port 0 is each instance's own: its own port, as a socket pair's listener must be.
//! - **One run's output.** `listening on` lines are held until every instance has
//!   printed its own (or ended), and a line all print alike is written once, as is a
//!   `sockbox: published …` line; every other line of every instance whole
//!   ([`Lines`]).
//! - **The end.** The run ends when every instance has; its status is that of the
//!   first instance to end otherwise than with status 0 (a trap, a limit, a failure),
//!   or 0. An instance that ends early leaves the others serving.
//! - **Limits**: memory and CPU time are each instance's own, the timeout holds for
//!   each from the run's start, and the socket cap is the run's.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};

use super::{PublishHook, RunIo, Sandbox};
use crate::enforce::Published;
use crate::output::{Lines, Stdio};
use crate::policy::{Publish, Transport};
use crate::runner::{Exit, Prepared};
use crate::wasi::Siblings;
use crate::{Output, SandboxError};

/// The host ports picked for a run's publications, each held by a socket of sockbox's
/// until an instance binds it.
type HeldPorts = Arc<Mutex<Vec<(Transport, u16, OwnedFd)>>>;

/// The most instances one run may have.
pub const MAX_INSTANCES: usize = 1024;

impl Sandbox {
    /// [`Sandbox::run_command`] for a sandbox of several instances.
    pub(super) async fn run_instances(
        &self,
        component: &Prepared,
        args: Vec<String>,
    ) -> Result<Output, SandboxError> {
        let count = self.instances;
        let mut policy = (*self.policy.current()).clone();
        let mut held = Vec::new();
        policy
            .pick_host_ports(|publish| {
                let (port, socket) = hold_port(publish)?;
                held.push((publish.transport, port, socket));
                Ok::<_, std::io::Error>(port)
            })
            .map_err(|err| {
                SandboxError::Setup(anyhow::Error::new(err).context("pick a published port"))
            })?;
        // The ports picked are the run's: a reload keeps them.
        self.policy.set(policy);
        let held: HeldPorts = Arc::new(Mutex::new(held));
        let base = self.name.clone().unwrap_or_else(|| self.program.clone());
        let io = self.run_io();
        let siblings = Siblings {
            sockets: Arc::default(),
            several: true,
        };
        let stdout = shared_lines(&io.stdout, || Lines::stdout(count));
        let stderr = shared_lines(&io.stderr, || Lines::stderr(count));
        let on_publish = self.on_publish_once(&held);
        let (done, mut ended) = tokio::sync::mpsc::unbounded_channel();
        for index in 1..=count {
            let mut sandbox = self.clone();
            sandbox.name = Some(format!("{base}/{index}"));
            sandbox.on_publish = Some(on_publish.clone());
            let io = RunIo {
                stdout: another(&stdout, &io.stdout),
                stderr: another(&stderr, &io.stderr),
                denials: Arc::clone(&io.denials),
                siblings: siblings.clone(),
            };
            let component = component.clone();
            let args = args.clone();
            let done = done.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sockbox-instance-{index}"))
                .spawn(move || {
                    let result = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => {
                            runtime.block_on(sandbox.run_command_with(&component, args, io))
                        }
                        Err(err) => Err(SandboxError::Setup(
                            anyhow::Error::new(err).context("start an instance's runtime"),
                        )),
                    };
                    let _ = done.send(result);
                });
            if let Err(err) = spawned {
                return Err(SandboxError::Setup(
                    anyhow::Error::new(err).context("start an instance's thread"),
                ));
            }
        }
        drop(done);
        let mut first: Option<Result<Output, SandboxError>> = None;
        let mut stdouts = Vec::new();
        let mut stderrs = Vec::new();
        let mut ended_count = 0;
        while let Some(result) = ended.recv().await {
            ended_count += 1;
            if let Ok(output) = &result {
                stdouts.push(output.stdout.clone());
                stderrs.push(output.stderr.clone());
            }
            let failed = !matches!(&result, Ok(output) if output.status.success());
            if failed && first.is_none() {
                first = Some(result);
            }
        }
        if ended_count < count {
            return Err(SandboxError::Setup(anyhow::anyhow!(
                "an instance's thread ended without a result"
            )));
        }
        let status = match first {
            Some(Err(err)) => return Err(err),
            Some(Ok(output)) => output.status,
            None => Exit::Code(0),
        };
        Ok(Output {
            status,
            stdout: stdouts.concat(),
            stderr: stderrs.concat(),
            denials: io.denials.denials(),
            would_deny: io.denials.would_deny(),
        })
    }

    /// The embedder's publish sink, told each publication once for the run; the
    /// socket holding a picked host port is closed once an instance has bound it.
    fn on_publish_once(&self, held: &HeldPorts) -> PublishHook {
        let told: Mutex<HashSet<Published>> = Mutex::default();
        let sink = self.on_publish.clone();
        let held = Arc::clone(held);
        PublishHook(Arc::new(move |published: &Published| {
            held.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .retain(|(transport, port, _)| {
                    (*transport, *port) != (published.transport, published.host.port())
                });
            let first = told
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(*published);
            if first && let Some(PublishHook(sink)) = &sink {
                sink(published);
            }
        }))
    }
}

/// Picks a host port for `publish` and holds it with a bound socket of its transport
/// (`SO_REUSEPORT`, so the instances may bind it too; never listening).
fn hold_port(publish: Publish) -> std::io::Result<(u16, OwnedFd)> {
    let kind = match publish.transport {
        Transport::Tcp => SocketType::STREAM,
        Transport::Udp => SocketType::DGRAM,
    };
    let socket = rustix::net::socket_with(AddressFamily::INET, kind, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseport(&socket, true)?;
    rustix::net::bind(&socket, &SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
    let port =
        SocketAddr::try_from(rustix::net::getsockname(&socket)?).map_or(0, |addr| addr.port());
    Ok((port, socket))
}

/// The run's shared lines for a stream the host inherits; `None` for any other.
fn shared_lines(stdio: &Stdio, make: impl FnOnce() -> Lines) -> Option<Lines> {
    matches!(stdio, Stdio::Inherit).then(make)
}

/// One instance's stream: another writer of the run's lines, or the run's own
/// stream (a fresh capture for a captured one).
fn another(lines: &Option<Lines>, stdio: &Stdio) -> Stdio {
    match (lines, stdio) {
        (Some(lines), _) => Stdio::Lines(lines.another()),
        (None, Stdio::Capture(capture)) => Stdio::Capture(capture.fresh()),
        (None, other) => other.clone(),
    }
}

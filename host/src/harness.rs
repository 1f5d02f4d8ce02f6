//! Start a guest the way a person would and drive it from ordinary, blocking code.
//!
//! [`Harness::start`] runs a component in the background with a policy and captured
//! output; [`Guest::listening_addr`] waits for its `listening on ADDR` line; native
//! sockets then talk to ADDR; [`Guest::wait`] returns its exit status and output.
//! Dropping a [`Guest`] stops the instance. Every failure message carries the guest's
//! captured stdout and stderr.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use sockbox_host::{harness::Harness, Policy};
//!
//! let harness = Harness::new()?;
//! let guest = harness.builtin_guest()?;
//! let policy = Policy::deny_all().allow_listen("tcp://127.0.0.1:*")?;
//! let server = harness.start(&guest, policy, ["echo", "127.0.0.1:0", "--count", "1"])?;
//! let addr = server.listening_addr(Duration::from_secs(10))?;
//! let mut conn = std::net::TcpStream::connect(addr)?;
//! conn.write_all(b"ping")?;
//! conn.shutdown(std::net::Shutdown::Write)?;
//! let mut echoed = String::new();
//! conn.read_to_string(&mut echoed)?;
//! assert_eq!(echoed, "ping");
//! assert!(server.wait(Duration::from_secs(10))?.status.success());
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;
use wasmtime::component::Component;

use crate::enforce::DenialLog;
use crate::output::{Capture, Stdio};
use crate::policy::{Decision, Policy};
use crate::runner::{Prepared, Runner};
use crate::sandbox::{RunIo, Sandbox, SandboxBuilder, SandboxError};

pub use crate::sandbox::Output;

/// Runs guests in the background for blocking callers: tests, CI tools, `sockbox demo`.
#[derive(Debug)]
pub struct Harness {
    runner: Arc<Runner>,
    handle: Handle,
    /// The runtime the harness made for itself, if it was not given one.
    _runtime: Option<Runtime>,
}

impl Harness {
    /// Creates a harness with its own engine and its own tokio runtime.
    pub fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sockbox-guest")
            .enable_all()
            .build()
            .context("start the tokio runtime")?;
        Ok(Self {
            runner: Arc::new(Runner::new()?),
            handle: runtime.handle().clone(),
            _runtime: Some(runtime),
        })
    }

    /// Creates a harness that runs guests on an existing runtime.
    pub fn with_runtime(runner: Arc<Runner>, handle: Handle) -> Self {
        Self {
            runner,
            handle,
            _runtime: None,
        }
    }

    /// Returns the runner, to compile components with.
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// Compiles and links the built-in guest.
    pub fn builtin_guest(&self) -> Result<Prepared> {
        self.runner.prepare(&self.runner.builtin_guest()?)
    }

    /// Compiles and links the built-in guest's WASI 0.3 build.
    pub fn builtin_guest_p3(&self) -> Result<Prepared> {
        self.runner.prepare(&self.runner.builtin_guest_p3()?)
    }

    /// Compiles and links a component from its bytes.
    pub fn component(&self, bytes: &[u8]) -> Result<Prepared> {
        let component: Component = self.runner.compile(bytes)?;
        self.runner.prepare(&component)
    }

    /// Starts building a sandbox on the harness's runner, for [`Harness::spawn`]: set
    /// the policy, environment and limits there.
    pub fn sandbox(&self) -> SandboxBuilder {
        Sandbox::builder(Arc::clone(&self.runner))
    }

    /// Returns the harness's tokio runtime, to spawn plugin calls on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `future` to completion on the harness's runtime, from blocking code: for
    /// plugin calls and other async sandbox work in tests.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Starts `guest` with `args` (without `argv[0]`) under `policy`, capturing its output.
    pub fn start<I, S>(&self, guest: &Prepared, policy: Policy, args: I) -> Result<Guest>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.spawn(self.sandbox().policy(policy), guest, args)
    }

    /// Starts `guest` with `args` in the sandbox `sandbox` describes, with its stdout
    /// and stderr captured. One instance: a sandbox's
    /// [`instances`](crate::SandboxBuilder::instances) are for
    /// [`Sandbox::run_command`](crate::Sandbox::run_command).
    pub fn spawn<I, S>(&self, sandbox: SandboxBuilder, guest: &Prepared, args: I) -> Result<Guest>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.spawn_with(sandbox, guest, args, Capture::new(), Capture::new())
    }

    /// Like [`Harness::spawn`], with the captures for stdout and stderr given (a
    /// [`Capture::tee`] also prints each line as it comes).
    pub fn spawn_with<I, S>(
        &self,
        sandbox: SandboxBuilder,
        guest: &Prepared,
        args: I,
        stdout: Capture,
        stderr: Capture,
    ) -> Result<Guest>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if !guest.is_command() {
            bail!("the component exports no wasi:cli/run: the harness runs commands");
        }
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        let sandbox = sandbox.build();
        let denials = Arc::new(DenialLog::default());
        let io = RunIo {
            stdout: Stdio::Capture(stdout.clone()),
            stderr: Stdio::Capture(stderr.clone()),
            denials: Arc::clone(&denials),
            siblings: crate::wasi::Siblings::default(),
        };
        let guest = guest.clone();
        let command = args.clone();
        let task = self
            .handle
            .spawn(async move { sandbox.run_command_with(&guest, command, io).await });
        Ok(Guest {
            args,
            stdout,
            stderr,
            denials,
            task: Some(task),
            handle: self.handle.clone(),
        })
    }
}

/// What a server prints, on a line of its own, once it listens: `listening on ADDR`.
pub const LISTENING_ON: &str = "listening on ";

/// Reads one line of a server's output: `None` unless it is a `listening on ADDR`
/// line; then ADDR, or why it is not a socket address. The one parser of that line,
/// for the harness, `sockbox bench` and the tests.
pub fn parse_listening(line: &str) -> Option<Result<SocketAddr, String>> {
    let addr = line.strip_prefix(LISTENING_ON)?.trim_end();
    Some(
        addr.parse()
            .map_err(|err| format!("printed `listening on {addr}`: not a socket address: {err}")),
    )
}

/// Waits for a `listening on ADDR` line in `stdout` (a guest's, or a plugin's) and
/// returns ADDR; the error says what happened instead.
pub fn listening_addr(stdout: &Capture, timeout: Duration) -> Result<SocketAddr, String> {
    let found = stdout.wait_for(timeout, |out| {
        let text = String::from_utf8_lossy(out);
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete.lines().find_map(parse_listening)
    });
    found.unwrap_or_else(|| {
        Err(if stdout.is_closed() {
            "exited before printing a `listening on` line".to_owned()
        } else {
            format!("printed no `listening on` line within {timeout:?}")
        })
    })
}

/// A guest instance running in the background; dropping it stops the instance.
#[derive(Debug)]
pub struct Guest {
    args: Vec<String>,
    stdout: Capture,
    stderr: Capture,
    denials: Arc<DenialLog>,
    task: Option<JoinHandle<Result<Output, SandboxError>>>,
    handle: Handle,
}

impl Guest {
    /// Waits for the guest's `listening on ADDR` line and returns ADDR.
    pub fn listening_addr(&self, timeout: Duration) -> Result<SocketAddr> {
        listening_addr(&self.stdout, timeout)
            .map_err(|why| anyhow!("{} {why}\n{}", self.describe(), self.output_report()))
    }

    /// Returns the guest's stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Returns the guest's stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Returns the socket uses the policy refused so far, each distinct one once.
    pub fn denials(&self) -> Vec<Decision> {
        self.denials.denials()
    }

    /// Waits for the guest to finish, at most `timeout`, and returns how it ended.
    ///
    /// A limit that stopped it is an error whose source is the [`SandboxError`]
    /// (`err.downcast_ref::<SandboxError>()`); every error carries the guest's output.
    /// This blocks the calling thread: call it from ordinary code, not from async code.
    pub fn wait(mut self, timeout: Duration) -> Result<Output> {
        let mut task = self.task.take().context("guest already waited for")?;
        let ended = self
            .handle
            .block_on(async { tokio::time::timeout(timeout, &mut task).await });
        match ended {
            Ok(joined) => joined.context("guest task failed")?.map_err(|err| {
                let report = self.output_report();
                anyhow::Error::new(err).context(format!("{} stopped\n{report}", self.describe()))
            }),
            Err(_) => {
                task.abort();
                bail!(
                    "{} did not finish within {timeout:?}\n{}",
                    self.describe(),
                    self.output_report()
                );
            }
        }
    }

    /// Stops the instance and waits until it is gone, its sockets closed.
    ///
    /// Dropping a `Guest` stops it too, without waiting.
    pub fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // The instance's store, and with it every socket, is dropped when the
            // aborted task finishes; its result is only "cancelled".
            let _ = self.handle.block_on(task);
        }
    }

    fn describe(&self) -> String {
        format!("guest `{}`", self.args.join(" "))
    }

    /// The guest's captured output, for failure messages.
    pub fn output_report(&self) -> String {
        format!(
            "--- guest stdout ---\n{}--- guest stderr ---\n{}---",
            self.stdout.text(),
            self.stderr.text()
        )
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a `listening on` line is one; its address must be a socket address.
    #[test]
    fn listening_lines_parse_once() {
        assert_eq!(
            parse_listening("listening on [::1]:8080\r"),
            Some(Ok("[::1]:8080".parse().expect("an address")))
        );
        assert_eq!(parse_listening("Received: listening on 1.2.3.4:5"), None);
        let bad = parse_listening("listening on nowhere").expect("a listening line");
        assert!(bad.is_err_and(|why| {
            why.starts_with("printed `listening on nowhere`: not a socket address")
        }));
    }
}

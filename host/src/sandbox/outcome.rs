//! What a run returns: its [`Output`], or the [`SandboxError`] that stopped it.

use std::fmt;

use wasmtime_wasi::I32Exit;

use crate::policy::Decision;
use crate::runner::{Exit, Limit, LimitExceeded};

/// How a command ended, and what it printed to captured stdio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Its exit status.
    pub status: Exit,
    /// What it wrote to stdout, if stdout was captured.
    pub stdout: String,
    /// What it wrote to stderr, if stderr was captured.
    pub stderr: String,
    /// The socket uses and lookups the policy refused, each distinct one once (in
    /// audit mode: the ones it would have refused, marked `would_deny`).
    pub denials: Vec<Decision>,
    /// In audit mode, how many uses went ahead that enforcing would have refused:
    /// every one, not only the distinct ones.
    pub would_deny: u64,
}

impl Output {
    /// Panics, printing the guest's output, unless it exited with `code`.
    #[track_caller]
    pub fn assert_exit(&self, code: i32) -> &Self {
        assert!(
            self.status == Exit::Code(code),
            "expected the guest to exit with status {code}, it ended with {self}"
        );
        self
    }

    /// Panics, printing the guest's output, unless it exited with status 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_exit(0)
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {}\n--- guest stdout ---\n{}--- guest stderr ---\n{}---",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Why an instance did not run to an exit status or a call did not return.
#[derive(Debug)]
#[non_exhaustive]
pub enum SandboxError {
    /// A limit tripped and the instance was stopped.
    Limit(Limit),
    /// A plugin trapped; the message says why. A plugin that trapped cannot be called
    /// again. (A command that traps ends with [`Exit::Trap`].)
    Trap(String),
    /// A plugin called `exit` with this status during a call.
    Exit(i32),
    /// The component is not what the call needs, or could not be instantiated.
    Setup(anyhow::Error),
}

impl SandboxError {
    /// Classifies an error wasmtime returned from running guest code.
    pub(crate) fn from_trap(err: wasmtime::Error) -> Self {
        if let Some(LimitExceeded(limit)) = err.downcast_ref::<LimitExceeded>() {
            Self::Limit(*limit)
        } else if let Some(I32Exit(code)) = err.downcast_ref::<I32Exit>() {
            Self::Exit(*code)
        } else {
            // The root cause names the trap (`wasm trap: wasm `unreachable` instruction
            // executed`); the outer layers are only a backtrace.
            Self::Trap(err.root_cause().to_string())
        }
    }

    /// Classifies an error from instantiating: the guest's own start code trapping or
    /// tripping a limit is as [`SandboxError::from_trap`] says; anything else (a full
    /// instance pool, a failed allocation) is the host's, [`SandboxError::Setup`].
    pub(crate) fn from_instantiate(err: wasmtime::Error) -> Self {
        let guest_did_it = err.downcast_ref::<wasmtime::Trap>().is_some()
            || err.downcast_ref::<LimitExceeded>().is_some()
            || err.downcast_ref::<I32Exit>().is_some();
        if guest_did_it {
            Self::from_trap(err)
        } else {
            Self::Setup(anyhow::Error::from(err).context("instantiate the component"))
        }
    }

    /// Returns the limit that tripped, if that is what happened.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            Self::Limit(limit) => Some(*limit),
            _ => None,
        }
    }
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Limit(limit) => write!(f, "{}", LimitExceeded(*limit)),
            Self::Trap(message) => write!(f, "guest trapped: {message}"),
            Self::Exit(code) => write!(f, "guest exited with status {code}"),
            Self::Setup(err) => write!(f, "{err:#}"),
        }
    }
}

impl std::error::Error for SandboxError {}

impl From<anyhow::Error> for SandboxError {
    fn from(err: anyhow::Error) -> Self {
        Self::Setup(err)
    }
}

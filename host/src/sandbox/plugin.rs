//! A guest instantiated as a plugin: typed calls to its `sockbox:net/flows` export.

use std::time::Duration;

use wasmtime::Store;

use super::{RunIo, SandboxError, within};
use crate::output::Stdio;
use crate::policy::Decision;
use crate::runner::GuestState;
use crate::runner::bindings::{Bindings, NetError};

/// One plugin instance. Calls run one at a time (each takes `&mut self`); its sockets,
/// memory and limits are its own, and it is gone when dropped.
pub struct Plugin {
    store: Store<GuestState>,
    bindings: Bindings,
    timeout: Option<Duration>,
    /// Set once a call trapped or tripped a limit: the instance is unusable after.
    broken: Option<String>,
    /// This instance's own output and denials.
    io: RunIo,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("timeout", &self.timeout)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub(super) fn new(
        store: Store<GuestState>,
        bindings: Bindings,
        timeout: Option<Duration>,
        io: RunIo,
    ) -> Self {
        Self {
            store,
            bindings,
            timeout,
            broken: None,
            io,
        }
    }

    /// Returns where the plugin's stdout goes: its own capture, if the sandbox captures
    /// stdout ([`Stdio::text`] reads it).
    pub fn stdout(&self) -> &Stdio {
        &self.io.stdout
    }

    /// Returns where the plugin's stderr goes: its own capture, if the sandbox captures
    /// stderr.
    pub fn stderr(&self) -> &Stdio {
        &self.io.stderr
    }

    /// Returns the socket uses and lookups the policy refused this plugin so far, each
    /// distinct one once.
    pub fn denials(&self) -> Vec<Decision> {
        self.io.denials.denials()
    }

    /// Connects to `addr` (`HOST:PORT`), sends `payload`, half-closes, and returns the
    /// peer's whole reply; a network failure is the guest's [`NetError`].
    pub async fn dial(
        &mut self,
        addr: &str,
        payload: &[u8],
    ) -> Result<Result<Vec<u8>, NetError>, SandboxError> {
        self.usable()?;
        let flows = self.bindings.sockbox_net_flows();
        let cpu = self.store.data().cpu_clock();
        let call = flows.call_dial(&mut self.store, addr, payload);
        let result = within(self.timeout, cpu.as_deref(), call).await;
        self.outcome(result)
    }

    /// Listens on `addr`, prints `listening on ADDR` on the plugin's stdout, and echoes
    /// `max_conns` connections one after another; returns how many it served.
    pub async fn serve(
        &mut self,
        addr: &str,
        max_conns: u32,
    ) -> Result<Result<u32, NetError>, SandboxError> {
        self.usable()?;
        let flows = self.bindings.sockbox_net_flows();
        let cpu = self.store.data().cpu_clock();
        let call = flows.call_serve(&mut self.store, addr, max_conns);
        let result = within(self.timeout, cpu.as_deref(), call).await;
        self.outcome(result)
    }

    fn usable(&self) -> Result<(), SandboxError> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(SandboxError::Trap(format!(
                "the plugin stopped earlier and cannot be called again: {why}"
            ))),
        }
    }

    /// Turns a call's outcome into the caller's, remembering a failed instance.
    fn outcome<T>(&mut self, result: wasmtime::Result<T>) -> Result<T, SandboxError> {
        result.map_err(|err| {
            let err = SandboxError::from_trap(err);
            self.broken = Some(err.to_string());
            err
        })
    }
}

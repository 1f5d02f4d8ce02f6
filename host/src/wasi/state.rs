//! What each instance's store holds, as sockbox's WASI layer sees it: wasmtime-wasi's
//! context and resource table, the [`Enforcer`] deciding its network, its limit meter,
//! its `wasi:io/poll` readiness and its socket count. The runner makes one per store;
//! every shadow works on it.

use std::collections::HashSet;
use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::sockets::{WasiSocketsCtxView, WasiSocketsView as _};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::{nodelay, poll};
use crate::enforce::Enforcer;
use crate::runner::{CpuClock, Limits, Meter, default_max_sockets};

/// What each guest's `Store` holds.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) enforcer: Arc<Enforcer>,
    meter: Meter,
    /// What its `wasi:io/poll` knows of its pollables.
    pub(super) readiness: poll::Readiness,
    /// The sockets it holds, against its cap.
    pub(super) socket_count: SocketCount,
    /// Whether its TCP sockets get `TCP_NODELAY`.
    tcp_nodelay: bool,
}

impl GuestState {
    /// The state of an instance with WASI context `wasi`, network `enforcer` and
    /// `limits`.
    pub(crate) fn new(
        wasi: WasiCtx,
        enforcer: Arc<Enforcer>,
        limits: Limits,
        tcp_nodelay: bool,
    ) -> Self {
        Self {
            wasi,
            table: ResourceTable::new(),
            enforcer,
            meter: Meter::new(limits),
            readiness: poll::Readiness::default(),
            socket_count: SocketCount::new(limits.max_sockets),
            tcp_nodelay,
        }
    }

    /// The instance's memory and CPU meter, for the store's limiter and epoch callback.
    pub(crate) fn meter(&mut self) -> &mut Meter {
        &mut self.meter
    }

    /// Returns the instance's CPU clock, if it has a CPU-time limit: every poll of its
    /// work must be charged to it ([`Metered`](crate::runner::Metered)).
    pub(crate) fn cpu_clock(&self) -> Option<Arc<CpuClock>> {
        self.meter.cpu_clock()
    }

    /// Makes a TCP socket with `create` (wasmtime-wasi's, for either WASI version)
    /// and, when the instance wants it, sets `TCP_NODELAY` on it (`nodelay.rs`), its
    /// hop limit read with `get` and set with `set` (wasmtime-wasi's, for that version).
    pub(super) fn create_tcp<S: 'static, E, F>(
        &mut self,
        create: impl FnOnce(&mut Self) -> Result<Resource<S>, E>,
        get: impl Fn(&mut WasiSocketsCtxView<'_>, Resource<S>) -> Result<u8, F>,
        set: impl Fn(&mut WasiSocketsCtxView<'_>, Resource<S>, u8) -> Result<(), F>,
    ) -> Result<Resource<S>, E> {
        if !self.tcp_nodelay {
            return create(self);
        }
        let search = nodelay::begin();
        let created = create(self);
        if let Ok(socket) = &created {
            let handle = || Resource::new_borrow(socket.rep());
            if let Ok(original) = get(&mut self.sockets(), handle()) {
                let marker = nodelay::marker(original);
                if set(&mut self.sockets(), handle(), marker).is_ok() {
                    search.finish(marker);
                }
                let _ = set(&mut self.sockets(), handle(), original);
            }
        }
        created
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The sockets (TCP and UDP, listeners included, of either WASI version) an instance
/// holds, by their handles, kept as they come and go: a socket is counted when sockbox
/// creates or accepts it, and uncounted when the guest drops it (sockbox's resource
/// destructors) or sockbox closes it. Exact, and O(1) a change.
///
/// A WASI 0.3 connection accepted through a listener's stream that sockbox does not
/// take over (no cap set for the instance, see `p3.rs`) is not counted: under the
/// default cap, the process's descriptor limit stands behind it.
pub(crate) struct SocketCount {
    /// The handles of the sockets counted.
    held: HashSet<u32>,
    /// The cap, if any (at least 1).
    max: Option<usize>,
    /// Whether the cap was set for the instance, not the default.
    set: bool,
}

impl SocketCount {
    /// A count against the cap `max_sockets` (`Some(0)`: none; `None`: the default,
    /// [`default_max_sockets`]).
    fn new(max_sockets: Option<usize>) -> Self {
        Self {
            held: HashSet::new(),
            max: match max_sockets {
                Some(0) => None,
                Some(max) => Some(max),
                None => default_max_sockets(),
            },
            set: max_sockets.is_some_and(|max| max > 0),
        }
    }

    /// Reports whether the cap was set for the instance (`max_sockets`), not the default.
    pub(super) fn cap_is_set(&self) -> bool {
        self.set
    }

    /// Counts the socket with handle `socket`, just created or accepted.
    pub(super) fn made(&mut self, socket: u32) {
        self.held.insert(socket);
    }

    /// Uncounts the socket with handle `socket`: dropped or closed.
    pub(super) fn gone(&mut self, socket: u32) {
        self.held.remove(&socket);
    }

    /// Reports whether as many sockets are held as the cap allows, so no new one may be
    /// made.
    pub(super) fn at_cap(&self) -> bool {
        self.max.is_some_and(|max| self.held.len() >= max)
    }

    /// Returns the cap when more sockets than that are held (an accepted connection
    /// just put the instance past it).
    pub(super) fn past_cap(&self) -> Option<usize> {
        self.max.filter(|&max| self.held.len() > max)
    }
}

//! What each instance's store holds, as sockbox's WASI layer sees it: wasmtime-wasi's
//! context and resource table, the [`Enforcer`] deciding its network, its limit meter,
//! its `wasi:io/poll` readiness and its socket count. The runner makes one per store;
//! every shadow works on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Waker;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::sockets::{WasiSocketsCtxView, WasiSocketsView as _};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::{poll, sockopt};
use crate::enforce::Enforcer;
use crate::metrics::{Connections, Metrics, SocketKind};
use crate::runner::{CpuClock, Limits, Meter, default_max_sockets};

/// What each guest's `Store` holds.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    /// Its WASI 0.3 TCP connections, if the run counts bytes. Dropped before the table
    /// closes them, so that the kernel's count of each is waited for.
    pub(super) connections: Option<Connections>,
    pub(super) table: ResourceTable,
    pub(super) enforcer: Arc<Enforcer>,
    meter: Meter,
    /// What its `wasi:io/poll` knows of its pollables.
    pub(super) readiness: poll::Readiness,
    /// The sockets it holds, against its cap.
    pub(super) socket_count: SocketCount,
    /// Whether its TCP sockets get `TCP_NODELAY`.
    tcp_nodelay: bool,
    /// Whether its sockets get `SO_REUSEPORT` (a run of several instances).
    reuse_port: bool,
}

/// What the instances of one run share; one instance alone shares it with nobody.
#[derive(Debug, Clone, Default)]
pub(crate) struct Siblings {
    /// How many sockets they hold together, against the run's socket cap.
    pub sockets: Arc<AtomicUsize>,
    /// Whether there are several: their sockets get `SO_REUSEPORT`, so that their
    /// listeners on one port share it.
    pub several: bool,
}

impl GuestState {
    /// The state of an instance with WASI context `wasi`, network `enforcer` and
    /// `limits`, one of `siblings`.
    pub(crate) fn new(
        wasi: WasiCtx,
        enforcer: Arc<Enforcer>,
        limits: Limits,
        tcp_nodelay: bool,
        siblings: Siblings,
    ) -> Self {
        let metrics = enforcer.metrics().cloned();
        Self {
            wasi,
            connections: metrics
                .as_ref()
                .map(|metrics| Connections::new(metrics.bytes(false))),
            table: ResourceTable::new(),
            enforcer,
            meter: Meter::new(limits),
            readiness: poll::Readiness::default(),
            socket_count: SocketCount::new(limits.max_sockets, siblings.sockets, metrics),
            tcp_nodelay,
            reuse_port: siblings.several,
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

    /// Makes a socket with `create` (wasmtime-wasi's, for either WASI version and
    /// transport) and sets on it the options the instance wants (`sockopt.rs`):
    /// `TCP_NODELAY` on a `tcp` socket, `SO_REUSEPORT` in a run of several instances.
    /// Its hop limit, the search's marker, is read with `get` and set with `set`
    /// (wasmtime-wasi's, for that version and transport). `SO_REUSEPORT` is a
    /// condition for a sibling's bind, so a socket whose descriptor was not found (a
    /// descriptor another thread closed between the search's start and the socket's
    /// making) is closed and made again, a few times.
    pub(super) async fn create_with_options<S: 'static, E, F>(
        &mut self,
        tcp: bool,
        create: impl AsyncFn(&mut Self) -> Result<Resource<S>, E>,
        get: impl Fn(&mut WasiSocketsCtxView<'_>, Resource<S>) -> Result<u8, F>,
        set: impl Fn(&mut WasiSocketsCtxView<'_>, Resource<S>, u8) -> Result<(), F>,
    ) -> Result<Resource<S>, E> {
        /// How many sockets are made for one that must get `SO_REUSEPORT`.
        const ATTEMPTS: usize = 4;
        let options = sockopt::Options {
            tcp,
            nodelay: self.tcp_nodelay,
            reuse_port: self.reuse_port,
        };
        if !options.any() {
            return create(self).await;
        }
        let mut attempts = 1;
        loop {
            let search = sockopt::begin();
            let created = create(self).await;
            let Ok(socket) = &created else {
                return created;
            };
            let handle = || Resource::new_borrow(socket.rep());
            let mut found = false;
            if let Ok(original) = get(&mut self.sockets(), handle()) {
                let marker = sockopt::marker(original);
                if set(&mut self.sockets(), handle(), marker).is_ok() {
                    found = search.finish(marker, options, attempts == ATTEMPTS);
                }
                let _ = set(&mut self.sockets(), handle(), original);
            }
            if found || !options.reuse_port || attempts == ATTEMPTS {
                return created;
            }
            if let Ok(socket) = created {
                let _ = self.table.delete(socket);
            }
            attempts += 1;
        }
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
/// destructors) or sockbox closes it. Exact, and O(1) a change. The cap is the run's:
/// the instances of a run count into one total.
///
/// A WASI 0.3 connection accepted through a listener's stream that sockbox does not
/// take over (no cap set for the instance, see `p3.rs`) is counted from the guest's
/// first `receive` or `send` on it: under the default cap, the process's descriptor
/// limit stands behind it until then.
pub(crate) struct SocketCount {
    /// The handles of the sockets counted, with what each is.
    held: HashMap<u32, SocketKind>,
    /// Where open sockets are counted by transport, if anywhere.
    metrics: Option<Arc<Metrics>>,
    /// The sockets the run's instances hold together.
    total: Arc<AtomicUsize>,
    /// The cap, if any (at least 1).
    max: Option<usize>,
    /// Whether the cap was set for the instance, not the default.
    set: bool,
    /// Waiting for a slot to free: woken when the instance lets a socket go.
    waiting: Vec<Waker>,
}

impl SocketCount {
    /// A count into `total` against the cap `max_sockets` (`Some(0)`: none; `None`:
    /// the default, [`default_max_sockets`]).
    fn new(
        max_sockets: Option<usize>,
        total: Arc<AtomicUsize>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            held: HashMap::new(),
            metrics,
            total,
            max: match max_sockets {
                Some(0) => None,
                Some(max) => Some(max),
                None => default_max_sockets(),
            },
            set: max_sockets.is_some_and(|max| max > 0),
            waiting: Vec::new(),
        }
    }

    /// Wakes `waker` when the instance next lets a socket go.
    pub(super) fn on_slot_freed(&mut self, waker: &Waker) {
        if !self.waiting.iter().any(|known| known.will_wake(waker)) {
            self.waiting.push(waker.clone());
        }
    }

    /// Reports whether the cap was set for the instance (`max_sockets`), not the default.
    pub(super) fn cap_is_set(&self) -> bool {
        self.set
    }

    /// Counts the socket with handle `socket`, just created or accepted, as `kind`.
    pub(super) fn made(&mut self, socket: u32, kind: SocketKind) {
        if self.held.insert(socket, kind).is_none() {
            self.total.fetch_add(1, Ordering::Relaxed);
            if let Some(metrics) = &self.metrics {
                metrics.socket(kind, true);
            }
        }
    }

    /// The counted socket with handle `socket` is now `kind`: it listens, or connected.
    pub(super) fn became(&mut self, socket: u32, kind: SocketKind) {
        if let Some(was) = self.held.get_mut(&socket)
            && *was != kind
        {
            if let Some(metrics) = &self.metrics {
                metrics.socket(*was, false);
                metrics.socket(kind, true);
            }
            *was = kind;
        }
    }

    /// What the counted socket with handle `socket` is.
    pub(super) fn kind_of(&self, socket: u32) -> Option<SocketKind> {
        self.held.get(&socket).copied()
    }

    /// Uncounts the socket with handle `socket`: dropped or closed.
    pub(super) fn gone(&mut self, socket: u32) {
        if let Some(kind) = self.held.remove(&socket) {
            self.total.fetch_sub(1, Ordering::Relaxed);
            if let Some(metrics) = &self.metrics {
                metrics.socket(kind, false);
            }
            for waker in self.waiting.drain(..) {
                waker.wake();
            }
        }
    }

    /// Reports whether as many sockets are held as the cap allows, so no new one may be
    /// made.
    pub(super) fn at_cap(&self) -> bool {
        self.max
            .is_some_and(|max| self.total.load(Ordering::Relaxed) >= max)
    }

    /// Returns the cap when more sockets than that are held (an accepted connection
    /// just put the run past it).
    pub(super) fn past_cap(&self) -> Option<usize> {
        self.max
            .filter(|&max| self.total.load(Ordering::Relaxed) > max)
    }
}

impl Drop for SocketCount {
    /// The instance is gone, and its sockets with its store.
    fn drop(&mut self) {
        self.total.fetch_sub(self.held.len(), Ordering::Relaxed);
        if let Some(metrics) = &self.metrics {
            for kind in self.held.values() {
                metrics.socket(*kind, false);
            }
        }
    }
}

//! The socket operations sockbox adds to wasmtime-wasi's, each written once for WASI
//! 0.2 and 0.3: socket creation within the cap, binds judged on the address they get,
//! and local addresses as the guest sees them. The version files (`sockets.rs` for
//! 0.2, `p3.rs` for 0.3) implement [`Kind`] for their TCP and UDP sockets — each
//! method one call of wasmtime-wasi's host function for that version — and register
//! linker entries that call these.
//!
//! - **The socket cap** (`max_sockets`): creating a socket past it fails with
//!   `new-socket-limit` (WASI 0.3.0 has no such code: `other("new-socket-limit")`)
//!   and the guest goes on. wasmtime-wasi 48 reports a creation that failed with
//!   `EMFILE`/`ENFILE` as `unknown`; when the process cannot open a descriptor at
//!   that moment, sockbox reports the cap's own code (Go's `too many open files`), an
//!   error servers treat as temporary.
//! - **Binds judged on what they get**: a bind to port 0 is checked by wasmtime-wasi
//!   before the system picks the port; once bound, the real address is decided again
//!   ([`Enforcer::check_bind`](crate::enforce::Enforcer::check_bind)). A bind the
//!   policy refuses on its real address is undone — the guest's socket is replaced by
//!   a fresh, unbound one made as any other (so with `TCP_NODELAY`), and the bound
//!   descriptor is closed before it could send or receive — and the guest sees
//!   `access-denied`.
//! - **Published ports** (`--publish HOST_PORT:GUEST_PORT`): a bind to a published
//!   guest port is decided on the guest's view, then made on the host's port; the
//!   socket's local address shows the guest's port.

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::sockets::SocketAddrUse;

use super::GuestState;
use crate::policy::Transport;

/// Lists every function sockbox puts in the linker in place of wasmtime-wasi's, by
/// operation, with the end-to-end test (in `tests/`) that checks it under WASI 0.2
/// and the one that checks it under 0.3 (often one test over both builds): each row
/// is `$m!(operation, 0.2 entries, 0.3 entries, p2: test, p3: test)`. The suite
/// expands it with a macro that names each test function, so a shadow without both
/// tests fails to build (as wasmtime's `foreach_p2!(assert_test_exists)`). A shadow
/// of one version only names `none` for the other, with the reason.
#[doc(hidden)]
#[macro_export]
macro_rules! foreach_shadow {
    ($m:ident) => {
        $m!(create, "create-tcp-socket create-udp-socket", "[static]tcp-socket.create [static]udp-socket.create",
            p2: self_connections::the_socket_cap_counts_a_pair,
            p3: self_connections::the_socket_cap_counts_a_pair);
        $m!(bind, "[method]tcp-socket.start-bind [method]udp-socket.start-bind", "[method]tcp-socket.bind [method]udp-socket.bind",
            p2: hardening::bind_to_port_zero_is_judged_on_the_port_it_gets,
            p3: hardening::bind_to_port_zero_is_judged_on_the_port_it_gets);
        $m!(local_address, "[method]tcp-socket.local-address [method]udp-socket.local-address", "[method]tcp-socket.get-local-address [method]udp-socket.get-local-address",
            p2: production::published_ports_through_the_api,
            p3: production::published_ports_through_the_api);
        $m!(connect, "[method]tcp-socket.start-connect", "[method]tcp-socket.connect",
            p2: self_connections::only_the_instance_reaches_its_self_listener,
            p3: self_connections::only_the_instance_reaches_its_self_listener);
        $m!(accept, "[method]tcp-socket.accept", "[method]tcp-socket.listen",
            p2: hardening::max_sockets_is_a_cap_under_100_connections,
            p3: hardening::max_sockets_is_a_cap_under_100_connections);
        $m!(lookup, "resolve-addresses", "resolve-addresses",
            p2: lookup::unresolvable_and_refused_names,
            p3: p3::names_follow_the_policy);
        $m!(poll, "poll block ready, stream subscribe, tcp-socket.subscribe/finish-connect/shutdown", "none: 0.3 waits on futures and streams",
            p2: poll::every_edge_of_the_poll_reports_readiness,
            p3: none);
        $m!(errors, "to-debug-string network-error-code", "none: 0.3's error-code has no host text",
            p2: hardening::a_reset_is_named_without_host_internals,
            p3: none);
    };
}

/// A result for the guest (its error code) inside a result for the host (a trap).
pub(super) type GuestResult<T, C> = wasmtime::Result<Result<T, C>>;

/// One kind of socket, TCP or UDP, of one WASI version: what the operations here need
/// of it, each method one call of wasmtime-wasi's host function for that version.
pub(super) trait Kind: 'static {
    /// The socket's resource in the table.
    type Socket: Send + 'static;
    /// The version's address family.
    type Family: Send;
    /// What a bind needs besides the address (0.2: the network resource).
    type Network: Send;
    /// The version's error code.
    type Code: GuestCode;
    /// The version's socket address.
    type Addr: From<SocketAddr>;
    /// TCP or UDP.
    const TRANSPORT: Transport;
    /// The bind a policy decides for this kind.
    const BIND: SocketAddrUse;

    /// Creates a socket (a TCP one with `TCP_NODELAY` when the instance wants it).
    fn create(
        state: &mut GuestState,
        family: Self::Family,
    ) -> impl Future<Output = GuestResult<Resource<Self::Socket>, Self::Code>> + Send;
    /// The socket's address family.
    fn family(
        state: &mut GuestState,
        socket: &Resource<Self::Socket>,
    ) -> wasmtime::Result<Self::Family>;
    /// Binds the socket on `addr`.
    fn bind(
        state: &mut GuestState,
        socket: &Resource<Self::Socket>,
        network: Self::Network,
        addr: SocketAddr,
    ) -> impl Future<Output = GuestResult<(), Self::Code>> + Send;
    /// The socket's local address, as the host sees it.
    fn local_address(
        state: &mut GuestState,
        socket: &Resource<Self::Socket>,
    ) -> GuestResult<SocketAddr, Self::Code>;
}

/// A WASI version's `error-code`, as the operations here answer with it.
pub(super) trait GuestCode: Debug + Send + Sized {
    /// `access-denied`.
    fn access_denied() -> Self;
    /// The code for a socket past the cap.
    fn new_socket_limit() -> Self;
    /// Whether this is what wasmtime-wasi reports for a creation that failed for lack
    /// of descriptors (and for other reasons it has no name for).
    fn is_unnamed(&self) -> bool;
}

/// Creates a socket of `family`, within the socket cap.
pub(super) async fn create<K: Kind>(
    state: &mut GuestState,
    family: K::Family,
) -> GuestResult<Resource<K::Socket>, K::Code> {
    if state.at_socket_cap() {
        return Ok(Err(K::Code::new_socket_limit()));
    }
    Ok(match K::create(state, family).await? {
        Ok(socket) => {
            state.socket_made();
            Ok(socket)
        }
        Err(code) if code.is_unnamed() && out_of_descriptors() => Err(K::Code::new_socket_limit()),
        Err(code) => Err(code),
    })
}

/// Binds `socket` where the guest asked (`requested`), as the policy allows on the
/// address it gets; undone, `access-denied`, where it does not.
pub(super) async fn bind<K: Kind>(
    state: &mut GuestState,
    socket: &Resource<K::Socket>,
    network: K::Network,
    requested: SocketAddr,
) -> GuestResult<(), K::Code> {
    let Ok(target) = BindTarget::of(state, K::BIND, requested, socket.rep()) else {
        return Ok(Err(K::Code::access_denied()));
    };
    if let Err(code) = K::bind(state, socket, network, target.addr).await? {
        target.failed(state);
        return Ok(Err(code));
    }
    let real = K::local_address(state, socket)?.ok();
    if target.stands(state, real) {
        return Ok(Ok(()));
    }
    let family = K::family(state, socket)?;
    let fresh = K::create(state, family).await?;
    replace(&mut state.table, socket, fresh)?;
    Ok(Err(K::Code::access_denied()))
}

/// The socket's local address as the guest sees it: a published port's host port
/// shows as the guest's port.
pub(super) fn local_address<K: Kind>(
    state: &mut GuestState,
    socket: &Resource<K::Socket>,
) -> GuestResult<K::Addr, K::Code> {
    Ok(K::local_address(state, socket)?.map(|addr| guest_view(state, K::TRANSPORT, addr).into()))
}

/// A local address as the guest sees it: a published port's host port shows as the
/// guest's port.
fn guest_view(state: &GuestState, transport: Transport, addr: SocketAddr) -> SocketAddr {
    match state.enforcer.guest_port(transport, addr.port()) {
        Some(port) => SocketAddr::new(addr.ip(), port),
        None => addr,
    }
}

/// Where wasmtime-wasi is asked to bind for a guest's bind: where the guest asked, or
/// for a published port, the host's port (the guest's view decided already).
struct BindTarget {
    /// The address to bind.
    addr: SocketAddr,
    requested: SocketAddr,
    socket_use: SocketAddrUse,
    published: bool,
    /// The guest's socket's handle.
    socket: u32,
}

impl BindTarget {
    /// The target of a bind the guest asked for on `requested`, with the socket whose
    /// handle is `socket`; `Err` when the policy refuses a published port's bind.
    fn of(
        state: &GuestState,
        socket_use: SocketAddrUse,
        requested: SocketAddr,
        socket: u32,
    ) -> Result<Self, ()> {
        let host = state.enforcer.begin_bind(socket_use, requested)?;
        Ok(Self {
            addr: host.unwrap_or(requested),
            requested,
            socket_use,
            published: host.is_some(),
            socket,
        })
    }

    /// The bind failed.
    fn failed(&self, state: &GuestState) {
        if self.published {
            state
                .enforcer
                .end_bind(self.socket_use, self.requested, None);
        }
    }

    /// Reports whether the bind stands, once it got the address `bound`: a published
    /// port's is recorded with both addresses; any other is decided again on the
    /// address it got when that is not the one asked for (port 0, decided before the
    /// system picked the port). A bound socket with no local address (`None`) is
    /// refused.
    fn stands(&self, state: &GuestState, bound: Option<SocketAddr>) -> bool {
        if self.published {
            state
                .enforcer
                .end_bind(self.socket_use, self.requested, bound);
            return bound.is_some();
        }
        let Some(bound) = bound else {
            return false;
        };
        self.requested == bound
            || state
                .enforcer
                .check_bind(self.requested, bound, self.socket_use, self.socket)
    }
}

/// Reports whether this process cannot open another descriptor right now.
pub(super) fn out_of_descriptors() -> bool {
    match std::fs::File::open("/dev/null") {
        Ok(_) => false,
        Err(err) => matches!(err.raw_os_error(), Some(code) if code == EMFILE || code == ENFILE),
    }
}

/// `EMFILE` and `ENFILE` on Linux (and every other Unix sockbox builds on).
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// Puts `fresh`'s socket in `this`'s place in the table, closing the one that was there.
fn replace<T: 'static, C: Debug>(
    table: &mut ResourceTable,
    this: &Resource<T>,
    fresh: Result<Resource<T>, C>,
) -> wasmtime::Result<()> {
    match fresh {
        Ok(fresh) => {
            let fresh = table.delete(fresh)?;
            drop(std::mem::replace(table.get_mut(this)?, fresh));
            Ok(())
        }
        // No fresh socket could be made (descriptors ran out): the guest's socket
        // cannot be left bound where the policy refused it.
        Err(code) => Err(wasmtime::Error::msg(format!(
            "undo a refused bind: no socket could replace it ({code:?})"
        ))),
    }
}

/// A borrowed handle to the same resource, for calls that take theirs by value.
pub(super) fn borrow<T: 'static>(resource: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(resource.rep())
}

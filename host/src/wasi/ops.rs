//! The socket operations sockbox adds to wasmtime-wasi's, each written once for WASI
//! 0.2 and 0.3: socket creation within the cap, binds judged on the address they get,
//! and local addresses as the guest sees them. The version files (`p2.rs` and
//! `p3.rs`) implement [`Kind`] for their TCP and UDP sockets — each
//! method one call of wasmtime-wasi's host function for that version — and register
//! linker entries that call these.
//!
//! - **The socket cap** (`max_sockets`): creating a socket past it fails with
//!   `new-socket-limit` and the guest goes on; a connection accepted past it is
//!   closed by the host ([`close_over_cap`]). The sockets an instance holds are
//!   counted as they come and go (`state.rs`).
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

use wasmtime::StoreContextMut;
use wasmtime::component::{LinkerInstance, Resource, ResourceTable, ResourceType};
use wasmtime_wasi::sockets::SocketAddrUse;

use super::GuestState;
use super::errors::{GuestCode, or_socket_limit};
use crate::metrics::SocketKind;
use crate::policy::Transport;

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

    /// Creates a socket, with the options the instance wants (`TCP_NODELAY`,
    /// `SO_REUSEPORT`: `sockopt.rs`).
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

/// Declares each WASI version's TCP and UDP socket kinds and implements [`Kind`] for
/// them. The version's types are given once; each kind names its resource, transport
/// and bind use, and each method is one call of wasmtime-wasi's host function for that
/// version, an expression over the names its row binds: `sockets` (the instance's
/// sockets view) and `socket` (a borrowed handle), or for `create` the instance's
/// `state` and the `family`; `hop_limit` names the version's getter and setter, which
/// mark a new socket while its descriptor is found (`sockopt.rs`).
macro_rules! socket_kinds {
    (
        family: $family:ty, network: $network:ty, code: $code:ty, addr: $addr:ty;
        $(
            $(#[$doc:meta])*
            $kind:ident($socket:ty, $transport:ident, $bind_use:ident) {
                create: |$state:ident, $fam:ident| $create:expr,
                hop_limit: ($get_hops:path, $set_hops:path),
                family: |$fs:ident, $fsock:ident| $family_of:expr,
                bind: |$bs:ident, $bsock:ident, $bnet:pat_param, $baddr:ident| $bind:expr,
                local_address: |$ls:ident, $lsock:ident| $local:expr $(,)?
            }
        )*
    ) => {$(
        $(#[$doc])*
        enum $kind {}

        impl $crate::wasi::ops::Kind for $kind {
            type Socket = $socket;
            type Family = $family;
            type Network = $network;
            type Code = $code;
            type Addr = $addr;
            const TRANSPORT: $crate::policy::Transport = $crate::policy::Transport::$transport;
            const BIND: wasmtime_wasi::sockets::SocketAddrUse =
                wasmtime_wasi::sockets::SocketAddrUse::$bind_use;

            async fn create(
                state: &mut $crate::wasi::GuestState,
                family: $family,
            ) -> $crate::wasi::ops::GuestResult<wasmtime::component::Resource<$socket>, $code> {
                let $fam = family;
                let created = state.create_with_options(
                    matches!(Self::TRANSPORT, $crate::policy::Transport::Tcp),
                    async move |$state: &mut $crate::wasi::GuestState| $create,
                    |view, socket| $get_hops(view, socket),
                    |view, socket, value| $set_hops(view, socket, value),
                );
                $crate::wasi::errors::error_code(created.await)
            }

            fn family(
                state: &mut $crate::wasi::GuestState,
                socket: &wasmtime::component::Resource<$socket>,
            ) -> wasmtime::Result<$family> {
                let mut sockets = wasmtime_wasi::sockets::WasiSocketsView::sockets(state);
                let ($fs, $fsock) = (&mut sockets, $crate::wasi::ops::borrow(socket));
                $family_of
            }

            async fn bind(
                state: &mut $crate::wasi::GuestState,
                socket: &wasmtime::component::Resource<$socket>,
                network: $network,
                addr: std::net::SocketAddr,
            ) -> $crate::wasi::ops::GuestResult<(), $code> {
                let mut sockets = wasmtime_wasi::sockets::WasiSocketsView::sockets(state);
                let ($bs, $bsock, $bnet, $baddr) =
                    (&mut sockets, $crate::wasi::ops::borrow(socket), network, addr.into());
                $crate::wasi::errors::error_code($bind)
            }

            fn local_address(
                state: &mut $crate::wasi::GuestState,
                socket: &wasmtime::component::Resource<$socket>,
            ) -> $crate::wasi::ops::GuestResult<std::net::SocketAddr, $code> {
                let mut sockets = wasmtime_wasi::sockets::WasiSocketsView::sockets(state);
                let ($ls, $lsock) = (&mut sockets, $crate::wasi::ops::borrow(socket));
                Ok($crate::wasi::errors::error_code($local)?.map(std::net::SocketAddr::from))
            }
        }
    )*};
}

pub(super) use socket_kinds;

/// Creates a socket of `family`, within the socket cap.
pub(super) async fn create<K: Kind>(
    state: &mut GuestState,
    family: K::Family,
) -> GuestResult<Resource<K::Socket>, K::Code> {
    if state.socket_count.at_cap() {
        return Ok(Err(K::Code::new_socket_limit()));
    }
    Ok(match K::create(state, family).await? {
        Ok(socket) => {
            let kind = match K::TRANSPORT {
                Transport::Tcp => SocketKind::Unconnected,
                Transport::Udp => SocketKind::Datagram,
            };
            state.socket_count.made(socket.rep(), kind);
            Ok(socket)
        }
        Err(code) => Err(or_socket_limit(code)),
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

/// Closes a connection accepted past the socket cap `max`, before the guest could see
/// it, and records it as refused by the cap (when its `peer` is known). Its peer sees
/// the connection end, and may try again.
pub(super) fn close_over_cap<K: Kind>(
    state: &mut GuestState,
    socket: Resource<K::Socket>,
    peer: Option<SocketAddr>,
    max: usize,
) -> wasmtime::Result<()> {
    // Recorded before the peer can see the end.
    if let Some(peer) = peer {
        state.enforcer.refuse_over_cap(peer, max);
    }
    drop_socket::<K>(state, socket.rep())
}

/// Closes the socket with handle `socket` and uncounts it.
pub(super) fn drop_socket<K: Kind>(state: &mut GuestState, socket: u32) -> wasmtime::Result<()> {
    state.table.delete(Resource::<K::Socket>::new_own(socket))?;
    state.socket_count.gone(socket);
    Ok(())
}

/// Defines the resource `name` (a version's `tcp-socket` or `udp-socket`) in
/// `instance` with a destructor that drops the guest's socket as wasmtime-wasi's does
/// and uncounts it.
pub(super) fn counted_resource<K: Kind>(
    instance: &mut LinkerInstance<'_, GuestState>,
    name: &str,
) -> wasmtime::Result<()> {
    instance.resource(
        name,
        ResourceType::host::<K::Socket>(),
        |mut store: StoreContextMut<'_, GuestState>, socket| {
            drop_socket::<K>(store.data_mut(), socket)
        },
    )
}

/// A borrowed handle to the same resource, for calls that take theirs by value.
pub(super) fn borrow<T: 'static>(resource: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(resource.rep())
}

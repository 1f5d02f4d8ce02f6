//! sockbox's own versions of the `wasi:sockets` 0.2 calls that make, bind and accept
//! sockets, shadowing wasmtime-wasi's in the linker. Each delegates to wasmtime-wasi's
//! and adds what sockbox promises on top:
//!
//! - **The socket cap** (`max_sockets`): creating a socket past it fails with
//!   `new-socket-limit` and the guest goes on. A connection arriving past it is
//!   accepted by the host, closed at once (its peer sees the connection end, and may
//!   retry) and recorded as a denial by `--max-sockets`; the guest is told nothing
//!   is waiting. The cap is judged only when a connection really arrives: an accept
//!   that finds nothing pending never trips it.
//! - **Binds judged on what they get**: a bind to port 0 is checked by wasmtime-wasi
//!   before the system picks the port; once bound, the real address is decided again
//!   ([`Enforcer::check_bound`](crate::enforce::Enforcer::check_bound)). A bind the
//!   policy refuses on its real address is undone — the guest's socket is replaced by
//!   a fresh, unbound one, so the bound descriptor is closed before it could send or
//!   receive — and the guest sees `access-denied`.
//! - **Published ports** (`--publish HOST_PORT:GUEST_PORT`): a bind to a published
//!   guest port is decided on the guest's view, then made on the host's port; the
//!   socket's local address (and an accepted connection's) shows the guest's port.
//! - **Descriptor exhaustion has a name**: wasmtime-wasi 48 reports a socket creation
//!   or an `accept` that failed with `EMFILE`/`ENFILE` as `unknown`; when the process
//!   cannot open a descriptor at that moment, sockbox reports `new-socket-limit` (Go's
//!   `too many open files`), an error servers treat as temporary.

use std::net::SocketAddr;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Network,
};
use wasmtime_wasi::p2::bindings::sockets::{tcp, tcp_create_socket, udp, udp_create_socket};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, SocketError, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsView as _};

use crate::policy::Transport;

use super::own::{self, OwnTcp};
use super::{GuestState, poll};

const TCP: &str = "wasi:sockets/tcp@0.2.12";
const UDP: &str = "wasi:sockets/udp@0.2.12";

/// The result `accept` gives the guest.
type Accepted = Result<
    (
        Resource<TcpSocket>,
        Resource<DynInputStream>,
        Resource<DynOutputStream>,
    ),
    ErrorCode,
>;

/// Shadows wasmtime-wasi's socket creation, bind and accept with sockbox's.
pub(super) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    super::shadowing(linker, shadow)
}

fn shadow(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker
        .instance("wasi:sockets/tcp-create-socket@0.2.12")?
        .func_wrap(
            "create-tcp-socket",
            |mut store: StoreContextMut<'_, GuestState>, (family,): (IpAddressFamily,)| {
                let state = store.data_mut();
                if state.at_socket_cap() {
                    return Ok((Err(ErrorCode::NewSocketLimit),));
                }
                let created = state.create_tcp(
                    |state| {
                        tcp_create_socket::Host::create_tcp_socket(&mut state.sockets(), family)
                    },
                    |state, socket, set| match set {
                        None => {
                            tcp::HostTcpSocket::hop_limit(&mut state.sockets(), borrow(socket)).ok()
                        }
                        Some(value) => tcp::HostTcpSocket::set_hop_limit(
                            &mut state.sockets(),
                            borrow(socket),
                            value,
                        )
                        .ok()
                        .map(|()| value),
                    },
                );
                Ok((made(state, error_code(created)?),))
            },
        )?;
    linker
        .instance("wasi:sockets/udp-create-socket@0.2.12")?
        .func_wrap_async(
            "create-udp-socket",
            |mut store: StoreContextMut<'_, GuestState>, (family,): (IpAddressFamily,)| {
                Box::new(async move {
                    let state = store.data_mut();
                    if state.at_socket_cap() {
                        return Ok((Err(ErrorCode::NewSocketLimit),));
                    }
                    let created =
                        udp_create_socket::Host::create_udp_socket(&mut state.sockets(), family)
                            .await;
                    Ok((made(state, error_code(created)?),))
                })
            },
        )?;
    linker.instance(TCP)?.func_wrap(
        "[method]tcp-socket.accept",
        |mut store: StoreContextMut<'_, GuestState>, (listener,): (Resource<TcpSocket>,)| {
            Ok((accept(store.data_mut(), listener)?,))
        },
    )?;
    linker.instance(TCP)?.func_wrap_async(
        "[method]tcp-socket.start-bind",
        |mut store: StoreContextMut<'_, GuestState>,
         (this, network, local): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let state = store.data_mut();
                let socket = borrow(&this);
                let requested = SocketAddr::from(local);
                let Ok(target) =
                    BindTarget::of(state, SocketAddrUse::TcpBind, requested, this.rep())
                else {
                    return Ok((Err(ErrorCode::AccessDenied),));
                };
                let bound = tcp::HostTcpSocket::start_bind(
                    &mut state.sockets(),
                    socket,
                    network,
                    target.addr.into(),
                )
                .await;
                if let Err(err) = bound {
                    target.failed(state);
                    return Ok((error_code::<()>(Err(err))?,));
                }
                let real = tcp::HostTcpSocket::local_address(&mut state.sockets(), borrow(&this));
                let real = error_code(real)?.ok().map(SocketAddr::from);
                let allowed = target.stands(state, real);
                if allowed {
                    return Ok((Ok(()),));
                }
                let family = tcp::HostTcpSocket::address_family(&mut state.sockets(), borrow(&this))?;
                let fresh = tcp_create_socket::Host::create_tcp_socket(&mut state.sockets(), family);
                replace(&mut state.table, &this, error_code(fresh)?)?;
                Ok((Err(ErrorCode::AccessDenied),))
            })
        },
    )?;
    linker.instance(UDP)?.func_wrap_async(
        "[method]udp-socket.start-bind",
        |mut store: StoreContextMut<'_, GuestState>,
         (this, network, local): (Resource<UdpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let state = store.data_mut();
                let requested = SocketAddr::from(local);
                let Ok(target) =
                    BindTarget::of(state, SocketAddrUse::UdpBind, requested, this.rep())
                else {
                    return Ok((Err(ErrorCode::AccessDenied),));
                };
                let bound = udp::HostUdpSocket::start_bind(
                    &mut state.sockets(),
                    borrow(&this),
                    network,
                    target.addr.into(),
                )
                .await;
                if let Err(err) = bound {
                    target.failed(state);
                    return Ok((error_code::<()>(Err(err))?,));
                }
                let real = udp::HostUdpSocket::local_address(&mut state.sockets(), borrow(&this));
                let real = error_code(real)?.ok().map(SocketAddr::from);
                let allowed = target.stands(state, real);
                if allowed {
                    return Ok((Ok(()),));
                }
                let family = udp::HostUdpSocket::address_family(&mut state.sockets(), borrow(&this))?;
                let fresh =
                    udp_create_socket::Host::create_udp_socket(&mut state.sockets(), family).await;
                replace(&mut state.table, &this, error_code(fresh)?)?;
                Ok((Err(ErrorCode::AccessDenied),))
            })
        },
    )?;
    linker.instance(TCP)?.func_wrap(
        "[method]tcp-socket.start-connect",
        |mut store: StoreContextMut<'_, GuestState>,
         (this, network, remote): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            let state = store.data_mut();
            let tcp = Tcp {
                network: network.rep(),
            };
            if own::before_connect(&tcp, state, this.rep(), remote.into()).is_err() {
                return Ok((Err(ErrorCode::AccessDenied),));
            }
            let started =
                tcp::HostTcpSocket::start_connect(&mut state.sockets(), this, network, remote);
            Ok((error_code(started)?,))
        },
    )?;
    linker.instance(TCP)?.func_wrap(
        "[method]tcp-socket.subscribe",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<TcpSocket>,)| {
            let state = store.data_mut();
            let socket = this.rep();
            let listening = tcp::HostTcpSocket::is_listening(&mut state.sockets(), borrow(&this))?;
            let pollable = tcp::HostTcpSocket::subscribe(&mut state.sockets(), this)?;
            poll::made_socket_pollable(state, socket, listening, pollable.rep());
            Ok((pollable,))
        },
    )?;
    linker.instance(TCP)?.func_wrap(
        "[method]tcp-socket.finish-connect",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<TcpSocket>,)| {
            let state = store.data_mut();
            let connected = tcp::HostTcpSocket::finish_connect(&mut state.sockets(), borrow(&this));
            let streams = match error_code(connected)? {
                Ok((input, output)) => Ok(poll::watch_streams(state, &this, input, output)?),
                Err(code) => Err(code),
            };
            Ok((streams,))
        },
    )?;
    linker.instance(TCP)?.func_wrap(
        "[method]tcp-socket.shutdown",
        |mut store: StoreContextMut<'_, GuestState>,
         (this, how): (Resource<TcpSocket>, tcp::ShutdownType)| {
            let state = store.data_mut();
            let done = tcp::HostTcpSocket::shutdown(&mut state.sockets(), this, how);
            // A shut stream is ready at once by wasmtime-wasi's own state; on Linux the
            // shut descriptor raises an event too, but nothing promises it for a
            // write side still finishing in the background: ask every slot again.
            state.readiness.invalidate();
            Ok((error_code(done)?,))
        },
    )?;
    linker.instance(TCP)?.func_wrap(
        "[method]tcp-socket.local-address",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<TcpSocket>,)| {
            let state = store.data_mut();
            let local = tcp::HostTcpSocket::local_address(&mut state.sockets(), this);
            let local = error_code(local)?.map(|addr| guest_view(state, Transport::Tcp, addr));
            Ok((local,))
        },
    )?;
    linker.instance(UDP)?.func_wrap(
        "[method]udp-socket.local-address",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<UdpSocket>,)| {
            let state = store.data_mut();
            let local = udp::HostUdpSocket::local_address(&mut state.sockets(), this);
            let local = error_code(local)?.map(|addr| guest_view(state, Transport::Udp, addr));
            Ok((local,))
        },
    )?;
    Ok(())
}

/// A local address as the guest sees it: a published port's host port shows as the
/// guest's port. For WASI 0.2 and 0.3 addresses alike.
pub(super) fn guest_view<A: Into<SocketAddr> + From<SocketAddr>>(
    state: &GuestState,
    transport: Transport,
    addr: A,
) -> A {
    let addr: SocketAddr = addr.into();
    match state.enforcer.guest_port(transport, addr.port()) {
        Some(port) => SocketAddr::new(addr.ip(), port).into(),
        None => addr.into(),
    }
}

/// Where wasmtime-wasi is asked to bind for a guest's bind: where the guest asked, or
/// for a published port, the host's port (the guest's view decided already). For
/// WASI 0.2 and 0.3 binds alike.
pub(super) struct BindTarget {
    /// The address to bind.
    pub addr: SocketAddr,
    requested: SocketAddr,
    socket_use: SocketAddrUse,
    published: bool,
    /// The guest's socket's handle.
    socket: u32,
}

impl BindTarget {
    /// The target of a bind the guest asked for on `requested`, with the socket whose
    /// handle is `socket`; `Err` when the policy refuses a published port's bind.
    pub fn of(
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
    pub fn failed(&self, state: &GuestState) {
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
    pub fn stands(&self, state: &GuestState, bound: Option<SocketAddr>) -> bool {
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

/// A WASI 0.2 TCP socket, for a self connection: binds go through `network`.
struct Tcp {
    network: u32,
}

impl OwnTcp for Tcp {
    fn listening_on(&self, state: &mut GuestState, socket: u32) -> Option<SocketAddr> {
        let socket = Resource::<TcpSocket>::new_borrow(socket);
        if !tcp::HostTcpSocket::is_listening(&mut state.sockets(), borrow(&socket)).ok()? {
            return None;
        }
        self.local_address(state, socket.rep())
    }

    fn local_address(&self, state: &mut GuestState, socket: u32) -> Option<SocketAddr> {
        let socket = Resource::<TcpSocket>::new_borrow(socket);
        let local = tcp::HostTcpSocket::local_address(&mut state.sockets(), socket);
        local.ok().map(SocketAddr::from)
    }

    fn bind(&self, state: &mut GuestState, socket: u32, addr: SocketAddr) -> Option<()> {
        let socket = Resource::<TcpSocket>::new_borrow(socket);
        let network = Resource::<Network>::new_borrow(self.network);
        let mut sockets = state.sockets();
        own::at_once(tcp::HostTcpSocket::start_bind(
            &mut sockets,
            borrow(&socket),
            network,
            addr.into(),
        ))?
        .ok()?;
        tcp::HostTcpSocket::finish_bind(&mut sockets, socket).ok()
    }
}

/// Accepts the next pending connection, within the socket cap.
fn accept(state: &mut GuestState, listener: Resource<TcpSocket>) -> wasmtime::Result<Accepted> {
    let listener_rep = listener.rep();
    let accepted = tcp::HostTcpSocket::accept(&mut state.sockets(), listener);
    // Accepting polled the listener with a waker of its own, found something or not.
    state.readiness.accepted_on(listener_rep);
    let (socket, input, output) = match error_code(accepted)? {
        Ok(accepted) => accepted,
        Err(ErrorCode::Unknown) if out_of_descriptors() => {
            return Ok(Err(ErrorCode::NewSocketLimit));
        }
        Err(code) => return Ok(Err(code)),
    };
    state.socket_made();
    let Some(max) = state.past_socket_cap() else {
        let (input, output) = poll::watch_streams(state, &socket, input, output)?;
        return Ok(Ok((socket, input, output)));
    };
    let peer = tcp::HostTcpSocket::remote_address(&mut state.sockets(), borrow(&socket));
    state.table.delete(input)?;
    state.table.delete(output)?;
    state.table.delete(socket)?;
    if let Ok(Ok(peer)) = error_code(peer) {
        state.enforcer.refuse_over_cap(SocketAddr::from(peer), max);
    }
    Ok(Err(ErrorCode::WouldBlock))
}

/// A socket creation's result for the guest: a new socket is counted towards the cap,
/// and a creation that failed because the process is out of descriptors is
/// `new-socket-limit`, as the cap's own refusal is.
fn made<T>(state: &mut GuestState, created: Result<T, ErrorCode>) -> Result<T, ErrorCode> {
    match created {
        Ok(socket) => {
            state.socket_made();
            Ok(socket)
        }
        Err(ErrorCode::Unknown) if out_of_descriptors() => Err(ErrorCode::NewSocketLimit),
        Err(code) => Err(code),
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
pub(super) fn replace<T: 'static>(
    table: &mut ResourceTable,
    this: &Resource<T>,
    fresh: Result<Resource<T>, ErrorCode>,
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
            "undo a refused bind: no socket could replace it ({code})"
        ))),
    }
}

/// A borrowed handle to the same resource, for calls that take theirs by value.
pub(super) fn borrow<T: 'static>(resource: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(resource.rep())
}

/// Splits wasmtime-wasi's result into the guest's `error-code` and a trap.
fn error_code<T>(result: Result<T, SocketError>) -> wasmtime::Result<Result<T, ErrorCode>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(err) => Ok(Err(err.downcast()?)),
    }
}

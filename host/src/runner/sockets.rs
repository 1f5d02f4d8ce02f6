//! sockbox's own versions of the `wasi:sockets` 0.2 calls that make, bind, connect and
//! accept sockets and read their local address, shadowing wasmtime-wasi's in the
//! linker: each one a few lines calling the operation written once for 0.2 and 0.3
//! (`ops.rs`, `own.rs`) through this version's [`Kind`]s. What is 0.2's alone:
//!
//! - **Accept within the cap**: a connection arriving past `max_sockets` is accepted
//!   by the host, closed at once (its peer sees the connection end, and may retry)
//!   and recorded as a denial by `--max-sockets`; the guest is told nothing is
//!   waiting. The cap is judged only when a connection really arrives: an accept that
//!   finds nothing pending never trips it. An accept that failed with
//!   `EMFILE`/`ENFILE` (`unknown` in wasmtime-wasi 48) is `new-socket-limit`.
//! - **Readiness**: sockbox's `wasi:io/poll` (`poll.rs`) learns of each socket's
//!   pollable and streams here.

use std::future::Future;
use std::net::SocketAddr;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Network,
};
use wasmtime_wasi::p2::bindings::sockets::{tcp, tcp_create_socket, udp, udp_create_socket};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, SocketError, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsView as _};

use crate::policy::Transport;

use super::ops::{self, GuestCode, GuestResult, Kind, borrow, out_of_descriptors};
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
        .func_wrap_async(
            "create-tcp-socket",
            |mut store: StoreContextMut<'_, GuestState>, (family,): (IpAddressFamily,)| {
                Box::new(async move { Ok((ops::create::<Tcp>(store.data_mut(), family).await?,)) })
            },
        )?;
    linker
        .instance("wasi:sockets/udp-create-socket@0.2.12")?
        .func_wrap_async(
            "create-udp-socket",
            |mut store: StoreContextMut<'_, GuestState>, (family,): (IpAddressFamily,)| {
                Box::new(async move { Ok((ops::create::<Udp>(store.data_mut(), family).await?,)) })
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
                Ok((ops::bind::<Tcp>(state, &this, network, local.into()).await?,))
            })
        },
    )?;
    linker.instance(UDP)?.func_wrap_async(
        "[method]udp-socket.start-bind",
        |mut store: StoreContextMut<'_, GuestState>,
         (this, network, local): (Resource<UdpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let state = store.data_mut();
                Ok((ops::bind::<Udp>(state, &this, network, local.into()).await?,))
            })
        },
    )?;
    linker.instance(TCP)?.func_wrap(
        "[method]tcp-socket.start-connect",
        |mut store: StoreContextMut<'_, GuestState>,
         (this, network, remote): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            let state = store.data_mut();
            let tcp = SelfTcp {
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
            Ok((ops::local_address::<Tcp>(store.data_mut(), &this)?,))
        },
    )?;
    linker.instance(UDP)?.func_wrap(
        "[method]udp-socket.local-address",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<UdpSocket>,)| {
            Ok((ops::local_address::<Udp>(store.data_mut(), &this)?,))
        },
    )?;
    Ok(())
}

impl GuestCode for ErrorCode {
    fn access_denied() -> Self {
        Self::AccessDenied
    }

    fn new_socket_limit() -> Self {
        ErrorCode::NewSocketLimit
    }

    fn is_unnamed(&self) -> bool {
        *self == ErrorCode::Unknown
    }
}

/// WASI 0.2 TCP sockets, for the operations written once.
enum Tcp {}

impl Kind for Tcp {
    type Socket = TcpSocket;
    type Family = IpAddressFamily;
    type Network = Resource<Network>;
    type Code = ErrorCode;
    type Addr = IpSocketAddress;
    const TRANSPORT: Transport = Transport::Tcp;
    const BIND: SocketAddrUse = SocketAddrUse::TcpBind;

    fn create(
        state: &mut GuestState,
        family: IpAddressFamily,
    ) -> impl Future<Output = GuestResult<Resource<TcpSocket>, ErrorCode>> + Send {
        let created = state.create_tcp(
            |state| tcp_create_socket::Host::create_tcp_socket(&mut state.sockets(), family),
            |view, socket| tcp::HostTcpSocket::hop_limit(view, socket),
            |view, socket, value| tcp::HostTcpSocket::set_hop_limit(view, socket, value),
        );
        std::future::ready(error_code(created))
    }

    fn family(
        state: &mut GuestState,
        socket: &Resource<TcpSocket>,
    ) -> wasmtime::Result<IpAddressFamily> {
        tcp::HostTcpSocket::address_family(&mut state.sockets(), borrow(socket))
    }

    async fn bind(
        state: &mut GuestState,
        socket: &Resource<TcpSocket>,
        network: Resource<Network>,
        addr: SocketAddr,
    ) -> GuestResult<(), ErrorCode> {
        let mut sockets = state.sockets();
        error_code(
            tcp::HostTcpSocket::start_bind(&mut sockets, borrow(socket), network, addr.into())
                .await,
        )
    }

    fn local_address(
        state: &mut GuestState,
        socket: &Resource<TcpSocket>,
    ) -> GuestResult<SocketAddr, ErrorCode> {
        let local = tcp::HostTcpSocket::local_address(&mut state.sockets(), borrow(socket));
        Ok(error_code(local)?.map(SocketAddr::from))
    }
}

/// WASI 0.2 UDP sockets, for the operations written once.
enum Udp {}

impl Kind for Udp {
    type Socket = UdpSocket;
    type Family = IpAddressFamily;
    type Network = Resource<Network>;
    type Code = ErrorCode;
    type Addr = IpSocketAddress;
    const TRANSPORT: Transport = Transport::Udp;
    const BIND: SocketAddrUse = SocketAddrUse::UdpBind;

    async fn create(
        state: &mut GuestState,
        family: IpAddressFamily,
    ) -> GuestResult<Resource<UdpSocket>, ErrorCode> {
        error_code(udp_create_socket::Host::create_udp_socket(&mut state.sockets(), family).await)
    }

    fn family(
        state: &mut GuestState,
        socket: &Resource<UdpSocket>,
    ) -> wasmtime::Result<IpAddressFamily> {
        udp::HostUdpSocket::address_family(&mut state.sockets(), borrow(socket))
    }

    async fn bind(
        state: &mut GuestState,
        socket: &Resource<UdpSocket>,
        network: Resource<Network>,
        addr: SocketAddr,
    ) -> GuestResult<(), ErrorCode> {
        let mut sockets = state.sockets();
        error_code(
            udp::HostUdpSocket::start_bind(&mut sockets, borrow(socket), network, addr.into())
                .await,
        )
    }

    fn local_address(
        state: &mut GuestState,
        socket: &Resource<UdpSocket>,
    ) -> GuestResult<SocketAddr, ErrorCode> {
        let local = udp::HostUdpSocket::local_address(&mut state.sockets(), borrow(socket));
        Ok(error_code(local)?.map(SocketAddr::from))
    }
}

/// A WASI 0.2 TCP socket, for a self connection: binds go through `network`.
struct SelfTcp {
    network: u32,
}

impl OwnTcp for SelfTcp {
    type Kind = Tcp;

    fn is_listening(&self, state: &mut GuestState, socket: u32) -> bool {
        let socket = Resource::<TcpSocket>::new_borrow(socket);
        tcp::HostTcpSocket::is_listening(&mut state.sockets(), socket).unwrap_or(false)
    }

    fn bind(&self, state: &mut GuestState, socket: u32, addr: SocketAddr) -> Option<()> {
        let socket = Resource::<TcpSocket>::new_borrow(socket);
        let network = Resource::<Network>::new_borrow(self.network);
        own::at_once(Tcp::bind(state, &socket, network, addr))?
            .ok()?
            .ok()?;
        tcp::HostTcpSocket::finish_bind(&mut state.sockets(), socket).ok()
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

/// Splits wasmtime-wasi's result into the guest's `error-code` and a trap.
fn error_code<T>(result: Result<T, SocketError>) -> wasmtime::Result<Result<T, ErrorCode>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(err) => Ok(Err(err.downcast()?)),
    }
}

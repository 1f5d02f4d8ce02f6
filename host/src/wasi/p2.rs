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

use std::net::SocketAddr;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Network,
};
use wasmtime_wasi::p2::bindings::sockets::{tcp, tcp_create_socket, udp, udp_create_socket};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::WasiSocketsView as _;

use super::errors::{GuestCode as _, error_code, or_socket_limit};
use super::ops::{self, Kind, borrow};
use super::own::{self, OwnTcp};
use super::{GuestState, poll};
use crate::metrics::SocketKind;

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

/// Puts this file's functions in the linker.
pub(super) fn shadow(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    ops::counted_resource::<Tcp>(&mut linker.instance(TCP)?, "tcp-socket")?;
    ops::counted_resource::<Udp>(&mut linker.instance(UDP)?, "udp-socket")?;
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
                return Ok((Err(ErrorCode::access_denied()),));
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
    linker.instance(UDP)?.func_wrap(
        "[method]incoming-datagram-stream.receive",
        |mut store: StoreContextMut<'_, GuestState>,
         (this, max): (Resource<udp::IncomingDatagramStream>, u64)| {
            let state = store.data_mut();
            let received =
                udp::HostIncomingDatagramStream::receive(&mut state.sockets(), this, max);
            let received = error_code(received)?;
            if let (Ok(datagrams), Some(metrics)) = (&received, state.enforcer.metrics()) {
                let bytes: usize = datagrams.iter().map(|datagram| datagram.data.len()).sum();
                metrics.udp_bytes(bytes, false);
            }
            Ok((received,))
        },
    )?;
    linker.instance(UDP)?.func_wrap(
        "[method]outgoing-datagram-stream.send",
        |mut store: StoreContextMut<'_, GuestState>,
         (this, datagrams): (
            Resource<udp::OutgoingDatagramStream>,
            Vec<udp::OutgoingDatagram>,
        )| {
            let state = store.data_mut();
            let lengths: Option<Vec<usize>> = state.enforcer.metrics().map(|_| {
                datagrams
                    .iter()
                    .map(|datagram| datagram.data.len())
                    .collect()
            });
            let sent = udp::HostOutgoingDatagramStream::send(&mut state.sockets(), this, datagrams);
            let sent = error_code(sent)?;
            if let (Ok(count), Some(lengths), Some(metrics)) =
                (&sent, lengths, state.enforcer.metrics())
            {
                let count = usize::try_from(*count).unwrap_or(usize::MAX);
                metrics.udp_bytes(lengths.iter().take(count).sum(), true);
            }
            Ok((sent,))
        },
    )?;
    linker.instance(TCP)?.func_wrap(
        "[method]tcp-socket.finish-listen",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<TcpSocket>,)| {
            let state = store.data_mut();
            let listened = tcp::HostTcpSocket::finish_listen(&mut state.sockets(), borrow(&this));
            let listened = error_code(listened)?;
            if listened.is_ok() {
                state.socket_count.became(this.rep(), SocketKind::Listener);
            }
            Ok((listened,))
        },
    )?;
    linker.instance(TCP)?.func_wrap(
        "[method]tcp-socket.finish-connect",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<TcpSocket>,)| {
            let state = store.data_mut();
            let connected = tcp::HostTcpSocket::finish_connect(&mut state.sockets(), borrow(&this));
            let streams = match error_code(connected)? {
                Ok((input, output)) => {
                    state
                        .socket_count
                        .became(this.rep(), SocketKind::Connection);
                    Ok(poll::watch_streams(state, &this, input, output)?)
                }
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

ops::socket_kinds! {
    family: IpAddressFamily, network: Resource<Network>, code: ErrorCode, addr: IpSocketAddress;

    /// WASI 0.2 TCP sockets, for the operations written once.
    Tcp(TcpSocket, Tcp, TcpBind) {
        create: |state, family| {
            tcp_create_socket::Host::create_tcp_socket(&mut state.sockets(), family)
        },
        hop_limit: (tcp::HostTcpSocket::hop_limit, tcp::HostTcpSocket::set_hop_limit),
        family: |sockets, socket| tcp::HostTcpSocket::address_family(sockets, socket),
        bind: |sockets, socket, network, addr| {
            tcp::HostTcpSocket::start_bind(sockets, socket, network, addr).await
        },
        local_address: |sockets, socket| tcp::HostTcpSocket::local_address(sockets, socket),
    }

    /// WASI 0.2 UDP sockets, for the operations written once.
    Udp(UdpSocket, Udp, UdpBind) {
        create: |state, family| {
            udp_create_socket::Host::create_udp_socket(&mut state.sockets(), family).await
        },
        hop_limit: (
            udp::HostUdpSocket::unicast_hop_limit,
            udp::HostUdpSocket::set_unicast_hop_limit
        ),
        family: |sockets, socket| udp::HostUdpSocket::address_family(sockets, socket),
        bind: |sockets, socket, network, addr| {
            udp::HostUdpSocket::start_bind(sockets, socket, network, addr).await
        },
        local_address: |sockets, socket| udp::HostUdpSocket::local_address(sockets, socket),
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
        Err(code) => return Ok(Err(or_socket_limit(code))),
    };
    state
        .socket_count
        .made(socket.rep(), SocketKind::Connection);
    let Some(max) = state.socket_count.past_cap() else {
        let (input, output) = poll::watch_streams(state, &socket, input, output)?;
        return Ok(Ok((socket, input, output)));
    };
    let peer = tcp::HostTcpSocket::remote_address(&mut state.sockets(), borrow(&socket));
    let peer = error_code(peer)?.ok().map(SocketAddr::from);
    state.table.delete(input)?;
    state.table.delete(output)?;
    ops::close_over_cap::<Tcp>(state, socket, peer, max)?;
    Ok(Err(ErrorCode::WouldBlock))
}

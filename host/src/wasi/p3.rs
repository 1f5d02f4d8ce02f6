//! What sockbox adds to WASI 0.3 (`wasi:sockets@0.3.0`, experimental in wasmtime-wasi
//! 48; over 400 lines: the entries, and the capped listen handoff's producer and
//! consumer), shadowing wasmtime-wasi's p3 functions. wasmtime-wasi 48 runs p2 and p3
//! sockets on one state machine, so its `socket_addr_check` — sockbox's policy —
//! already sees p3's binds, connects, listens, accepts and datagrams. Creation, binds,
//! connects and local addresses are the operations written once for both versions
//! (`ops.rs`, `own.rs`), called through this version's [`Kind`]s. What is 0.3's alone:
//!
//! - **sockbox's name lookup**: `resolve-addresses` asks the policy by name and grants
//!   what it returns, exactly as the 0.2 lookup does ([`lookup::start`]).
//! - **Accept within the cap**: a connection arriving through `listen`'s stream past
//!   the cap may wait a moment for the guest to free a slot ([`SLOT_GRACE`]), then is
//!   closed by the host and audited (`"rule":"max-sockets"`), as for 0.2
//!   ([`ops::close_over_cap`]); the guest never sees it, and the stream goes on with
//!   the next one.
//!   Only with a cap set for the instance: under the default cap, wasmtime-wasi's
//!   stream is handed over as it is (the handoff would keep the listener open after
//!   the guest drops it, until the next connection arrives), and the cap holds when
//!   sockets are created. WASI 0.3.0 has no `new-socket-limit` code: the guest gets
//!   `other("new-socket-limit")`.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use wasmtime::component::{
    Access, Accessor, Destination, Linker, Resource, ResourceType, Source, StreamConsumer,
    StreamProducer, StreamReader, StreamResult,
};
use wasmtime::{AsContextMut as _, StoreContextMut};
use wasmtime_wasi::p3::bindings::sockets::ip_name_lookup::ErrorCode as LookupError;
use wasmtime_wasi::p3::bindings::sockets::types::{
    ErrorCode, HostTcpSocket, HostTcpSocketWithStore, HostUdpSocket, HostUdpSocketWithStore,
    IpAddress, IpAddressFamily, IpSocketAddress,
};
use wasmtime_wasi::sockets::{
    TcpSocket, UdpSocket, WasiSockets, WasiSocketsCtxView, WasiSocketsView as _,
};

use super::GuestState;
use super::errors::{GuestCode as _, error_code, lookup_code};
use super::lookup::{self, Started};
use super::ops::{self, Kind, borrow};
use super::own::{self, OwnTcp};
use crate::metrics::SocketKind;

const TYPES: &str = "wasi:sockets/types@0.3.0";

/// Puts this file's functions in the linker.
pub(super) fn shadow(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker
        .instance("wasi:sockets/ip-name-lookup@0.3.0")?
        .func_wrap_concurrent(
            "resolve-addresses",
            |accessor: &Accessor<GuestState>, (name,): (String,)| {
                Box::pin(async move { Ok((resolve_addresses(accessor, &name).await?,)) })
            },
        )?;
    let mut types = linker.instance(TYPES)?;
    types.resource(
        "tcp-socket",
        ResourceType::host::<TcpSocket>(),
        |mut store: StoreContextMut<'_, GuestState>, socket| {
            if let Some(connections) = &mut store.data_mut().connections {
                connections.closing(socket);
            }
            ops::drop_socket::<Tcp>(store.data_mut(), socket)
        },
    )?;
    ops::counted_resource::<Udp>(&mut types, "udp-socket")?;
    types.func_wrap_async(
        "[static]tcp-socket.create",
        |mut store: StoreContextMut<'_, GuestState>, (family,): (IpAddressFamily,)| {
            Box::new(async move { Ok((ops::create::<Tcp>(store.data_mut(), family).await?,)) })
        },
    )?;
    types.func_wrap_async(
        "[static]udp-socket.create",
        |mut store: StoreContextMut<'_, GuestState>, (family,): (IpAddressFamily,)| {
            Box::new(async move { Ok((ops::create::<Udp>(store.data_mut(), family).await?,)) })
        },
    )?;
    types.func_wrap_async(
        "[method]tcp-socket.bind",
        |mut store: StoreContextMut<'_, GuestState>,
         (this, local): (Resource<TcpSocket>, IpSocketAddress)| {
            Box::new(async move {
                let state = store.data_mut();
                Ok((ops::bind::<Tcp>(state, &this, (), local.into()).await?,))
            })
        },
    )?;
    types.func_wrap_concurrent(
        "[method]tcp-socket.connect",
        |accessor: &Accessor<GuestState>,
         (this, remote): (Resource<TcpSocket>, IpSocketAddress)| {
            Box::pin(async move {
                let prepared = accessor.with(|mut access| {
                    own::before_connect(&SelfTcp, access.data_mut(), this.rep(), remote.into())
                });
                if prepared.is_err() {
                    return Ok((Err(ErrorCode::access_denied()),));
                }
                let socket = this.rep();
                let sockets = accessor.with_getter::<WasiSockets>(sockets);
                let connected = <WasiSockets as HostTcpSocketWithStore<GuestState>>::connect(
                    &sockets, this, remote,
                )
                .await;
                let connected = error_code(connected)?;
                if connected.is_ok() {
                    accessor.with(|mut access| {
                        let count = &mut access.data_mut().socket_count;
                        count.became(socket, SocketKind::Connection);
                    });
                }
                Ok((connected,))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]tcp-socket.listen",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<TcpSocket>,)| {
            Box::new(async move {
                let access =
                    Access::<GuestState, WasiSockets>::new(store.as_context_mut(), sockets);
                let socket = this.rep();
                let listened =
                    <WasiSockets as HostTcpSocketWithStore<GuestState>>::listen(access, this).await;
                let arriving = match error_code(listened)? {
                    Ok(arriving) => arriving,
                    Err(code) => return Ok((Err(code),)),
                };
                store
                    .data_mut()
                    .socket_count
                    .became(socket, SocketKind::Listener);
                // The handoff keeps wasmtime-wasi's stream, and so the listener, open
                // until a connection arrives after the guest drops its end: only a cap
                // set for the instance takes it; the default cap holds at creation.
                if !store.data().socket_count.cap_is_set() {
                    return Ok((Ok(arriving),));
                }
                let handoff = Arc::new(Mutex::new(Handoff::default()));
                arriving.pipe(&mut store, Intake(Arc::clone(&handoff)))?;
                let capped = Capped {
                    handoff,
                    grace: None,
                    grace_spent: false,
                };
                Ok((Ok(StreamReader::new(&mut store, capped)?),))
            })
        },
    )?;
    types.func_wrap(
        "[method]tcp-socket.receive",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<TcpSocket>,)| {
            seen_connection(store.data_mut(), this.rep());
            let access = Access::<GuestState, WasiSockets>::new(store.as_context_mut(), sockets);
            Ok((<WasiSockets as HostTcpSocketWithStore<GuestState>>::receive(access, this)?,))
        },
    )?;
    types.func_wrap(
        "[method]tcp-socket.send",
        |mut store: StoreContextMut<'_, GuestState>,
         (this, data): (Resource<TcpSocket>, StreamReader<u8>)| {
            seen_connection(store.data_mut(), this.rep());
            let access = Access::<GuestState, WasiSockets>::new(store.as_context_mut(), sockets);
            Ok((<WasiSockets as HostTcpSocketWithStore<GuestState>>::send(
                access, this, data,
            )?,))
        },
    )?;
    types.func_wrap_concurrent(
        "[method]udp-socket.send",
        |accessor: &Accessor<GuestState>,
         (this, data, remote): (Resource<UdpSocket>, Vec<u8>, Option<IpSocketAddress>)| {
            Box::pin(async move {
                let bytes = data.len();
                let sockets = accessor.with_getter::<WasiSockets>(sockets);
                let sent = <WasiSockets as HostUdpSocketWithStore<GuestState>>::send(
                    &sockets, this, data, remote,
                )
                .await;
                let sent = error_code(sent)?;
                if sent.is_ok() {
                    count_udp(accessor, bytes, true);
                }
                Ok((sent,))
            })
        },
    )?;
    types.func_wrap_concurrent(
        "[method]udp-socket.receive",
        |accessor: &Accessor<GuestState>, (this,): (Resource<UdpSocket>,)| {
            Box::pin(async move {
                let sockets = accessor.with_getter::<WasiSockets>(sockets);
                let received =
                    <WasiSockets as HostUdpSocketWithStore<GuestState>>::receive(&sockets, this)
                        .await;
                let received = error_code(received)?;
                if let Ok((data, _)) = &received {
                    count_udp(accessor, data.len(), false);
                }
                Ok((received,))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]udp-socket.bind",
        |mut store: StoreContextMut<'_, GuestState>,
         (this, local): (Resource<UdpSocket>, IpSocketAddress)| {
            Box::new(async move {
                let state = store.data_mut();
                Ok((ops::bind::<Udp>(state, &this, (), local.into()).await?,))
            })
        },
    )?;
    types.func_wrap(
        "[method]tcp-socket.get-local-address",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<TcpSocket>,)| {
            Ok((ops::local_address::<Tcp>(store.data_mut(), &this)?,))
        },
    )?;
    types.func_wrap(
        "[method]udp-socket.get-local-address",
        |mut store: StoreContextMut<'_, GuestState>, (this,): (Resource<UdpSocket>,)| {
            Ok((ops::local_address::<Udp>(store.data_mut(), &this)?,))
        },
    )?;
    Ok(())
}

/// The guest reads or writes the connection with handle `socket`: counts it if it is
/// not counted yet (one wasmtime-wasi accepted through a listener's stream that
/// sockbox does not take over: no cap set for the instance), and notes its addresses if
/// the run counts bytes ([`crate::metrics::Connections`]).
fn seen_connection(state: &mut GuestState, socket: u32) {
    if state.socket_count.kind_of(socket).is_none() {
        state.socket_count.made(socket, SocketKind::Connection);
    }
    if state
        .connections
        .as_ref()
        .is_none_or(|connections| connections.knows(socket))
    {
        return;
    }
    let handle = Resource::<TcpSocket>::new_borrow(socket);
    let mut sockets = state.sockets();
    let remote = HostTcpSocket::get_remote_address(&mut sockets, borrow(&handle));
    let local = HostTcpSocket::get_local_address(&mut sockets, handle);
    if let (Ok(local), Ok(remote), Some(connections)) = (local, remote, &mut state.connections) {
        connections.seen(socket, local.into(), remote.into());
    }
}

/// Counts `bytes` of a datagram `sent` (else received), if the run counts anything.
fn count_udp(accessor: &Accessor<GuestState>, bytes: usize, sent: bool) {
    accessor.with(|mut access| {
        if let Some(metrics) = access.data_mut().enforcer.metrics() {
            metrics.udp_bytes(bytes, sent);
        }
    });
}

/// The sockets view of an instance's state, for wasmtime-wasi's p3 functions.
fn sockets(state: &mut GuestState) -> WasiSocketsCtxView<'_> {
    state.sockets()
}

ops::socket_kinds! {
    family: IpAddressFamily, network: (), code: ErrorCode, addr: IpSocketAddress;

    /// WASI 0.3 TCP sockets, for the operations written once.
    Tcp(TcpSocket, Tcp, TcpBind) {
        create: |state, family| HostTcpSocket::create(&mut state.sockets(), family),
        hop_limit: (HostTcpSocket::get_hop_limit, HostTcpSocket::set_hop_limit),
        family: |sockets, socket| HostTcpSocket::get_address_family(sockets, socket),
        bind: |sockets, socket, (), addr| HostTcpSocket::bind(sockets, socket, addr).await,
        local_address: |sockets, socket| HostTcpSocket::get_local_address(sockets, socket),
    }

    /// WASI 0.3 UDP sockets, for the operations written once.
    Udp(UdpSocket, Udp, UdpBind) {
        create: |state, family| HostUdpSocket::create(&mut state.sockets(), family).await,
        hop_limit: (
            HostUdpSocket::get_unicast_hop_limit,
            HostUdpSocket::set_unicast_hop_limit
        ),
        family: |sockets, socket| HostUdpSocket::get_address_family(sockets, socket),
        bind: |sockets, socket, (), addr| HostUdpSocket::bind(sockets, socket, addr).await,
        local_address: |sockets, socket| HostUdpSocket::get_local_address(sockets, socket),
    }
}

/// A WASI 0.3 TCP socket, for a self connection.
struct SelfTcp;

impl OwnTcp for SelfTcp {
    type Kind = Tcp;

    fn is_listening(&self, state: &mut GuestState, socket: u32) -> bool {
        let socket = Resource::<TcpSocket>::new_borrow(socket);
        HostTcpSocket::get_is_listening(&mut state.sockets(), socket).unwrap_or(false)
    }

    fn bind(&self, state: &mut GuestState, socket: u32, addr: SocketAddr) -> Option<()> {
        let socket = Resource::<TcpSocket>::new_borrow(socket);
        own::at_once(Tcp::bind(state, &socket, (), addr))?
            .ok()?
            .ok()
    }
}

/// Connections wasmtime-wasi accepted for a capped listener, on their way to the guest:
/// at most one waits here, so the host accepts only as fast as the guest takes.
#[derive(Default)]
struct Handoff {
    waiting: VecDeque<Resource<TcpSocket>>,
    /// wasmtime-wasi's stream has ended.
    ended: bool,
    /// The guest's read, waiting for a connection.
    guest: Option<Waker>,
    /// wasmtime-wasi's stream, waiting for room.
    host: Option<Waker>,
}

/// Lets wasmtime-wasi's stream hand over its next connection.
fn wake_host(handoff: &mut Handoff) {
    if let Some(host) = handoff.host.take() {
        host.wake();
    }
}

fn lock(handoff: &Mutex<Handoff>) -> MutexGuard<'_, Handoff> {
    handoff
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes the connections wasmtime-wasi's listen stream produces.
struct Intake(Arc<Mutex<Handoff>>);

impl StreamConsumer<GuestState> for Intake {
    type Item = Resource<TcpSocket>;

    fn poll_consume(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'_, GuestState>,
        mut src: Source<'_, Self::Item>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let mut handoff = lock(&self.0);
        if !handoff.waiting.is_empty() {
            if finish {
                return Poll::Ready(Ok(StreamResult::Cancelled));
            }
            handoff.host = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut arrived = None;
        src.read(&mut store, &mut arrived)?;
        if let Some(socket) = arrived {
            handoff.waiting.push_back(socket);
            if let Some(guest) = handoff.guest.take() {
                guest.wake();
            }
        }
        Poll::Ready(Ok(StreamResult::Completed))
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        let mut handoff = lock(&self.0);
        handoff.ended = true;
        if let Some(guest) = handoff.guest.take() {
            guest.wake();
        }
    }
}

/// How long a connection arriving at a full cap may wait for a slot before it is
/// closed. A 0.3 guest drops a finished connection on its own task, a moment after
/// the host has sent the last bytes and the peer's end of file: without this wait, a
/// peer that reconnects at once could find the slot it just left still taken. The
/// wait ends as soon as the guest drops a socket. Only one connection waits in vain
/// between two admitted ones: the rest of a flood past the cap is closed at once.
/// (A 0.2 guest frees nothing while it is in `accept`: there the wait is nil.)
const SLOT_GRACE: std::time::Duration = std::time::Duration::from_millis(20);

/// The guest's stream of connections: each one judged against the socket cap as it
/// is handed over.
struct Capped {
    handoff: Arc<Mutex<Handoff>>,
    /// Running while a connection waits for a slot.
    grace: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A connection waited for a slot in vain since the last one admitted.
    grace_spent: bool,
}

impl StreamProducer<GuestState> for Capped {
    type Item = Resource<TcpSocket>;
    type Buffer = Option<Resource<TcpSocket>>;

    fn poll_produce<'a>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, GuestState>,
        mut dst: Destination<'a, Self::Item, Self::Buffer>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let this = self.get_mut();
        loop {
            let mut handoff = lock(&this.handoff);
            let Some(socket) = handoff.waiting.pop_front() else {
                if handoff.ended {
                    return Poll::Ready(Ok(StreamResult::Dropped));
                }
                if finish {
                    return Poll::Ready(Ok(StreamResult::Cancelled));
                }
                handoff.guest = Some(cx.waker().clone());
                return Poll::Pending;
            };
            // A read of nothing asks only whether a connection is ready: it is.
            if dst.remaining(&mut store) == Some(0) {
                handoff.waiting.push_front(socket);
                return Poll::Ready(Ok(StreamResult::Completed));
            }
            let state = store.data_mut();
            // The connection is in the table already.
            state
                .socket_count
                .made(socket.rep(), SocketKind::Connection);
            let Some(max) = state.socket_count.past_cap() else {
                this.grace = None;
                this.grace_spent = false;
                wake_host(&mut handoff);
                dst.set_buffer(Some(socket));
                return Poll::Ready(Ok(StreamResult::Completed));
            };
            // At the cap: wait a moment for the guest to let a finished one go, unless
            // one waited in vain already.
            if !this.grace_spent && !finish {
                let grace = this
                    .grace
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(SLOT_GRACE)));
                if grace.as_mut().poll(cx).is_pending() {
                    state.socket_count.on_slot_freed(cx.waker());
                    handoff.waiting.push_front(socket);
                    return Poll::Pending;
                }
                this.grace_spent = true;
            }
            this.grace = None;
            wake_host(&mut handoff);
            drop(handoff);
            let peer = HostTcpSocket::get_remote_address(&mut state.sockets(), borrow(&socket));
            let peer = error_code(peer)?.ok().map(SocketAddr::from);
            ops::close_over_cap::<Tcp>(state, socket, peer, max)?;
        }
    }
}

/// sockbox's lookup, for a WASI 0.3 guest: the same decision as for 0.2, awaited.
async fn resolve_addresses(
    accessor: &Accessor<GuestState>,
    name: &str,
) -> wasmtime::Result<Result<Vec<IpAddress>, LookupError>> {
    let started = accessor.with(|mut access| lookup::start(&access.data_mut().enforcer, name));
    let result = match started {
        Ok(Started::Done(result)) => result,
        Ok(Started::Pending(handle)) => lookup::answer_of(handle.await),
        Err(err) => Err(err.downcast()?),
    };
    Ok(result
        .map(|ips| ips.into_iter().map(IpAddress::from).collect())
        .map_err(lookup_code))
}

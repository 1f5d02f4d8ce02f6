//! Self connections, on the connecting side, for WASI 0.2 and 0.3 alike: before a TCP
//! socket connects to one of the instance's own listeners (see
//! [`Policy::decide_own`](crate::policy::Policy::decide_own)), the listener is checked
//! to be still there, and the connecting socket's local address is recorded so that
//! the listener may accept it — the only peer a self listener accepts without a rule.
//!
//! wasmtime-wasi 48 gives a connecting socket no local address until the connection
//! is made, and the listener's accept may come first (a socket pair's accept usually
//! does): an unbound socket is therefore bound on the loopback address it connects to,
//! port 0, as the system would bind it. That bind is a self bind, decided (and
//! audited) as one.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::component::Resource;

use super::GuestState;
use super::ops::Kind;
use crate::policy::SocketAddrUse;

/// What a self connection needs of a TCP socket, by its handle, for one WASI version,
/// beyond that version's TCP [`Kind`] (which reads its local address).
pub(super) trait OwnTcp {
    /// The version's TCP sockets.
    type Kind: Kind;
    /// Whether the socket `socket` is a listening TCP socket.
    fn is_listening(&self, state: &mut GuestState, socket: u32) -> bool;
    /// Binds the socket on `addr`, whole; `None` when it could not be bound at once.
    fn bind(&self, state: &mut GuestState, socket: u32, addr: SocketAddr) -> Option<()>;

    /// The socket's local address, if it is bound.
    fn local_address(&self, state: &mut GuestState, socket: u32) -> Option<SocketAddr> {
        let socket = Resource::new_borrow(socket);
        Self::Kind::local_address(state, &socket).ok()?.ok()
    }

    /// The address the socket `socket` listens on, if it is a listening TCP socket.
    fn listening_on(&self, state: &mut GuestState, socket: u32) -> Option<SocketAddr> {
        if !self.is_listening(state, socket) {
            return None;
        }
        self.local_address(state, socket)
    }
}

/// Prepares the socket `socket`'s connect to `target`: if `target` is one of the
/// instance's own listeners, and still is, the socket is made a peer that listener may
/// accept. Anything else is left to the policy, as any connect — but where no rule
/// allows an unbound socket's implicit bind (TCP is on only for self connections, or
/// only listen rules exist), the connect is judged here first, so that a refused dial
/// is recorded as the connect it is. `Err(())`: refused.
pub(super) fn before_connect(
    tcp: &impl OwnTcp,
    state: &mut GuestState,
    socket: u32,
    target: SocketAddr,
) -> Result<(), ()> {
    let Some(listener) = state.enforcer.own_listener(target) else {
        if state.enforcer.refuses_implicit_bind(target)
            && tcp.local_address(state, socket).is_none()
        {
            return state
                .enforcer
                .check(target, SocketAddrUse::TcpConnect)
                .then_some(())
                .ok_or(());
        }
        return Ok(());
    };
    if tcp.listening_on(state, listener) != Some(target) {
        // The listener is gone (its handle may name another socket by now): whoever
        // listens on `target` now is not the instance's own.
        state.enforcer.forget_own_listener(target);
        return Ok(());
    }
    let local = match tcp.local_address(state, socket) {
        Some(local) => Some(local),
        None => tcp
            .bind(state, socket, SocketAddr::new(target.ip(), 0))
            .and_then(|()| tcp.local_address(state, socket)),
    };
    if let Some(local) = local {
        state.enforcer.expect_own_peer(local);
    }
    Ok(())
}

/// Polls `future` once: wasmtime-wasi's bind is ready at once, since sockbox's
/// socket check is.
pub(super) fn at_once<F: Future>(future: F) -> Option<F::Output> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

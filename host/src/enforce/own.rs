//! Which of an instance's sockets are its own self-connection sockets: what the
//! enforcer needs beyond the policy to decide a self connection
//! ([`Policy::decide_own`](crate::policy::Policy::decide_own)).
//!
//! A self connection is made in four steps, and each step names the socket the next
//! one may use:
//!
//! 1. The guest binds a TCP socket on a loopback address with port 0 (a self bind,
//!    decided by the policy alone). Its real address is **bound** here, with the
//!    socket's handle.
//! 2. It listens on a bound address: that address becomes a **listener** of its own.
//! 3. One of its sockets connects to a listener of its own: sockbox's connect (in the
//!    WASI layer) first checks that the handle still names a socket listening there —
//!    so an address the instance stopped listening on, and another process took, is
//!    never its own — then binds the connecting socket on loopback if it is not bound,
//!    and records its local address as an expected **peer**.
//! 4. The listener accepts an expected peer, once.
//!
//! Every map is bounded ([`MAX_OWN`]): the oldest-looking entry is forgotten for a new
//! one past it, which can only make a later self connection be judged by the rules.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::policy::SocketAddrUse;

/// How many addresses of each kind (bound, listening, expected peers) an instance
/// remembers as its own.
pub const MAX_OWN: usize = 1024;

/// An instance's own self-connection sockets.
#[derive(Debug, Default)]
pub(super) struct OwnSockets {
    /// Set once anything was recorded: until then no use takes the lock.
    used: AtomicBool,
    own: Mutex<Own>,
}

#[derive(Debug, Default)]
struct Own {
    /// Loopback addresses the guest bound on port 0, by the socket's handle.
    bound: HashMap<SocketAddr, u32>,
    /// Those it listens on, by the listener's handle.
    listeners: HashMap<SocketAddr, u32>,
    /// Local addresses of its sockets connecting to one of its listeners.
    peers: HashSet<SocketAddr>,
}

impl OwnSockets {
    fn lock(&self) -> std::sync::MutexGuard<'_, Own> {
        self.own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that the socket `socket` got `addr` from a self bind.
    pub fn bound(&self, addr: SocketAddr, socket: u32) {
        self.used.store(true, Ordering::Relaxed);
        insert_bounded(&mut self.lock().bound, addr, socket);
    }

    /// Reports whether a use of `addr` is one of the instance's own, by what was
    /// recorded so far. An accept of an expected peer uses the expectation up.
    pub fn claims(&self, addr: SocketAddr, socket_use: SocketAddrUse) -> bool {
        use SocketAddrUse as U;
        if !self.used.load(Ordering::Relaxed) {
            return false;
        }
        let mut own = self.lock();
        match socket_use {
            U::TcpListen => own.bound.contains_key(&addr),
            U::TcpConnect => own.listeners.contains_key(&addr),
            U::TcpAccept => own.peers.remove(&addr),
            _ => false,
        }
    }

    /// Records that the instance listens on `addr`, which it bound with a self bind.
    pub fn listening(&self, addr: SocketAddr) {
        let mut own = self.lock();
        if let Some(socket) = own.bound.remove(&addr) {
            insert_bounded(&mut own.listeners, addr, socket);
        }
    }

    /// The handle of the socket the instance listened with on `addr`, if it is one
    /// of its own listeners.
    pub fn listener(&self, addr: SocketAddr) -> Option<u32> {
        if !self.used.load(Ordering::Relaxed) {
            return None;
        }
        self.lock().listeners.get(&addr).copied()
    }

    /// Forgets the listener on `addr`: its handle no longer names a socket listening
    /// there.
    pub fn forget_listener(&self, addr: SocketAddr) {
        self.lock().listeners.remove(&addr);
    }

    /// Records that a socket of the instance's own, bound on `local`, is connecting to
    /// one of its listeners: the listener may accept it once.
    pub fn expect_peer(&self, local: SocketAddr) {
        let mut own = self.lock();
        if own.peers.len() >= MAX_OWN
            && let Some(&forgotten) = own.peers.iter().next()
        {
            own.peers.remove(&forgotten);
        }
        own.peers.insert(local);
    }
}

fn insert_bounded(map: &mut HashMap<SocketAddr, u32>, addr: SocketAddr, socket: u32) {
    if map.len() >= MAX_OWN
        && !map.contains_key(&addr)
        && let Some(&forgotten) = map.keys().next()
    {
        map.remove(&forgotten);
    }
    map.insert(addr, socket);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn each_step_names_what_the_next_may_use() {
        let own = OwnSockets::default();
        let listener = addr("127.0.0.1:40000");
        assert!(
            !own.claims(listener, SocketAddrUse::TcpListen),
            "not bound yet"
        );
        own.bound(listener, 7);
        assert!(own.claims(listener, SocketAddrUse::TcpListen));
        assert!(
            !own.claims(listener, SocketAddrUse::TcpConnect),
            "not listening"
        );
        own.listening(listener);
        assert!(own.claims(listener, SocketAddrUse::TcpConnect));
        assert_eq!(own.listener(listener), Some(7));
        assert!(
            !own.claims(listener, SocketAddrUse::TcpListen),
            "listening already"
        );

        let peer = addr("127.0.0.1:40001");
        assert!(!own.claims(peer, SocketAddrUse::TcpAccept), "not expected");
        own.expect_peer(peer);
        assert!(own.claims(peer, SocketAddrUse::TcpAccept));
        assert!(!own.claims(peer, SocketAddrUse::TcpAccept), "accepted once");

        own.forget_listener(listener);
        assert!(!own.claims(listener, SocketAddrUse::TcpConnect));
        assert!(!own.claims(listener, SocketAddrUse::UdpSend));
    }

    #[test]
    fn what_is_remembered_is_bounded() {
        let own = OwnSockets::default();
        for port in 1..=(MAX_OWN as u16 + 10) {
            own.bound(SocketAddr::from(([127, 0, 0, 1], port)), u32::from(port));
            own.expect_peer(SocketAddr::from(([127, 0, 0, 2], port)));
        }
        let own = own.lock();
        assert_eq!(own.bound.len(), MAX_OWN);
        assert_eq!(own.peers.len(), MAX_OWN);
    }
}

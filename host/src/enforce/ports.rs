//! Published ports (`--publish HOST_PORT:GUEST_PORT`) at work for one instance: which
//! host port stands for which guest port, and the one published bind under way.
//!
//! A guest's bind to a published port is decided on the guest's view first
//! ([`Enforcer::begin_bind`](super::Enforcer::begin_bind)), then made on the host's
//! port; wasmtime-wasi checks that bind on the host's address, and the bind under way
//! ([`Ports::begin`]) answers that check as already decided. Once bound, the host port
//! it got is recorded ([`Ports::end`]) and the decision audited with both addresses.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use crate::policy::{SocketAddrUse, Transport, UseKind};

/// A guest port published on the host: the guest bound `guest`, the host `host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Published {
    /// TCP or UDP.
    pub transport: Transport,
    /// The address the guest bound, and sees as its local address.
    pub guest: SocketAddr,
    /// The address the host bound instead: where peers reach the guest.
    pub host: SocketAddr,
}

impl fmt::Display for Published {
    /// `published tcp 127.0.0.1:80 on 127.0.0.1:41234`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "published {} {} on {}",
            self.transport, self.guest, self.host
        )
    }
}

/// Where an embedder wants each port published as the guest binds it (the `sockbox`
/// CLI prints it as one `sockbox: published …` line).
pub type PublishSink = Arc<dyn Fn(&Published) + Send + Sync>;

/// A published bind under way: the host address wasmtime-wasi will check, already
/// decided on the guest's view.
#[derive(Debug, Clone, Copy)]
struct Pending {
    socket_use: SocketAddrUse,
    host: SocketAddr,
}

/// One instance's published ports.
#[derive(Debug, Default)]
pub(super) struct Ports {
    /// The ports published so far: transport, host port, the guest's port.
    published: RwLock<Vec<(Transport, u16, u16)>>,
    /// A published bind being made (its check is already decided).
    pending: Mutex<Option<Pending>>,
}

impl Ports {
    /// The guest's port for the host's `host_port`, if the guest's bind published it.
    pub(super) fn guest_port(&self, transport: Transport, host_port: u16) -> Option<u16> {
        self.published
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .find(|&&(t, host, _)| t == transport && host == host_port)
            .map(|&(_, _, guest)| guest)
    }

    /// Notes a published bind, decided already, about to be made on `host`.
    pub(super) fn begin(&self, socket_use: SocketAddrUse, host: SocketAddr) {
        *self.pending() = Some(Pending { socket_use, host });
    }

    /// Reports whether wasmtime-wasi's check of `socket_use` on `addr` is the published
    /// bind under way's, which it answers (once).
    pub(super) fn take_pending(&self, socket_use: SocketAddrUse, addr: SocketAddr) -> bool {
        let mut pending = self.pending();
        match *pending {
            Some(bind)
                if UseKind::from(bind.socket_use) == UseKind::from(socket_use)
                    && bind.host == addr =>
            {
                *pending = None;
                true
            }
            _ => false,
        }
    }

    /// Ends the published bind under way; when it got the host port `host_port`,
    /// records that port as the guest's `guest_port` (replacing an older one's).
    pub(super) fn end(&self, transport: Transport, guest_port: u16, host_port: Option<u16>) {
        self.pending().take();
        let Some(host_port) = host_port else {
            return;
        };
        let mut published = self
            .published
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        published.retain(|&(t, _, port)| !(t == transport && port == guest_port));
        published.push((transport, host_port, guest_port));
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Option<Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

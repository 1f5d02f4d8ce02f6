//! The bytes of WASI 0.3 TCP connections, as the kernel counted them when it let each
//! connection go. wasmtime-wasi 48 moves a 0.3 connection's bytes inside its own stream
//! tasks and keeps the descriptor to itself, so sockbox cannot count them as they move
//! (it does for 0.2). Instead:
//!
//! - each instance notes the addresses of its 0.3 connections as the guest first reads
//!   or writes them ([`Connections::seen`]);
//! - as the guest drops one (or the instance ends), its addresses go to a process-wide
//!   watch ([`Connections::closing`]);
//! - the watch listens to the kernel's messages on TCP sockets it destroys (`sock_diag`'s
//!   destroy groups, the netlink interface `ss` uses; no privilege needed), and counts
//!   the bytes of those it waits for. The kernel destroys a socket once every
//!   descriptor of it is closed and its close handshake is over.
//!
//! Each connection costs two address look-ups and one map entry; the watch reads every
//! TCP socket's end in the network namespace, a few hundred bytes each. A message the
//! kernel drops (its buffer full) leaves its connection uncounted; such an entry is let
//! go after [`STALE`] once many wait.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::inet::nlas::{Nla, TcpInfo};
use netlink_packet_sock_diag::inet::{InetResponse, InetResponseHeader};
use netlink_sys::{Socket, protocols::NETLINK_SOCK_DIAG};

use super::ByteCounters;

/// `SKNLGRP_INET_TCP_DESTROY` and `SKNLGRP_INET6_TCP_DESTROY` (Linux's `sock_diag.h`).
const TCP_DESTROY_GROUPS: [u32; 2] = [1, 3];

/// A connection, by its local and remote addresses.
type Ends = (SocketAddr, SocketAddr);

/// A connection's addresses as the kernel and wasmtime-wasi may both spell them: an
/// IPv4-mapped IPv6 address as IPv4.
fn ends_of(local: SocketAddr, remote: SocketAddr) -> Ends {
    let canonical = |addr: SocketAddr| SocketAddr::new(addr.ip().to_canonical(), addr.port());
    (canonical(local), canonical(remote))
}

/// How many connections may wait before those waiting longer than [`STALE`] are let
/// go: the kernel's message of a connection can be lost (a full buffer), and its
/// entry would wait for ever.
const PRUNE_AT: usize = 1 << 16;

/// How long a connection waits for its message before it may be let go uncounted: a
/// guest that closed first waits for its peer to close too, or for the kernel's
/// `tcp_fin_timeout` (60 s by default).
const STALE: Duration = Duration::from_secs(600);

/// One instance's WASI 0.3 TCP connections, while the guest holds them.
#[derive(Debug)]
pub(crate) struct Connections {
    held: HashMap<u32, Ends>,
    counters: ByteCounters,
}

impl Connections {
    pub(crate) fn new(counters: ByteCounters) -> Self {
        Self {
            held: HashMap::new(),
            counters,
        }
    }

    /// Whether the connection with handle `socket` is known.
    pub(crate) fn knows(&self, socket: u32) -> bool {
        self.held.contains_key(&socket)
    }

    /// The guest reads or writes the connection with handle `socket`, `local` to
    /// `remote`.
    pub(crate) fn seen(&mut self, socket: u32, local: SocketAddr, remote: SocketAddr) {
        self.held.insert(socket, ends_of(local, remote));
    }

    /// The guest drops the socket with handle `socket`: if a connection, its bytes are
    /// counted once the kernel lets it go.
    pub(crate) fn closing(&mut self, socket: u32) {
        if let Some(ends) = self.held.remove(&socket) {
            watch_for(ends, &self.counters);
        }
    }
}

impl Drop for Connections {
    /// The instance is gone, and its sockets with its store.
    fn drop(&mut self) {
        for ends in self.held.values() {
            watch_for(*ends, &self.counters);
        }
    }
}

/// The process's watch, made at the first connection to wait for; `None` if the
/// kernel's messages cannot be read.
static WATCH: OnceLock<Option<Watch>> = OnceLock::new();

/// Connections waiting for the kernel to let them go, each with the counters its bytes
/// go to and when it began to wait.
struct Watch {
    waiting: Mutex<HashMap<Ends, (ByteCounters, Instant)>>,
    /// The reading thread runs (it stops at an error other than lost messages).
    reading: AtomicBool,
}

/// Counts the bytes of the connection `ends` into `counters` once the kernel lets it go.
fn watch_for(ends: Ends, counters: &ByteCounters) {
    let watch = WATCH.get_or_init(|| match listen() {
        Ok(socket) => std::thread::Builder::new()
            .name("sockbox-tcp-ends".to_owned())
            .spawn(move || read_ends(&socket))
            .map_err(|err| tracing::warn!("cannot watch TCP connections end: {err}"))
            .ok()
            .map(|_| Watch {
                waiting: Mutex::new(HashMap::new()),
                reading: AtomicBool::new(true),
            }),
        Err(err) => {
            tracing::warn!(
                "cannot read the kernel's byte counts of TCP connections (sock_diag: {err}): \
                 WASI 0.3 guests' TCP bytes are not counted"
            );
            None
        }
    });
    let Some(watch) = watch else {
        return;
    };
    if !watch.reading.load(Ordering::Relaxed) {
        return;
    }
    let mut waiting = lock(&watch.waiting);
    if waiting.len() >= PRUNE_AT {
        waiting.retain(|_, (_, since)| since.elapsed() < STALE);
    }
    waiting.insert(ends, (counters.clone(), Instant::now()));
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A netlink socket in the kernel's groups of TCP sockets destroyed.
fn listen() -> std::io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    for group in TCP_DESTROY_GROUPS {
        socket.add_membership(group)?;
    }
    // Room for bursts: a message the socket has no room for is lost.
    socket.set_rx_buf_sz(4 << 20)?;
    Ok(socket)
}

/// Reads the kernel's messages, counting those of connections waited for, until an
/// error other than lost messages.
fn read_ends(socket: &Socket) {
    let mut buffer = vec![0; 64 << 10];
    loop {
        let size = match socket.recv(&mut &mut buffer[..], 0) {
            Ok(size) => size,
            // Messages were lost: the connections waited for among them are not
            // counted.
            Err(err) if err.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error()) => {
                tracing::debug!("TCP ends: {err}");
                continue;
            }
            Err(err) => {
                tracing::warn!("stopped reading TCP connections' ends: {err}");
                if let Some(Some(watch)) = WATCH.get() {
                    watch.reading.store(false, Ordering::Relaxed);
                    lock(&watch.waiting).clear();
                }
                return;
            }
        };
        let mut rest = buffer.get(..size).unwrap_or_default();
        while let Ok(message) = NetlinkMessage::<SockDiagMessage>::deserialize(rest) {
            if let NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(ended)) =
                &message.payload
            {
                count(ended);
            }
            let length = usize::try_from(message.header.length).unwrap_or(0);
            match rest.get(length.next_multiple_of(4)..) {
                Some(next) if length > 0 && !next.is_empty() => rest = next,
                _ => break,
            }
        }
    }
}

/// Counts the bytes of a connection that ended, if it was waited for.
fn count(ended: &InetResponse) {
    let id = &ended.header.socket_id;
    let ends = ends_of(
        SocketAddr::new(id.source_address, id.source_port),
        SocketAddr::new(id.destination_address, id.destination_port),
    );
    let Some(Some(watch)) = WATCH.get() else {
        return;
    };
    let Some((counters, _)) = lock(&watch.waiting).remove(&ends) else {
        return;
    };
    let info = ended.nlas.iter().find_map(|nla| match nla {
        Nla::TcpInfo(info) => Some(info),
        _ => None,
    });
    if let Some(info) = info {
        let (received, sent) = moved(info, &ended.header);
        tracing::trace!(local = %ends.0, remote = %ends.1, received, sent, "a connection's bytes");
        counters.received.inc_by(received);
        counters.sent.inc_by(sent);
    }
}

/// What a connection moved, read and written by the process, from the kernel's counts
/// at its end:
///
/// - Sent: data bytes sent once (`bytes_sent` less `bytes_retrans`), and those written
///   but never sent (`notsent_bytes`).
/// - Received: bytes received (`bytes_received`), less those never read (the receive
///   queue). The peer's FIN takes a place in both as a byte would; a queue that is
///   empty had it read. So a connection the peer reset, or never closed, with all read,
///   counts one byte too few.
fn moved(info: &TcpInfo, header: &InetResponseHeader) -> (u64, u64) {
    let unread = u64::from(header.recv_queue);
    let fin_read = u64::from(unread == 0 && info.bytes_received > 0);
    let received = info
        .bytes_received
        .saturating_sub(unread)
        .saturating_sub(fin_read);
    let sent = info
        .bytes_sent
        .saturating_sub(info.bytes_retrans)
        .saturating_add(u64::from(info.notsent_bytes));
    (received, sent)
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    use prometheus_client::metrics::counter::Counter;

    use super::*;

    /// Real connections on loopback, closed both ways: the bytes each server end read
    /// and wrote, as the kernel says when it lets them go.
    #[test]
    fn counts_a_connection_once_it_ends() {
        for ip in ["127.0.0.1", "::1"] {
            let Ok(listener) = TcpListener::bind((ip, 0)) else {
                continue; // no IPv6 here
            };
            let counters = ByteCounters {
                received: Counter::default(),
                sent: Counter::default(),
            };
            let mut connections = Connections::new(counters.clone());
            // One closed by the client first, one by the server first.
            for (handle, client_first) in [(1, true), (2, false)] {
                let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (mut server, _) = listener.accept().unwrap();
                connections.seen(
                    handle,
                    server.local_addr().unwrap(),
                    server.peer_addr().unwrap(),
                );
                client.write_all(&[7; 1000]).unwrap();
                let mut read = [0; 1000];
                server.read_exact(&mut read).unwrap();
                server.write_all(&[9; 300]).unwrap();
                client.read_exact(&mut [0; 300]).unwrap();
                if client_first {
                    client.shutdown(Shutdown::Write).unwrap();
                    server.read_to_end(&mut Vec::new()).unwrap();
                    connections.closing(handle);
                    drop(server);
                    client.read_to_end(&mut Vec::new()).unwrap();
                } else {
                    connections.closing(handle);
                    drop(server);
                    client.read_to_end(&mut Vec::new()).unwrap();
                }
                drop(client);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while counters.sent.get() < 600 && Instant::now() < deadline {
                std::thread::yield_now();
            }
            assert_eq!(counters.sent.get(), 600, "{ip}");
            assert_eq!(counters.received.get(), 2000, "{ip}");
        }
    }
}

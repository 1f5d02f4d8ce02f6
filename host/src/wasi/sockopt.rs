//! Socket options wasi:sockets has no word for, set on the sockets an instance makes:
//!
//! - `TCP_NODELAY` on TCP sockets, as Go's `net` sets it: a small write goes out at
//!   once instead of waiting for the peer's acknowledgement of the last one (Nagle's
//!   algorithm).
//! - `SO_REUSEPORT` on TCP and UDP sockets, when a run has several instances
//!   (`--instances`): their listeners on one port form one group, and the kernel
//!   spreads connections and datagrams over them.
//!
//! wasmtime-wasi 48 keeps each socket's descriptor to itself, so sockbox finds the
//! descriptor of a socket just made:
//!
//! - **Where to look**: the lowest descriptor free just before the socket was made
//!   (the one the kernel gives a new socket), or one of the next [`NEIGHBOURS`] if
//!   another thread took it meanwhile. No other descriptor is looked at, and no lock
//!   is held.
//! - **Which one it is**: the socket is marked through wasmtime-wasi with a hop limit
//!   drawn at random for this one search, then given its own back. A descriptor is
//!   taken only if it is a stream socket, unbound, unconnected and carries that hop
//!   limit: a guest, which can set any hop limit on its own sockets, cannot know the
//!   one drawn, and its sockets already made sit below the descriptor looked at.
//! - **How**: the descriptor is duplicated (`F_DUPFD_CLOEXEC`) and the option set on
//!   the duplicate, which names the same socket. Unlike `pidfd_getfd`, this needs no
//!   privilege a container's seccomp profile may withhold.
//!
//! A listener's `TCP_NODELAY` is inherited by the connections it accepts (Linux), so
//! one setting at `create` covers clients, listeners and accepted connections alike.
//! `TCP_NODELAY` is a speed-up, never a condition: a search that finds nothing leaves
//! the socket as the system made it (a warning the first time, if none ever
//! succeeded). Without `SO_REUSEPORT`, a second instance's bind to the port its
//! sibling holds fails with `address-in-use` (a warning too).

use std::hash::{BuildHasher as _, RandomState};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd as _, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::net::sockopt;

/// How many descriptors past the likely one a search looks at.
pub(super) const NEIGHBOURS: RawFd = 4;

/// What to set on a new socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Options {
    /// A TCP socket (else UDP).
    pub tcp: bool,
    /// Set `TCP_NODELAY` (TCP only).
    pub nodelay: bool,
    /// Set `SO_REUSEPORT`.
    pub reuse_port: bool,
}

impl Options {
    /// Whether there is anything to set.
    pub(super) fn any(self) -> bool {
        (self.tcp && self.nodelay) || self.reuse_port
    }
}

/// A search for the descriptor of a socket about to be made: begun before it is made,
/// finished once it is marked.
pub(super) struct Search {
    /// The lowest descriptor free just before the socket was made.
    likely: Option<RawFd>,
}

/// Begins a search, before the socket is made.
pub(super) fn begin() -> Search {
    let likely = std::fs::File::open("/dev/null")
        .ok()
        .map(|probe| probe.as_raw_fd());
    Search { likely }
}

/// A hop limit to mark a socket whose own is `original` with: drawn at random for each
/// search, never `original` or 0.
pub(super) fn marker(original: u8) -> u8 {
    static KEYS: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let draw = KEYS
        .get_or_init(RandomState::new)
        .hash_one(COUNT.fetch_add(1, Ordering::Relaxed));
    let mut marker = u8::try_from(draw % 255).unwrap_or(0) + 1;
    if marker == original {
        marker = marker % 255 + 1;
    }
    marker
}

/// Whether any search in this process has found its socket.
static FOUND_ANY: AtomicBool = AtomicBool::new(false);
/// Whether the warning that none has was given.
static WARNED: AtomicBool = AtomicBool::new(false);

impl Search {
    /// With the new socket's hop limit at `marker`, finds its descriptor and sets
    /// `options` on it; reports whether it did. A `last` search that fails warns.
    pub(super) fn finish(self, marker: u8, options: Options, last: bool) -> bool {
        let set = self.likely.is_some_and(|likely| {
            (likely..=likely.saturating_add(NEIGHBOURS))
                .any(|fd| set_if_marked(fd, marker, options))
        });
        tracing::trace!(likely = ?self.likely, set, ?options, "options on a new socket");
        if set {
            FOUND_ANY.store(true, Ordering::Relaxed);
        } else if options.reuse_port && last {
            tracing::warn!(
                "could not set SO_REUSEPORT on a new socket: another instance's bind to the \
                 port it binds will fail with address-in-use"
            );
        } else if !options.reuse_port
            && !FOUND_ANY.load(Ordering::Relaxed)
            && !WARNED.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "could not set TCP_NODELAY on a new TCP socket: small writes may wait for \
                 the peer (Nagle's algorithm); --no-tcp-nodelay stops trying"
            );
        }
        set
    }
}

/// Sets `options` on descriptor `fd` if it is a fresh socket of their kind (unbound,
/// unconnected) carrying `marker` as its hop limit; reports whether it did.
fn set_if_marked(fd: RawFd, marker: u8, options: Options) -> bool {
    let Some(socket) = duplicate(fd) else {
        return false;
    };
    let kind = if options.tcp {
        rustix::net::SocketType::STREAM
    } else {
        rustix::net::SocketType::DGRAM
    };
    if !sockopt::socket_type(&socket).is_ok_and(|found| found == kind) {
        return false;
    }
    let local = rustix::net::getsockname(&socket)
        .ok()
        .and_then(|addr| SocketAddr::try_from(addr).ok());
    let marked = match local {
        Some(SocketAddr::V4(addr)) if addr.port() == 0 => {
            sockopt::ip_ttl(&socket).is_ok_and(|ttl| ttl == u32::from(marker))
        }
        Some(SocketAddr::V6(addr)) if addr.port() == 0 => {
            sockopt::ipv6_unicast_hops(&socket).is_ok_and(|hops| hops == marker)
        }
        _ => false,
    };
    marked
        && rustix::net::getpeername(&socket).is_err()
        && (!(options.tcp && options.nodelay) || sockopt::set_tcp_nodelay(&socket, true).is_ok())
        && (!options.reuse_port || sockopt::set_socket_reuseport(&socket, true).is_ok())
}

/// A descriptor of this process's own, duplicated: what `fd` names now, if anything.
#[expect(
    unsafe_code,
    reason = "borrowing a descriptor number this code does not own, for one dup"
)]
fn duplicate(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: the borrow lives only for the `F_DUPFD_CLOEXEC` call, which reads no
    // memory through it: if `fd` is not open the call fails with `EBADF`; if it names
    // another file than expected, the duplicate is checked above before anything is
    // set on it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_dupfd_cloexec(borrowed, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(domain: socket2::Domain) -> socket2::Socket {
        socket2::Socket::new(domain, socket2::Type::STREAM, None).expect("socket")
    }

    const NODELAY: Options = Options {
        tcp: true,
        nodelay: true,
        reuse_port: false,
    };

    /// A new TCP socket carrying the marker gets the option; one without it, a bound
    /// socket and a file do not.
    #[test]
    fn sets_it_on_the_marked_new_socket_only() {
        let other = fresh(socket2::Domain::IPV4);
        let search = begin();
        let socket = fresh(socket2::Domain::IPV6);
        let mark = marker(64);
        socket.set_unicast_hops_v6(u32::from(mark)).expect("mark");
        assert!(search.finish(mark, NODELAY, true));
        assert!(socket.tcp_nodelay().expect("read the option"));
        assert!(!other.tcp_nodelay().expect("read the option"));

        let bound = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        socket2::SockRef::from(&bound)
            .set_ttl_v4(u32::from(mark))
            .expect("mark");
        assert!(!set_if_marked(bound.as_raw_fd(), mark, NODELAY));
        let file = std::fs::File::open("/dev/null").expect("open");
        assert!(!set_if_marked(file.as_raw_fd(), mark, NODELAY));
    }

    /// A guest cannot steer the search: its sockets carrying every possible hop limit
    /// are not looked at, nor is a marked socket past the few descriptors searched.
    #[test]
    fn a_guest_chosen_hop_limit_never_steers_it() {
        let decoys: Vec<_> = (1..=255u8)
            .map(|hops| {
                let decoy = fresh(socket2::Domain::IPV4);
                decoy.set_ttl_v4(u32::from(hops)).expect("set a hop limit");
                decoy
            })
            .collect();
        let search = begin();
        let socket = fresh(socket2::Domain::IPV4);
        let mark = marker(64);
        socket.set_ttl_v4(u32::from(mark)).expect("mark");
        assert!(search.finish(mark, NODELAY, true));
        assert!(socket.tcp_nodelay().expect("read the option"));
        assert!(
            decoys
                .iter()
                .all(|decoy| !decoy.tcp_nodelay().expect("read the option"))
        );

        let search = begin();
        let spacers: Vec<_> = (0..=NEIGHBOURS)
            .map(|_| std::fs::File::open("/dev/null").expect("open"))
            .collect();
        let far = fresh(socket2::Domain::IPV4);
        far.set_ttl_v4(u32::from(mark)).expect("mark");
        assert!(
            !search.finish(mark, NODELAY, true),
            "past the descriptors searched"
        );
        assert!(!far.tcp_nodelay().expect("read the option"));
        drop(spacers);
    }

    /// A run of several instances gets `SO_REUSEPORT` on its UDP and TCP sockets; a
    /// socket of the other kind carrying the marker is not touched.
    #[test]
    fn reuse_port_on_the_marked_socket_of_its_kind() {
        let search = begin();
        let udp = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .expect("socket");
        let mark = marker(64);
        udp.set_ttl_v4(u32::from(mark)).expect("mark");
        let options = Options {
            tcp: false,
            nodelay: true,
            reuse_port: true,
        };
        assert!(search.finish(mark, options, true));
        assert!(udp.reuse_port().expect("read the option"));

        let tcp = fresh(socket2::Domain::IPV4);
        tcp.set_ttl_v4(u32::from(mark)).expect("mark");
        assert!(!set_if_marked(tcp.as_raw_fd(), mark, options));
        assert!(!tcp.reuse_port().expect("read the option"));
    }

    #[test]
    fn markers_vary_and_are_never_the_original() {
        let drawn: std::collections::HashSet<u8> = (0..64).map(|_| marker(64)).collect();
        assert!(drawn.len() > 16, "{drawn:?}");
        assert!(!drawn.contains(&64) && !drawn.contains(&0));
    }
}

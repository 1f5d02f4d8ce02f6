//! `TCP_NODELAY` on the TCP sockets an instance makes, as Go's `net` sets it: a small
//! write goes out at once instead of waiting for the peer's acknowledgement of the
//! last one (Nagle's algorithm).
//!
//! wasi:sockets has no option for it, and wasmtime-wasi 48 keeps each socket's
//! descriptor to itself, so sockbox finds the descriptor of a socket just made: it
//! marks the socket through wasmtime-wasi (its hop limit set to [`MARKER`] for a
//! moment, one socket at a time in the process), takes a second handle to the
//! descriptor from the kernel (`pidfd_getfd` on its own process) — the one the socket
//! most likely got, the lowest that was free, else each of the process's until the
//! marked one — sets the option on it and puts the hop limit back. A listener's option
//! is inherited by the connections it accepts (Linux), so one setting at `create`
//! covers clients, listeners and accepted connections alike. Where the kernel has no
//! pidfds, sockets keep the system's default: the option is a speed-up, never a
//! condition.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd as _, RawFd};
use std::sync::{Mutex, MutexGuard, OnceLock};

use rustix::fd::OwnedFd;
use rustix::net::sockopt;
use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

/// The hop limit a socket carries while sockbox looks for its descriptor.
pub(super) const MARKER: u8 = 7;

/// One socket is marked at a time in the process.
static MARKING: Mutex<()> = Mutex::new(());

/// This process as a pidfd (`None` where the kernel has no pidfds).
fn this_process() -> Option<&'static OwnedFd> {
    static PIDFD: OnceLock<Option<OwnedFd>> = OnceLock::new();
    PIDFD
        .get_or_init(|| pidfd_open(getpid(), PidfdFlags::empty()).ok())
        .as_ref()
}

/// A search for the descriptor of a TCP socket about to be made: begun before it is
/// made, finished once it is marked.
pub(super) struct Search {
    _one_at_a_time: MutexGuard<'static, ()>,
    /// The lowest descriptor free just before the socket was made.
    likely: Option<RawFd>,
}

/// Begins a search, before the socket is made.
pub(super) fn begin() -> Search {
    let guard = MARKING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let likely = std::fs::File::open("/dev/null")
        .ok()
        .map(|probe| probe.as_raw_fd());
    Search {
        _one_at_a_time: guard,
        likely,
    }
}

impl Search {
    /// With the new socket's hop limit at [`MARKER`], finds its descriptor and sets
    /// `TCP_NODELAY` on it; reports whether it did.
    pub(super) fn finish(self) -> bool {
        let Some(process) = this_process() else {
            return false;
        };
        let set = self.likely.is_some_and(|fd| set_if_marked(process, fd))
            || std::fs::read_dir("/proc/self/fd").is_ok_and(|entries| {
                entries
                    .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                    .filter(|&fd| Some(fd) != self.likely)
                    .any(|fd| set_if_marked(process, fd))
            });
        tracing::trace!(likely = ?self.likely, set, "TCP_NODELAY on a new socket");
        set
    }
}

/// Sets `TCP_NODELAY` on descriptor `fd` if it is a fresh TCP socket (unbound,
/// unconnected) carrying [`MARKER`] as its hop limit; reports whether it did.
fn set_if_marked(process: &OwnedFd, fd: RawFd) -> bool {
    let Ok(socket) = pidfd_getfd(process, fd, PidfdGetfdFlags::empty()) else {
        return false;
    };
    if !sockopt::socket_type(&socket).is_ok_and(|kind| kind == rustix::net::SocketType::STREAM) {
        return false;
    }
    let local = rustix::net::getsockname(&socket)
        .ok()
        .and_then(|addr| SocketAddr::try_from(addr).ok());
    let marked = match local {
        Some(SocketAddr::V4(addr)) if addr.port() == 0 => {
            sockopt::ip_ttl(&socket).is_ok_and(|ttl| ttl == u32::from(MARKER))
        }
        Some(SocketAddr::V6(addr)) if addr.port() == 0 => {
            sockopt::ipv6_unicast_hops(&socket).is_ok_and(|hops| hops == MARKER)
        }
        _ => false,
    };
    marked
        && rustix::net::getpeername(&socket).is_err()
        && sockopt::set_tcp_nodelay(&socket, true).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new TCP socket carrying the marker gets the option; one without it, a bound
    /// socket and a file do not.
    #[test]
    fn sets_it_on_the_marked_new_socket_only() {
        let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let search = begin();
        let socket = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)
            .expect("socket");
        socket.set_unicast_hops_v6(u32::from(MARKER)).expect("mark");
        assert!(search.finish());
        assert!(socket.tcp_nodelay().expect("read the option"));
        assert!(!other.tcp_nodelay().expect("read the option"));

        let process = this_process().expect("pidfds");
        let bound = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        socket2::SockRef::from(&bound)
            .set_ttl_v4(u32::from(MARKER))
            .expect("mark");
        assert!(!set_if_marked(process, bound.as_raw_fd()));
        let file = std::fs::File::open("/dev/null").expect("open");
        assert!(!set_if_marked(process, file.as_raw_fd()));
    }
}

use std::fmt;
use std::io;
use std::net::SocketAddr;

use wasi::io::streams::StreamError;
use wasi::sockets::network::ErrorCode;

/// Why a network operation failed, in the words Go's `net` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The host's network policy did not allow it.
    AccessDenied,
    /// Nobody listens at the remote address.
    ConnectionRefused,
    /// The peer reset the connection.
    ConnectionReset,
    /// The connection was aborted locally.
    ConnectionAborted,
    /// The peer closed its side and a write found it gone.
    BrokenPipe,
    /// The local address is taken.
    AddressInUse,
    /// The local address is not one of this machine's.
    AddressNotAvailable,
    /// No route to the remote host.
    Unreachable,
    /// A deadline or the system's timeout passed.
    Timeout,
    /// The name has no addresses.
    NoSuchHost,
    /// The resolver failed for a reason that may pass.
    TemporaryResolverFailure,
    /// The resolver failed for good.
    ResolverFailure,
    /// The operation is not supported here.
    NotSupported,
    /// An argument was out of range or of the wrong family.
    InvalidArgument,
    /// The socket is not in a state that allows the operation.
    InvalidState,
    /// No more sockets may be created.
    TooManySockets,
    /// The host ran out of memory.
    OutOfMemory,
    /// The datagram is larger than the network allows.
    MessageTooLong,
    /// An address could not be parsed; `why` is Go's phrase for what is wrong with it.
    Address {
        /// The text that was given.
        addr: String,
        /// What is wrong with it, for example `missing port in address`.
        why: &'static str,
    },
    /// A name could not be resolved.
    Lookup {
        /// The name that was looked up.
        name: String,
        /// Why it failed.
        cause: Box<Reason>,
    },
    /// Anything else, with the host's own description.
    Other(String),
}

impl Reason {
    /// Maps a `wasi:sockets` 0.2 error code to its reason: the one map of this build's
    /// codes (the 0.3 build maps its own in `sockbox_guest_p3::net::reason`).
    pub(crate) fn from_code(code: ErrorCode) -> Self {
        match code {
            ErrorCode::AccessDenied => Self::AccessDenied,
            ErrorCode::ConnectionRefused => Self::ConnectionRefused,
            ErrorCode::ConnectionReset => Self::ConnectionReset,
            ErrorCode::ConnectionAborted => Self::ConnectionAborted,
            ErrorCode::AddressInUse => Self::AddressInUse,
            ErrorCode::AddressNotBindable => Self::AddressNotAvailable,
            ErrorCode::RemoteUnreachable => Self::Unreachable,
            ErrorCode::Timeout => Self::Timeout,
            ErrorCode::NameUnresolvable => Self::NoSuchHost,
            ErrorCode::TemporaryResolverFailure => Self::TemporaryResolverFailure,
            ErrorCode::PermanentResolverFailure => Self::ResolverFailure,
            ErrorCode::NotSupported => Self::NotSupported,
            ErrorCode::InvalidArgument => Self::InvalidArgument,
            ErrorCode::InvalidState | ErrorCode::NotInProgress => Self::InvalidState,
            ErrorCode::ConcurrencyConflict => Self::Other("operation already in progress".into()),
            ErrorCode::WouldBlock => Self::Other("resource temporarily unavailable".into()),
            ErrorCode::NewSocketLimit => Self::TooManySockets,
            ErrorCode::OutOfMemory => Self::OutOfMemory,
            ErrorCode::DatagramTooLarge => Self::MessageTooLong,
            ErrorCode::Unknown => Self::Other("unknown error".into()),
        }
    }

    /// Maps a failed stream operation to its reason; `None` means the stream is closed.
    ///
    /// wasi:io 0.2 reports a stream failure as an opaque error; sockbox's host
    /// describes it by its error code's name (`connection-reset`), other hosts by
    /// their own text. The names in it are matched here and nowhere else, and the
    /// host's text never reaches the reason: it may carry host internals.
    pub(crate) fn from_stream(err: StreamError) -> Option<Self> {
        let StreamError::LastOperationFailed(err) = err else {
            return None;
        };
        let folded: String = err
            .to_debug_string()
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        let named = |names: &[&str]| names.iter().any(|name| folded.contains(name));
        Some(if named(&["connectionreset"]) {
            Self::ConnectionReset
        } else if named(&["brokenpipe", "connectionbroken"]) {
            Self::BrokenPipe
        } else if named(&["connectionaborted"]) {
            Self::ConnectionAborted
        } else if named(&["timedout", "timeout"]) {
            Self::Timeout
        } else if named(&["remoteunreachable", "unreachable"]) {
            Self::Unreachable
        } else if named(&["outofmemory"]) {
            Self::OutOfMemory
        } else if named(&["accessdenied"]) {
            Self::AccessDenied
        } else {
            Self::Other("input/output error".into())
        })
    }

    fn kind(&self) -> io::ErrorKind {
        match self {
            Self::AccessDenied => io::ErrorKind::PermissionDenied,
            Self::ConnectionRefused => io::ErrorKind::ConnectionRefused,
            Self::ConnectionReset => io::ErrorKind::ConnectionReset,
            Self::ConnectionAborted => io::ErrorKind::ConnectionAborted,
            Self::BrokenPipe => io::ErrorKind::BrokenPipe,
            Self::AddressInUse => io::ErrorKind::AddrInUse,
            Self::AddressNotAvailable => io::ErrorKind::AddrNotAvailable,
            Self::Unreachable => io::ErrorKind::HostUnreachable,
            Self::Timeout => io::ErrorKind::TimedOut,
            Self::NotSupported => io::ErrorKind::Unsupported,
            Self::InvalidArgument | Self::Address { .. } | Self::MessageTooLong => {
                io::ErrorKind::InvalidInput
            }
            Self::OutOfMemory => io::ErrorKind::OutOfMemory,
            Self::NoSuchHost | Self::Lookup { .. } => io::ErrorKind::NotFound,
            Self::TemporaryResolverFailure
            | Self::ResolverFailure
            | Self::InvalidState
            | Self::TooManySockets
            | Self::Other(_) => io::ErrorKind::Other,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = match self {
            Self::AccessDenied => "access denied",
            Self::ConnectionRefused => "connection refused",
            Self::ConnectionReset => "connection reset by peer",
            Self::ConnectionAborted => "software caused connection abort",
            Self::BrokenPipe => "broken pipe",
            Self::AddressInUse => "address already in use",
            Self::AddressNotAvailable => "cannot assign requested address",
            Self::Unreachable => "no route to host",
            Self::Timeout => "i/o timeout",
            Self::NoSuchHost => "no such host",
            Self::TemporaryResolverFailure => "temporary failure in name resolution",
            Self::ResolverFailure => "non-recoverable failure in name resolution",
            Self::NotSupported => "operation not supported",
            Self::InvalidArgument => "invalid argument",
            Self::InvalidState => "invalid socket state",
            Self::TooManySockets => "too many open files",
            Self::OutOfMemory => "cannot allocate memory",
            Self::MessageTooLong => "message too long",
            Self::Address { addr, why } => return write!(f, "address {addr}: {why}"),
            Self::Lookup { name, cause } => return write!(f, "lookup {name}: {cause}"),
            Self::Other(text) => text,
        };
        f.write_str(words)
    }
}

/// A failed network operation, printed as Go prints a `*net.OpError`:
/// `dial tcp 10.0.0.1:80: access denied`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    op: &'static str,
    net: &'static str,
    addr: Option<String>,
    reason: Reason,
}

impl Error {
    /// Creates an error for operation `op` (`dial`, `listen`, `read`, …) on `net` (`tcp`).
    pub fn new(op: &'static str, net: &'static str, addr: Option<String>, reason: Reason) -> Self {
        Self {
            op,
            net,
            addr,
            reason,
        }
    }

    /// Creates an error for operation `op` on the TCP connection from `local` to `peer`,
    /// worded as Go words one: `read tcp 127.0.0.1:40000->127.0.0.1:8080: …`. For both
    /// builds of the guest.
    pub fn on_conn(op: &'static str, local: SocketAddr, peer: SocketAddr, reason: Reason) -> Self {
        Self::new(op, "tcp", Some(format!("{local}->{peer}")), reason)
    }

    /// Returns the operation that failed: `dial`, `listen`, `accept`, `read`, `write`, `close`.
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// Returns why it failed.
    pub fn reason(&self) -> &Reason {
        &self.reason
    }

    /// Reports whether the operation timed out.
    pub fn is_timeout(&self) -> bool {
        self.reason == Reason::Timeout
    }

    /// Reports whether the failure may pass by itself: the process ran out of
    /// descriptors (`too many open files`) or buffers (`cannot allocate memory`).
    /// Servers back off and try again ([`Backoff`](super::Backoff)), as Go's do.
    pub fn is_temporary(&self) -> bool {
        matches!(self.reason, Reason::TooManySockets | Reason::OutOfMemory)
    }

    /// Reports whether a peer caused the failure: it refused, reset or was
    /// unreachable. A UDP server sees these for datagrams it sent earlier.
    pub fn is_peer_failure(&self) -> bool {
        matches!(
            self.reason,
            Reason::ConnectionRefused | Reason::ConnectionReset | Reason::Unreachable
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op, self.net)?;
        if let Some(addr) = &self.addr {
            write!(f, " {addr}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        io::Error::new(err.reason.kind(), err)
    }
}

//! Denials: what the policy refused, kept once each and reported in one line.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;

use super::SocketAddrUse;

/// A socket use the policy refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Denial {
    /// What the guest tried.
    pub socket_use: UseKind,
    /// The address it named.
    pub addr: SocketAddr,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "denied {} {} (no rule allows it)",
            self.socket_use, self.addr
        )
    }
}

/// [`SocketAddrUse`], comparable and printable: `tcp connect to`, `tcp listen on`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[expect(
    missing_docs,
    reason = "each variant is the SocketAddrUse of the same name"
)]
pub enum UseKind {
    TcpBind,
    TcpListen,
    TcpAccept,
    TcpConnect,
    UdpBind,
    UdpSend,
    UdpReceive,
}

impl From<SocketAddrUse> for UseKind {
    fn from(socket_use: SocketAddrUse) -> Self {
        match socket_use {
            SocketAddrUse::TcpBind => Self::TcpBind,
            SocketAddrUse::TcpListen => Self::TcpListen,
            SocketAddrUse::TcpAccept => Self::TcpAccept,
            SocketAddrUse::TcpConnect => Self::TcpConnect,
            SocketAddrUse::UdpBind => Self::UdpBind,
            SocketAddrUse::UdpSend => Self::UdpSend,
            SocketAddrUse::UdpReceive => Self::UdpReceive,
        }
    }
}

impl fmt::Display for UseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TcpBind => "tcp bind to",
            Self::TcpListen => "tcp listen on",
            Self::TcpAccept => "tcp accept from",
            Self::TcpConnect => "tcp connect to",
            Self::UdpBind => "udp bind to",
            Self::UdpSend => "udp send to",
            Self::UdpReceive => "udp receive from",
        })
    }
}

/// The denials of one instance, each distinct one kept once, in the order they happened.
#[derive(Debug, Default)]
pub struct DenialLog {
    seen: Mutex<Vec<Denial>>,
    to_stderr: bool,
}

impl DenialLog {
    /// Returns a log that also prints each new denial as one `sockbox: denied …` line on stderr.
    pub fn printing() -> Self {
        Self {
            seen: Mutex::default(),
            to_stderr: true,
        }
    }

    /// Records a denial; prints it if it is new and the log prints.
    pub fn record(&self, denial: Denial) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.contains(&denial) {
            return;
        }
        seen.push(denial);
        if self.to_stderr {
            eprintln!("sockbox: {denial}");
        }
    }

    /// Returns the distinct denials so far.
    pub fn denials(&self) -> Vec<Denial> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

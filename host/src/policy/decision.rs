//! What a decision is, as people and machines read it: the use, its subject, the
//! verdict and what decided it. Pure data: recording it is `enforce`'s.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{Direction, Policy, SocketAddrUse, Special, Verdict};

/// What a guest tried: a socket use as wasmtime-wasi reports it, or a name lookup.
/// Audit lines and metrics name it by [`UseKind::word`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[expect(
    missing_docs,
    reason = "each socket variant is the SocketAddrUse of the same name"
)]
pub enum UseKind {
    TcpBind,
    TcpListen,
    TcpAccept,
    TcpConnect,
    UdpBind,
    UdpSend,
    UdpReceive,
    /// A lookup through `wasi:sockets/ip-name-lookup`.
    Lookup,
    /// One address an allowed lookup returned, checked before the guest sees it.
    LookupAnswer,
    /// An address a lookup granted, forgotten to keep the instance's grants within
    /// their bound (`MAX_NAME_GRANTS`): not a use of the guest's, and never a denial.
    GrantEvicted,
}

impl UseKind {
    /// Every kind, in the order of [`UseKind::WORDS`].
    pub const ALL: [Self; 10] = [
        Self::TcpBind,
        Self::TcpListen,
        Self::TcpAccept,
        Self::TcpConnect,
        Self::UdpBind,
        Self::UdpSend,
        Self::UdpReceive,
        Self::Lookup,
        Self::LookupAnswer,
        Self::GrantEvicted,
    ];

    /// The audit's word for each kind (its `use`), in the order of [`UseKind::ALL`].
    pub const WORDS: [&'static str; 10] = [
        "tcp-bind",
        "tcp-listen",
        "tcp-accept",
        "tcp-connect",
        "udp-bind",
        "udp-send",
        "udp-receive",
        "lookup",
        "lookup-answer",
        "grant-evicted",
    ];

    /// The audit's word for it: `tcp-connect`, `lookup-answer`, …
    pub fn word(self) -> &'static str {
        Self::WORDS[self as usize]
    }

    /// The kind the audit's `word` names.
    pub fn from_word(word: &str) -> Option<Self> {
        let index = Self::WORDS.iter().position(|known| *known == word)?;
        Some(Self::ALL[index])
    }
}

impl Serialize for UseKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.word())
    }
}

impl<'de> Deserialize<'de> for UseKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::from_word(&word).ok_or_else(|| serde::de::Error::unknown_variant(&word, &Self::WORDS))
    }
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
    /// `tcp connect to`, `udp receive from`, `lookup of`, …: what precedes the subject.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TcpBind => "tcp bind to",
            Self::TcpListen => "tcp listen on",
            Self::TcpAccept => "tcp accept from",
            Self::TcpConnect => "tcp connect to",
            Self::UdpBind => "udp bind to",
            Self::UdpSend => "udp send to",
            Self::UdpReceive => "udp receive from",
            Self::Lookup => "lookup of",
            Self::LookupAnswer => "lookup answer",
            Self::GrantEvicted => "lookup grant",
        })
    }
}

/// What a use named: an address, or for a lookup, a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A socket address.
    Addr(SocketAddr),
    /// A DNS name.
    Name(String),
    /// An address a lookup of a name returned.
    Answer {
        /// The name looked up.
        name: String,
        /// One address it resolved to.
        addr: IpAddr,
    },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(addr) => write!(f, "{addr}"),
            Self::Name(name) => f.write_str(name),
            Self::Answer { name, addr } => write!(f, "{addr} for {name}"),
        }
    }
}

/// One decided use: what was tried, on what, the verdict and what decided it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decision {
    /// What the guest tried.
    pub use_kind: UseKind,
    /// The address or name it named.
    pub subject: Subject,
    /// Whether it went ahead.
    pub allowed: bool,
    /// The policy denied it, but audits only: it went ahead (`allowed` is true).
    pub would_deny: bool,
    /// What decided it.
    pub by: DecidedBy,
    /// For a use on a published port: the address the host really used, where
    /// `subject` is the guest's view (`--publish HOST_PORT:GUEST_PORT`).
    pub host_addr: Option<SocketAddr>,
}

impl Decision {
    /// A decision of `verdict` on `subject`, as `policy` words it; not published, not
    /// audit-only.
    pub fn new(policy: &Policy, use_kind: UseKind, subject: Subject, verdict: Verdict) -> Self {
        Self {
            use_kind,
            subject,
            allowed: verdict.allowed,
            would_deny: false,
            by: policy.decided_by(verdict.by),
            host_addr: None,
        }
    }
}

impl fmt::Display for Decision {
    /// `denied tcp connect to 10.0.0.1:80 (no rule allows it)`, or `… (by --deny …)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let DecidedBy::MaxNameGrants(max) = self.by {
            return write!(
                f,
                "forgot {} {} (the instance keeps {max} granted addresses)",
                self.use_kind, self.subject
            );
        }
        let verdict = match (self.allowed, self.would_deny) {
            (_, true) => "would deny",
            (true, false) => "allowed",
            (false, false) => "denied",
        };
        write!(f, "{verdict} {} {} ", self.use_kind, self.subject)?;
        if let Some(host) = self.host_addr {
            write!(f, "(published on {host}) ")?;
        }
        match &self.by {
            DecidedBy::DefaultDeny => f.write_str("(no rule allows it)"),
            DecidedBy::MaxSockets(max) => {
                write!(f, "(the instance holds --max-sockets {max}: closed)")
            }
            by => write!(f, "(by {by})"),
        }
    }
}

/// What decided a use, by value: [`Decider`](super::Decider) with the rule's text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DecidedBy {
    /// A rule, in its direction.
    Rule {
        /// The direction it was given for.
        direction: Direction,
        /// The rule, as text.
        rule: String,
    },
    /// The policy inherits the host's network.
    InheritNetwork,
    /// No rule allows it.
    DefaultDeny,
    /// The instance already held `--max-sockets` sockets: the connection was closed
    /// by the host instead of being handed to the guest.
    MaxSockets(usize),
    /// Not a verdict: the instance's lookups had granted this many addresses, and the
    /// oldest was forgotten ([`UseKind::GrantEvicted`]).
    MaxNameGrants(usize),
    /// The special-address preset.
    Special(Special),
    /// A self connection ([`Decider::SelfConnection`](super::Decider::SelfConnection)).
    SelfConnection,
}

impl fmt::Display for DecidedBy {
    /// `--allow tcp://10.0.0.0/8:443`, `inherit-network` or `default-deny`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rule { direction, rule } => write!(f, "{} {rule}", direction.flag()),
            Self::InheritNetwork => f.write_str("inherit-network"),
            Self::DefaultDeny => f.write_str("default-deny"),
            Self::MaxSockets(max) => write!(f, "--max-sockets {max}"),
            Self::MaxNameGrants(_) => f.write_str("max-name-grants"),
            Self::Special(special) => f.write_str(special.rule_name()),
            Self::SelfConnection => f.write_str("self"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::UseKind;

    /// Each kind's word names it back, and serializes as itself.
    #[test]
    fn every_kind_has_its_word() {
        for (index, kind) in UseKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, index, "{kind:?}");
            assert_eq!(UseKind::from_word(kind.word()), Some(kind));
            let json = serde_json::to_string(&kind).expect("serialized");
            assert_eq!(json, format!("\"{}\"", kind.word()));
            assert_eq!(serde_json::from_str::<UseKind>(&json).expect("read"), kind);
        }
        assert_eq!(UseKind::from_word("teleport"), None);
    }
}

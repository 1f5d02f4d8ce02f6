//! Rules: `SCHEME://HOST:PORTS`, what each part matches, and how a rule prints (the
//! parser is `parse.rs`).
//!
//! The grammar is a superset of Spin's `allowed_outbound_hosts`:
//!
//! ```text
//! rule   = scheme "://" hosts ":" ports
//! scheme = "tcp" | "udp" | "*"
//! hosts  = host | "{" host ("," host)* "}"
//! host   = IPv4 | IPv4 "/" LEN | "[" IPv6 "]" | "[" IPv6 "]/" LEN | "*" | NAME | "*." NAME
//! ports  = port | "{" port ("," port)* "}"
//! port   = N | N "-" N | "*"
//! ```

use std::fmt;

use ipnet::IpNet;

/// One `SCHEME://HOST:PORTS` rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub(super) scheme: Scheme,
    pub(super) hosts: Vec<Host>,
    pub(super) ports: Ports,
}

/// The transport a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `tcp`.
    Tcp,
    /// `udp`.
    Udp,
    /// `*`: both.
    Any,
}

impl Scheme {
    /// Reports whether a rule with this scheme covers `transport`.
    pub fn covers(self, transport: Transport) -> bool {
        matches!(
            (self, transport),
            (Self::Any, _) | (Self::Tcp, Transport::Tcp) | (Self::Udp, Transport::Udp)
        )
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Any => "*",
        })
    }
}

/// TCP or UDP: what a socket use is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

/// One host pattern of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// `*`: every address and every name.
    Any,
    /// An address (`10.0.0.1`, `[::1]`) or a network (`10.0.0.0/8`, `[fd00::]/8`).
    Net(IpNet),
    /// A DNS name, lowercase, without a trailing dot: matches the addresses it resolves to.
    Name(String),
    /// `*.SUFFIX`: every name below SUFFIX (not SUFFIX itself).
    Suffix(String),
}

impl Host {
    /// Reports whether this pattern covers the name `name` (lowercase, no trailing dot).
    pub fn matches_name(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Net(_) => false,
            Self::Name(own) => own == name,
            Self::Suffix(suffix) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }

    /// Reports whether this pattern names hosts by DNS name.
    pub fn is_name(&self) -> bool {
        matches!(self, Self::Name(_) | Self::Suffix(_))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Net(IpNet::V4(net)) if net.prefix_len() == 32 => write!(f, "{}", net.addr()),
            Self::Net(IpNet::V4(net)) => write!(f, "{net}"),
            Self::Net(IpNet::V6(net)) if net.prefix_len() == 128 => write!(f, "[{}]", net.addr()),
            Self::Net(IpNet::V6(net)) => write!(f, "[{}]/{}", net.addr(), net.prefix_len()),
            Self::Name(name) => f.write_str(name),
            Self::Suffix(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// A rule's ports: `*` or a list of inclusive ranges (`80`, `8000-8100`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ports {
    /// `*`: every port, including port 0 ("any port", as a bind asks for it).
    Any,
    /// These ranges, each `lo..=hi`, never containing port 0.
    List(Vec<(u16, u16)>),
}

impl Ports {
    /// Reports whether every port `other` covers is covered here too (each of
    /// `other`'s ranges within one of these).
    pub fn covers(&self, other: &Ports) -> bool {
        match (self, other) {
            (Self::Any, _) => true,
            (Self::List(_), Self::Any) => false,
            (Self::List(mine), Self::List(theirs)) => theirs.iter().all(|&(lo, hi)| {
                mine.iter()
                    .any(|&(my_lo, my_hi)| my_lo <= lo && hi <= my_hi)
            }),
        }
    }

    /// Reports whether `port` is covered.
    pub fn contains(&self, port: u16) -> bool {
        match self {
            Self::Any => true,
            Self::List(ranges) => ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi),
        }
    }
}

impl Rule {
    /// Returns the rule's scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Returns the rule's host patterns (one unless the rule has a `{...}` list).
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Returns the rule's ports.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Reports whether the rule names hosts by DNS name (`example.com`, `*.example.com`).
    pub fn has_names(&self) -> bool {
        self.hosts.iter().any(Host::is_name)
    }

    /// Reports whether a lookup of `name` (lowercase, no trailing dot) is covered.
    pub fn matches_name(&self, name: &str) -> bool {
        self.hosts.iter().any(|host| host.matches_name(name))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        write_list(f, &self.hosts, |f, host| write!(f, "{host}"))?;
        f.write_str(":")?;
        match &self.ports {
            Ports::Any => f.write_str("*"),
            Ports::List(ranges) => write_list(f, ranges, |f, &(lo, hi)| {
                if lo == hi {
                    write!(f, "{lo}")
                } else {
                    write!(f, "{lo}-{hi}")
                }
            }),
        }
    }
}

/// Writes `item` alone, or `{a,b,...}`.
fn write_list<T>(
    f: &mut fmt::Formatter<'_>,
    items: &[T],
    write: impl Fn(&mut fmt::Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    if let [item] = items {
        return write(f, item);
    }
    f.write_str("{")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write(f, item)?;
    }
    f.write_str("}")
}

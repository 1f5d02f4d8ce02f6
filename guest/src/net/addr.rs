use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::lookup::lookup_host;
use super::{Error, Reason};

/// Splits `host:port` as Go's `net.SplitHostPort` does: `[v6]:port`, `v4:port`, `name:port`.
pub fn split_host_port(addr: &str) -> Result<(&str, u16), Reason> {
    let bad = |why| Reason::Address {
        addr: addr.to_owned(),
        why,
    };
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(bad("missing ']' in address"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => port,
            None if after.is_empty() => return Err(bad("missing port in address")),
            None => return Err(bad("unexpected ']' in address")),
        };
        (host, port)
    } else {
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or(bad("missing port in address"))?;
        if host.contains(':') {
            return Err(bad("too many colons in address"));
        }
        if host.contains('[') {
            return Err(bad("unexpected '[' in address"));
        }
        if host.contains(']') {
            return Err(bad("unexpected ']' in address"));
        }
        (host, port)
    };
    let port = if port.is_empty() {
        0
    } else if port.bytes().all(|b| b.is_ascii_digit()) {
        port.parse().map_err(|_| bad("invalid port"))?
    } else {
        return Err(bad("invalid port"));
    };
    Ok((host, port))
}

/// What an empty host means: Go dials the local system and listens on every interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyHost {
    /// `:80` dials `127.0.0.1:80`.
    Loopback,
    /// `:80` listens on `0.0.0.0:80`.
    Unspecified,
}

/// An address as given, split: a socket address already, or a name to look up first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// An IP literal (or an empty host) and its port.
    Addr(SocketAddr),
    /// A name, to resolve before use, and the port.
    Name {
        /// The host name as given.
        host: &'a str,
        /// The port.
        port: u16,
    },
}

/// Splits `addr` for operation `op` on `net` (`dial`, `tcp`): an IP literal is the
/// address, an empty host is what `empty` says, anything else is a name to look up.
/// A malformed address fails with Go's words. The one reading of an address, for both
/// builds of the guest (which each look names up their own way).
pub fn target<'a>(
    op: &'static str,
    net: &'static str,
    addr: &'a str,
    empty: EmptyHost,
) -> Result<Target<'a>, Error> {
    let (host, port) = split_host_port(addr).map_err(|reason| Error::new(op, net, None, reason))?;
    if host.is_empty() {
        let ip: IpAddr = match empty {
            EmptyHost::Loopback => Ipv4Addr::LOCALHOST.into(),
            EmptyHost::Unspecified => Ipv4Addr::UNSPECIFIED.into(),
        };
        return Ok(Target::Addr(SocketAddr::new(ip, port)));
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return Ok(Target::Addr(SocketAddr::new(v4.into(), port)));
    }
    if addr.starts_with('[')
        && let Ok(v6) = host.parse::<Ipv6Addr>()
    {
        return Ok(Target::Addr(SocketAddr::new(v6.into(), port)));
    }
    Ok(Target::Name { host, port })
}

/// Resolves `addr` to the socket addresses to try, in order, for operation `op`.
pub(crate) fn resolve(
    op: &'static str,
    net: &'static str,
    addr: &str,
    empty: EmptyHost,
) -> Result<Vec<SocketAddr>, Error> {
    match target(op, net, addr, empty)? {
        Target::Addr(addr) => Ok(vec![addr]),
        Target::Name { host, port } => {
            let ips = lookup_host(host).map_err(|reason| Error::new(op, net, None, reason))?;
            Ok(ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form Go accepts splits as Go splits it, and every malformed one fails with Go's words.
    #[test]
    fn splits_like_go() {
        assert_eq!(split_host_port("1.2.3.4:80"), Ok(("1.2.3.4", 80)));
        assert_eq!(split_host_port("[::1]:443"), Ok(("::1", 443)));
        assert_eq!(split_host_port("localhost:0"), Ok(("localhost", 0)));
        assert_eq!(split_host_port(":8080"), Ok(("", 8080)));
        let why = |addr: &str| match split_host_port(addr) {
            Err(Reason::Address { why, .. }) => why,
            other => panic!("{addr}: {other:?}"),
        };
        assert_eq!(why("1.2.3.4"), "missing port in address");
        assert_eq!(why("::1:80"), "too many colons in address");
        assert_eq!(why("[::1:80"), "missing ']' in address");
        assert_eq!(why("[::1]"), "missing port in address");
        assert_eq!(why("[::1]x:80"), "unexpected ']' in address");
        assert_eq!(why("host:http"), "invalid port");
        assert_eq!(why("host:70000"), "invalid port");
    }
}

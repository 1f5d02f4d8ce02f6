//! Rules: `SCHEME://HOST:PORTS`, parsed with errors that say which part is wrong and why.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// One `SCHEME://HOST:PORTS` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    host: IpNet,
    ports: Ports,
}

impl Rule {
    /// Reports whether the rule covers `addr`.
    pub fn matches(&self, addr: SocketAddr) -> bool {
        self.host.contains(&addr.ip()) && self.ports.contains(addr.port())
    }
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Self, RuleError> {
        let fail = |part, why: String| RuleError {
            rule: text.to_owned(),
            part,
            why,
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            fail(
                "rule",
                "expected SCHEME://HOST:PORTS, for example tcp://127.0.0.1:8080".into(),
            )
        })?;
        match scheme {
            "tcp" => {}
            "udp" | "*" => {
                return Err(fail(
                    "scheme",
                    format!("`{scheme}` rules are not supported yet; use tcp"),
                ));
            }
            _ => {
                return Err(fail(
                    "scheme",
                    format!("`{scheme}` is not a scheme; use tcp"),
                ));
            }
        }
        let (host, ports) = split_host_ports(rest).ok_or_else(|| {
            fail(
                "rule",
                "expected HOST:PORTS after the scheme, for example 127.0.0.1:8080".into(),
            )
        })?;
        let host = parse_host(host).map_err(|why| fail("host", why))?;
        let ports = ports.parse().map_err(|why| fail("ports", why))?;
        Ok(Self { host, ports })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tcp://")?;
        match self.host {
            IpNet::V4(net) if net.prefix_len() == 32 => write!(f, "{}", net.addr())?,
            IpNet::V4(net) => write!(f, "{net}")?,
            IpNet::V6(net) if net.prefix_len() == 128 => write!(f, "[{}]", net.addr())?,
            IpNet::V6(net) => write!(f, "[{}]/{}", net.addr(), net.prefix_len())?,
        }
        write!(f, ":{}", self.ports)
    }
}

/// Splits `HOST:PORTS`, where HOST may be `[v6]` or `[v6]/len`.
fn split_host_ports(rest: &str) -> Option<(&str, &str)> {
    if rest.starts_with('[')
        && let Some(close) = rest.find(']')
    {
        let after = &rest[close + 1..];
        let colon = after.rfind(':')?;
        Some((&rest[..close + 1 + colon], &after[colon + 1..]))
    } else {
        rest.rsplit_once(':')
    }
}

fn parse_host(host: &str) -> Result<IpNet, String> {
    if host.is_empty() {
        return Err("is empty".into());
    }
    let (addr, prefix) = match host.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or("has `[` without `]`")?;
            let prefix = match after {
                "" => None,
                _ => Some(after.strip_prefix('/').ok_or("wants `/LEN` after `]`")?),
            };
            let addr: std::net::Ipv6Addr = addr
                .parse()
                .map_err(|_| format!("`{addr}` is not an IPv6 address"))?;
            (IpAddr::V6(addr), prefix)
        }
        None => {
            let (addr, prefix) = match host.split_once('/') {
                Some((addr, prefix)) => (addr, Some(prefix)),
                None => (host, None),
            };
            let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| {
                if addr.contains(':') {
                    format!("`{addr}` looks like IPv6: write it in brackets, [{addr}]")
                } else {
                    format!("`{addr}` is not an IPv4 address, [IPv6] address or CIDR (DNS names are not supported yet)")
                }
            })?;
            (IpAddr::V4(addr), prefix)
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        Some(len) => len
            .parse::<u8>()
            .ok()
            .filter(|len| *len <= max)
            .ok_or_else(|| format!("prefix length `/{len}` is not between 0 and {max}"))?,
    };
    // A rule on IPv4-mapped IPv6 space is a rule on the IPv4 addresses it maps, since
    // that is how mapped addresses are judged.
    let net = match addr {
        IpAddr::V6(v6) if len >= 96 && v6.to_ipv4_mapped().is_some() => {
            IpNet::new(addr.to_canonical(), len - 96)
        }
        _ => IpNet::new(addr, len),
    };
    Ok(net.map_err(|err| err.to_string())?.trunc())
}

/// A rule's ports: `*`, `N` or `A-B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ports {
    Any,
    Range(u16, u16),
}

impl Ports {
    fn contains(self, port: u16) -> bool {
        match self {
            Self::Any => true,
            // Port 0 asks the OS for any port: only `*` covers that.
            Self::Range(lo, hi) => port != 0 && lo <= port && port <= hi,
        }
    }
}

impl FromStr for Ports {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let port = |text: &str| match text.parse::<u16>() {
            Ok(0) => Err("port 0 means any port: write *".to_owned()),
            Ok(port) => Ok(port),
            Err(_) => Err(format!("`{text}` is not a port (1-65535)")),
        };
        match text {
            "" => Err("are empty".into()),
            "*" => Ok(Self::Any),
            _ => match text.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (port(lo)?, port(hi)?);
                    if lo > hi {
                        return Err(format!("range `{text}` runs backwards"));
                    }
                    Ok(Self::Range(lo, hi))
                }
                None => port(text).map(|port| Self::Range(port, port)),
            },
        }
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Range(lo, hi) if lo == hi => write!(f, "{lo}"),
            Self::Range(lo, hi) => write!(f, "{lo}-{hi}"),
        }
    }
}

/// A rule that could not be parsed: which rule, which part of it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    rule: String,
    part: &'static str,
    why: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid rule `{}`: {} {}",
            self.rule, self.part, self.why
        )
    }
}

impl std::error::Error for RuleError {}

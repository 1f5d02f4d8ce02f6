//! Network policy: which socket uses a guest may make.
//!
//! A [`Policy`] holds outbound rules (`--allow`: TCP connect) and inbound rules
//! (`--allow-listen`: bind, listen, and accepting peers once listening). A rule is
//! `SCHEME://HOST:PORTS` — today SCHEME is `tcp`, HOST an IPv4 address, `[IPv6]` or a
//! CIDR (`10.0.0.0/8`, `[fd00::]/8`), PORTS `N`, `A-B` or `*`. Nothing is allowed
//! unless a rule allows it.
//!
//! wasmtime-wasi asks [`Policy::allows`] about every socket use it reports; how each
//! [`SocketAddrUse`] is judged:
//!
//! | use | judged by |
//! |---|---|
//! | `TcpConnect` | an `--allow` rule matching the remote address |
//! | `TcpBind` to the unspecified address, port 0 | allowed when any `--allow` rule exists: it is the implicit bind before a connect, which is then judged itself |
//! | `TcpBind` (explicit) | an `--allow-listen` rule matching the local address |
//! | `TcpListen` | an `--allow-listen` rule matching the bound address |
//! | `TcpAccept` | allowed when any `--allow-listen` rule exists |
//! | `Udp*` | denied: no UDP rules yet |
//!
//! An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is judged as the IPv4 address it
//! carries. Port 0 ("any port") is matched only by `*`; the unspecified address only
//! by a host pattern that contains it (`0.0.0.0/0`, `0.0.0.0`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Mutex;

use ipnet::IpNet;
pub use wasmtime_wasi::sockets::SocketAddrUse;

/// A set of rules deciding every socket use of one guest instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    inherit: bool,
    connect: Vec<Rule>,
    listen: Vec<Rule>,
}

impl Policy {
    /// Returns a policy that allows nothing.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Returns a policy that allows every use, like `wasmtime run -S inherit-network`.
    pub fn inherit_network() -> Self {
        Self {
            inherit: true,
            ..Self::default()
        }
    }

    /// Adds an outbound rule: the guest may connect to what it matches.
    pub fn allow(mut self, rule: &str) -> Result<Self, RuleError> {
        self.connect.push(rule.parse()?);
        Ok(self)
    }

    /// Adds an inbound rule: the guest may bind and listen on what it matches, and accept peers.
    pub fn allow_listen(mut self, rule: &str) -> Result<Self, RuleError> {
        self.listen.push(rule.parse()?);
        Ok(self)
    }

    /// Reports whether the policy allows anything at all.
    pub fn is_empty(&self) -> bool {
        !self.inherit && self.connect.is_empty() && self.listen.is_empty()
    }

    /// Reports whether any TCP use could be allowed, so TCP is enabled in the sandbox.
    pub fn uses_tcp(&self) -> bool {
        !self.is_empty()
    }

    /// Reports whether any UDP use could be allowed, so UDP is enabled in the sandbox.
    pub fn uses_udp(&self) -> bool {
        self.inherit
    }

    /// Reports whether name lookups are allowed: when any rule is given.
    pub fn allows_name_lookup(&self) -> bool {
        !self.is_empty()
    }

    /// Decides one socket use.
    pub fn allows(&self, addr: SocketAddr, socket_use: SocketAddrUse) -> bool {
        if self.inherit {
            return true;
        }
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let any = |rules: &[Rule]| rules.iter().any(|rule| rule.matches(addr));
        match socket_use {
            SocketAddrUse::TcpConnect => any(&self.connect),
            SocketAddrUse::TcpBind if addr.ip().is_unspecified() && addr.port() == 0 => {
                !self.connect.is_empty() || any(&self.listen)
            }
            SocketAddrUse::TcpBind | SocketAddrUse::TcpListen => any(&self.listen),
            SocketAddrUse::TcpAccept => !self.listen.is_empty(),
            SocketAddrUse::UdpBind | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => false,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("a socket address")
    }

    fn policy(connect: &[&str], listen: &[&str]) -> Policy {
        let mut policy = Policy::deny_all();
        for rule in connect {
            policy = policy.allow(rule).expect("a valid rule");
        }
        for rule in listen {
            policy = policy.allow_listen(rule).expect("a valid rule");
        }
        policy
    }

    /// Every grammar form of this version matches what it should and nothing more.
    #[test]
    fn verdicts() {
        use SocketAddrUse::*;
        // (allow rules, allow-listen rules, use, address, allowed?)
        type Case = (
            &'static [&'static str],
            &'static [&'static str],
            SocketAddrUse,
            &'static str,
            bool,
        );
        let cases: &[Case] = &[
            // Outbound: host forms and port forms.
            (
                &["tcp://127.0.0.1:8080"],
                &[],
                TcpConnect,
                "127.0.0.1:8080",
                true,
            ),
            (
                &["tcp://127.0.0.1:8080"],
                &[],
                TcpConnect,
                "127.0.0.1:8081",
                false,
            ),
            (
                &["tcp://127.0.0.1:8080"],
                &[],
                TcpConnect,
                "127.0.0.2:8080",
                false,
            ),
            (
                &["tcp://10.0.0.0/8:*"],
                &[],
                TcpConnect,
                "10.255.1.2:1",
                true,
            ),
            (
                &["tcp://10.0.0.0/8:*"],
                &[],
                TcpConnect,
                "11.0.0.1:1",
                false,
            ),
            (&["tcp://10.1.2.3/8:*"], &[], TcpConnect, "10.9.9.9:1", true),
            (
                &["tcp://127.0.0.1:1000-2000"],
                &[],
                TcpConnect,
                "127.0.0.1:999",
                false,
            ),
            (
                &["tcp://127.0.0.1:1000-2000"],
                &[],
                TcpConnect,
                "127.0.0.1:1000",
                true,
            ),
            (
                &["tcp://127.0.0.1:1000-2000"],
                &[],
                TcpConnect,
                "127.0.0.1:2000",
                true,
            ),
            (
                &["tcp://127.0.0.1:1000-2000"],
                &[],
                TcpConnect,
                "127.0.0.1:2001",
                false,
            ),
            (&["tcp://[::1]:443"], &[], TcpConnect, "[::1]:443", true),
            (
                &["tcp://[::1]:443"],
                &[],
                TcpConnect,
                "127.0.0.1:443",
                false,
            ),
            (
                &["tcp://[fd00::]/8:*"],
                &[],
                TcpConnect,
                "[fdff::1]:9",
                true,
            ),
            (
                &["tcp://[fd00::]/8:*"],
                &[],
                TcpConnect,
                "[fe00::1]:9",
                false,
            ),
            // IPv4-mapped IPv6 is judged as the IPv4 address it carries, both ways.
            (
                &["tcp://10.0.0.1:80"],
                &[],
                TcpConnect,
                "[::ffff:10.0.0.1]:80",
                true,
            ),
            (
                &["tcp://10.0.0.1:80"],
                &[],
                TcpConnect,
                "[::ffff:10.0.0.2]:80",
                false,
            ),
            (
                &["tcp://[::ffff:10.0.0.1]:80"],
                &[],
                TcpConnect,
                "10.0.0.1:80",
                true,
            ),
            (
                &["tcp://[::ffff:10.0.0.0]/104:80"],
                &[],
                TcpConnect,
                "10.200.0.1:80",
                true,
            ),
            (
                &["tcp://127.0.0.1:*"],
                &[],
                TcpConnect,
                "[::ffff:127.0.0.1]:5",
                true,
            ),
            // A scope id does not change a verdict.
            (
                &["tcp://[fe80::1]:80"],
                &[],
                TcpConnect,
                "[fe80::1%2]:80",
                true,
            ),
            // The implicit bind before a connect rides on the connect rules.
            (&["tcp://127.0.0.1:80"], &[], TcpBind, "0.0.0.0:0", true),
            (&["tcp://127.0.0.1:80"], &[], TcpBind, "[::]:0", true),
            (&[], &[], TcpBind, "0.0.0.0:0", false),
            // An explicit bind is inbound, port 0 only by `*`.
            (&["tcp://127.0.0.1:*"], &[], TcpBind, "127.0.0.1:0", false),
            (&[], &["tcp://127.0.0.1:*"], TcpBind, "127.0.0.1:0", true),
            (
                &[],
                &["tcp://127.0.0.1:8000-9000"],
                TcpBind,
                "127.0.0.1:0",
                false,
            ),
            (
                &[],
                &["tcp://127.0.0.1:8000-9000"],
                TcpBind,
                "127.0.0.1:8500",
                true,
            ),
            // Unspecified addresses mean every interface: only a rule containing them covers them.
            (&[], &["tcp://127.0.0.1:*"], TcpBind, "0.0.0.0:8080", false),
            (&[], &["tcp://0.0.0.0/0:*"], TcpBind, "0.0.0.0:8080", true),
            (
                &[],
                &["tcp://127.0.0.1:*"],
                TcpListen,
                "0.0.0.0:8080",
                false,
            ),
            // Listen is judged on the bound address; listening does not grant connecting.
            (
                &[],
                &["tcp://127.0.0.1:*"],
                TcpListen,
                "127.0.0.1:41000",
                true,
            ),
            (&[], &["tcp://[::1]:*"], TcpListen, "127.0.0.1:41000", false),
            (
                &[],
                &["tcp://127.0.0.1:*"],
                TcpConnect,
                "127.0.0.1:41000",
                false,
            ),
            // Accepting follows listening, from any peer.
            (
                &[],
                &["tcp://127.0.0.1:*"],
                TcpAccept,
                "10.1.1.1:5000",
                true,
            ),
            (
                &["tcp://127.0.0.1:*"],
                &[],
                TcpAccept,
                "127.0.0.1:5000",
                false,
            ),
            // No UDP rules in this version.
            (
                &["tcp://127.0.0.1:*"],
                &["tcp://127.0.0.1:*"],
                UdpSend,
                "127.0.0.1:53",
                false,
            ),
            (
                &["tcp://127.0.0.1:*"],
                &["tcp://127.0.0.1:*"],
                UdpBind,
                "0.0.0.0:0",
                false,
            ),
            (
                &[],
                &["tcp://127.0.0.1:*"],
                UdpReceive,
                "127.0.0.1:53",
                false,
            ),
        ];
        for (connect, listen, socket_use, target, expected) in cases {
            let verdict = policy(connect, listen).allows(addr(target), *socket_use);
            assert_eq!(
                verdict, *expected,
                "allow {connect:?} allow-listen {listen:?}: {socket_use:?} {target}"
            );
        }
    }

    /// Nothing is allowed without a rule; `inherit_network` allows everything.
    #[test]
    fn defaults() {
        let uses = [
            SocketAddrUse::TcpBind,
            SocketAddrUse::TcpListen,
            SocketAddrUse::TcpAccept,
            SocketAddrUse::TcpConnect,
            SocketAddrUse::UdpBind,
            SocketAddrUse::UdpSend,
            SocketAddrUse::UdpReceive,
        ];
        for socket_use in uses {
            assert!(!Policy::deny_all().allows(addr("127.0.0.1:80"), socket_use));
            assert!(Policy::inherit_network().allows(addr("10.0.0.1:80"), socket_use));
        }
        assert!(!Policy::deny_all().uses_tcp() && !Policy::deny_all().allows_name_lookup());
        assert!(!Policy::deny_all().uses_udp() && !policy(&["tcp://127.0.0.1:1"], &[]).uses_udp());
        let inherit = Policy::inherit_network();
        assert!(inherit.uses_tcp() && inherit.uses_udp() && inherit.allows_name_lookup());
        assert!(policy(&["tcp://127.0.0.1:1"], &[]).allows_name_lookup());
    }

    /// Rules print in a canonical form that parses back to the same rule.
    #[test]
    fn display_round_trips() {
        for (text, canonical) in [
            ("tcp://127.0.0.1:80", "tcp://127.0.0.1:80"),
            ("tcp://10.1.2.3/8:1-9", "tcp://10.0.0.0/8:1-9"),
            ("tcp://[::1]:*", "tcp://[::1]:*"),
            ("tcp://[fd00::1]/8:443", "tcp://[fd00::]/8:443"),
            ("tcp://[::ffff:10.0.0.1]:80", "tcp://10.0.0.1:80"),
            ("tcp://0.0.0.0/0:5-5", "tcp://0.0.0.0/0:5"),
        ] {
            let rule: Rule = text.parse().expect("a valid rule");
            assert_eq!(rule.to_string(), canonical);
            assert_eq!(canonical.parse::<Rule>(), Ok(rule));
        }
    }

    /// Malformed rules name the rule, the part and the reason.
    #[test]
    fn parse_errors() {
        for (text, message) in [
            ("tcp://", "rule expected HOST:PORTS after the scheme"),
            ("127.0.0.1:80", "rule expected SCHEME://HOST:PORTS"),
            (
                "udp://127.0.0.1:53",
                "scheme `udp` rules are not supported yet",
            ),
            ("http://127.0.0.1:80", "scheme `http` is not a scheme"),
            ("tcp://:80", "host is empty"),
            (
                "tcp://10.0.0.0/33:80",
                "host prefix length `/33` is not between 0 and 32",
            ),
            (
                "tcp://[::1]/129:80",
                "host prefix length `/129` is not between 0 and 128",
            ),
            ("tcp://::1:80", "looks like IPv6: write it in brackets"),
            ("tcp://[::1:80", "host has `[` without `]`"),
            ("tcp://[zz::1]:80", "host `zz::1` is not an IPv6 address"),
            ("tcp://example.com:80", "DNS names are not supported yet"),
            ("tcp://127.0.0.1:", "ports are empty"),
            (
                "tcp://127.0.0.1:70000",
                "ports `70000` is not a port (1-65535)",
            ),
            ("tcp://127.0.0.1:0", "ports port 0 means any port: write *"),
            ("tcp://127.0.0.1:9-1", "ports range `9-1` runs backwards"),
            ("tcp://127.0.0.1:a-b", "ports `a` is not a port"),
        ] {
            let err = text.parse::<Rule>().expect_err(text).to_string();
            assert!(
                err.starts_with(&format!("invalid rule `{text}`: ")) && err.contains(message),
                "{text}: {err}"
            );
        }
    }

    /// Each distinct denial is kept once, in order.
    #[test]
    fn denial_log_keeps_distinct_denials() {
        let log = DenialLog::default();
        let first = Denial {
            socket_use: UseKind::TcpConnect,
            addr: addr("10.0.0.1:80"),
        };
        let second = Denial {
            socket_use: UseKind::TcpListen,
            addr: addr("10.0.0.1:80"),
        };
        for denial in [first, first, second, first] {
            log.record(denial);
        }
        assert_eq!(log.denials(), [first, second]);
        assert_eq!(
            first.to_string(),
            "denied tcp connect to 10.0.0.1:80 (no rule allows it)"
        );
    }
}

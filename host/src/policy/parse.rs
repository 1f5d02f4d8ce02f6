//! Parsing rules: `SCHEME://HOST:PORTS` into a [`Rule`], with errors that say which
//! part is wrong and why, and the one normalization of DNS names.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

use super::rule::{Host, Ports, Rule, Scheme};

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
        let scheme = parse_scheme(scheme).map_err(|why| fail("scheme", why))?;
        if rest.is_empty() {
            return Err(fail(
                "rule",
                "has nothing after the scheme: expected HOST:PORTS, for example 127.0.0.1:8080"
                    .into(),
            ));
        }
        let (hosts, ports) = split_hosts_ports(rest).map_err(|(part, why)| fail(part, why))?;
        let hosts = parse_list(hosts, "hosts", parse_host).map_err(|why| fail("host", why))?;
        if hosts.len() > 1 && hosts.contains(&Host::Any) {
            return Err(fail(
                "host",
                "`*` already covers every host: it cannot be part of a list".into(),
            ));
        }
        let ports = parse_ports(ports).map_err(|why| fail("ports", why))?;
        Ok(Self {
            scheme,
            hosts,
            ports,
        })
    }
}

fn parse_scheme(scheme: &str) -> Result<Scheme, String> {
    match scheme.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Scheme::Tcp),
        "udp" => Ok(Scheme::Udp),
        "*" => Ok(Scheme::Any),
        "" => Err("is empty: use tcp, udp or *".into()),
        app @ ("http" | "https" | "redis" | "mysql" | "postgres" | "mqtt" | "ws" | "wss") => {
            Err(format!(
                "`{app}` is an application protocol: sockbox decides sockets, so write tcp://HOST:PORT (for example the port {app} uses)"
            ))
        }
        other => Err(format!("`{other}` is not a scheme: use tcp, udp or *")),
    }
}

/// Splits `HOSTS:PORTS`, where HOSTS may be `{...}`, `[v6]` or `[v6]/len`; an error
/// names the part that is wrong.
fn split_hosts_ports(rest: &str) -> Result<(&str, &str), (&'static str, String)> {
    let host_end = if rest.starts_with('{') {
        let close = rest
            .find('}')
            .ok_or_else(|| ("host", format!("list `{rest}` has `{{` without `}}`")))?;
        if rest[1..close].contains('{') {
            return Err((
                "host",
                format!("lists cannot be nested: `{}`", &rest[..=close]),
            ));
        }
        Some(close + 1)
    } else if rest.starts_with('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| ("host", "has `[` without `]`".to_owned()))?;
        Some(close + 1 + rest[close + 1..].find(':').unwrap_or(rest.len()))
    } else {
        rest.rfind(':')
    };
    let host_end = host_end.unwrap_or(rest.len()).min(rest.len());
    let (hosts, ports) = rest.split_at(host_end);
    match ports.strip_prefix(':') {
        Some(ports) => Ok((hosts, ports)),
        None if ports.is_empty() => Err((
            "ports",
            format!("are missing: write {hosts}:PORT, or {hosts}:* for every port"),
        )),
        None => Err((
            "rule",
            format!("expected `:` and ports after `{hosts}`, found `{ports}`"),
        )),
    }
}

/// Parses `item` or `{item,item,...}` with `parse`.
fn parse_list<T>(
    text: &str,
    what: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let Some(inner) = text.strip_prefix('{') else {
        return Ok(vec![parse(text)?]);
    };
    let inner = inner
        .strip_suffix('}')
        .ok_or_else(|| format!("list `{text}` has `{{` without `}}`"))?;
    if inner.trim().is_empty() {
        return Err(format!(
            "list `{text}` is empty: give at least one of the {what}"
        ));
    }
    inner
        .split(',')
        .map(|item| {
            if item.starts_with('{') {
                return Err(format!("lists cannot be nested: `{text}`"));
            }
            parse(item)
        })
        .collect()
}

fn parse_host(host: &str) -> Result<Host, String> {
    if host.is_empty() {
        return Err("is empty".into());
    }
    if host == "*" {
        return Ok(Host::Any);
    }
    if let Some(v6) = host.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("has `[` without `]`")?;
        let prefix = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix('/')
                    .ok_or_else(|| format!("expected `/LEN` after `[{addr}]`, found `{after}`"))?,
            ),
        };
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IPv6 address"))?;
        return parse_net(IpAddr::V6(addr), prefix, host).map(Host::Net);
    }
    let (addr, prefix) = match host.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (host, None),
    };
    if let Ok(addr) = addr.parse::<Ipv4Addr>() {
        return parse_net(IpAddr::V4(addr), prefix, host).map(Host::Net);
    }
    if addr.contains(':') {
        return Err(format!(
            "`{addr}` looks like IPv6: write it in brackets, [{addr}]"
        ));
    }
    if prefix.is_some() {
        return Err(format!(
            "`{host}`: a prefix length needs an IPv4 address or a bracketed IPv6 address before it"
        ));
    }
    match host.strip_prefix("*.") {
        Some(suffix) => normalize_name(suffix).map(Host::Suffix),
        None => normalize_name(host).map(Host::Name),
    }
}

fn parse_net(addr: IpAddr, prefix: Option<&str>, text: &str) -> Result<IpNet, String> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        Some(len) => len
            .parse::<u8>()
            .ok()
            .filter(|len| *len <= max)
            .ok_or_else(|| format!("prefix length `/{len}` is not between 0 and {max}"))?,
    };
    let net = IpNet::new(addr, len).map_err(|err| err.to_string())?;
    if net.trunc() != net {
        return Err(format!(
            "`{text}` has bits set past its prefix: the network is {}",
            Host::Net(net.trunc())
        ));
    }
    // A rule on IPv4-mapped IPv6 space is a rule on the IPv4 addresses it maps, since
    // that is how mapped addresses are judged.
    if let IpAddr::V6(v6) = addr
        && len >= 96
        && let Some(v4) = v6.to_ipv4_mapped()
    {
        return IpNet::new(IpAddr::V4(v4), len - 96).map_err(|err| err.to_string());
    }
    Ok(net)
}

/// Normalizes a DNS name, the one way every name is read — in rules, in lookups, in
/// what a lookup grants: lowercase, IDNA (punycode), one final dot removed. Fails,
/// saying why, for what is not a valid DNS name: empty, an empty label (`a..b`,
/// `evil.example..`), a label over 63 bytes or a name over 253, characters names
/// cannot have.
pub fn normalize_name(name: &str) -> Result<String, String> {
    let invalid = |why: &str| format!("`{name}` is not a DNS name: {why}");
    if name.is_empty() || name == "." {
        return Err("name is empty".into());
    }
    if name.contains('*') {
        return Err(invalid(
            "`*` may only stand alone or start the name, as in *.example.com",
        ));
    }
    if name.ends_with('.') && name.len() > 1 && name[..name.len() - 1].ends_with('.') {
        return Err(invalid("it has an empty label"));
    }
    let normalized = match url::Host::parse(name.strip_suffix('.').unwrap_or(name)) {
        Ok(url::Host::Domain(domain)) => domain,
        Ok(url::Host::Ipv4(addr)) => {
            return Err(format!(
                "`{name}` reads as the IPv4 address {addr}: write it as {addr}"
            ));
        }
        Ok(url::Host::Ipv6(_)) | Err(_) => {
            let last = name
                .trim_end_matches('.')
                .rsplit('.')
                .next()
                .unwrap_or(name);
            if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("`{name}` is not an IPv4 address"));
            }
            return Err(invalid("it has characters names cannot have"));
        }
    };
    if normalized.len() > 253 {
        return Err(invalid("it is longer than 253 characters"));
    }
    for label in normalized.split('.') {
        if label.is_empty() {
            return Err(invalid("it has an empty label"));
        }
        if label.len() > 63 {
            return Err(invalid("a label is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid("labels are letters, digits, `-` and `_`"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid("a label starts or ends with `-`"));
        }
    }
    Ok(normalized)
}

fn parse_ports(text: &str) -> Result<Ports, String> {
    if text == "*" {
        return Ok(Ports::Any);
    }
    if text.is_empty() {
        return Err("are empty: write a port, a range A-B, or *".into());
    }
    let port = |text: &str| match text.parse::<u32>() {
        Ok(0) => Err("port 0 means any port: write *".to_owned()),
        Ok(port) => {
            u16::try_from(port).map_err(|_| format!("port {port} is out of range (1-65535)"))
        }
        Err(_) => Err(format!("`{text}` is not a port (1-65535)")),
    };
    let ranges = parse_list(text, "ports", |item| {
        if item == "*" {
            return Err("`*` already covers every port: it cannot be part of a list".into());
        }
        match item.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (port(lo)?, port(hi)?);
                if lo > hi {
                    return Err(format!("range `{item}` runs backwards"));
                }
                Ok((lo, hi))
            }
            None => port(item).map(|port| (port, port)),
        }
    })?;
    Ok(Ports::List(ranges))
}

/// A rule that could not be parsed: which rule, which part of it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    rule: String,
    part: &'static str,
    why: String,
}

impl RuleError {
    /// Returns the part of the rule that is wrong: `rule`, `scheme`, `host` or `ports`.
    pub fn part(&self) -> &str {
        self.part
    }

    /// Returns an error about `rule` as a whole (for rules that are valid but misplaced).
    pub(crate) fn misplaced(rule: &str, why: String) -> Self {
        Self {
            rule: rule.to_owned(),
            part: "rule",
            why,
        }
    }
}

impl fmt::Display for RuleError {
    /// One line, whatever the rule held: control characters (a newline in a flag or a
    /// policy file's string) are written escaped, as `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid rule `{}`: {} {}",
            Escaped(&self.rule),
            self.part,
            Escaped(&self.why)
        )
    }
}

/// Text with its control characters escaped (`\n`, `\u{1b}`), the rest as it is.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for RuleError {}

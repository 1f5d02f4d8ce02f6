//! A policy learned from an audit: the least rules that allow every use an audit
//! recorded — allowed, denied and would-deny — so the loop is: run the workload with
//! `--audit-only --audit FILE`, [`suggest`], review, enforce.
//!
//! What becomes what:
//!
//! - **Outbound** (`tcp-connect`, `udp-send`): an `allow` rule on the address, or on
//!   the name the instance looked up when a lookup gave it that address (the audit's
//!   `lookup-answer` lines): names stay names. A lookup whose answers nothing used
//!   gets a rule on the name with any port, since a rule naming it is what allows a
//!   lookup.
//! - **Inbound**: a bind on a port of its own asking becomes a `listen` rule on that
//!   port; a bind to port 0 on a named address, `listen` with any port (the system
//!   picks another each run). The client form — the unspecified address, port 0 —
//!   becomes no rule: the outbound rule of its scheme allows it. Each accepted peer
//!   (`tcp-accept`) and each peer whose datagram arrived unasked (`udp-receive`)
//!   becomes an `accept` rule on its address, any port (a peer's port is its own
//!   ephemeral one). A reply to such a peer is not an outbound rule: the accept
//!   allows it.
//! - **Self connections** (`"rule":"self"`) need no rule, unless a listener of the
//!   instance also accepted someone else: its address then gets a `listen` rule.
//! - **The special-address preset stays on**: a use it refused is listed as a rule
//!   commented out, naming the preset's kind, with a warning.
//!
//! The default is exact: one rule per host and port. [`Group::ports`] folds the ports
//! of one host into a list or range, [`Group::hosts`] the names of one domain into
//! `*.domain`. Output is sorted, each rule with a comment counting the uses it covers.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use super::{Direction, UseKind};

/// One line of an audit file, as `enforce::AuditLog` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuditRecord {
    /// The instance that made the use.
    pub instance: String,
    /// What it tried (`use`).
    #[serde(rename = "use")]
    pub use_kind: RecordedUse,
    /// The socket address, or the address a lookup answered.
    #[serde(default)]
    pub address: Option<String>,
    /// The name looked up.
    #[serde(default)]
    pub name: Option<String>,
    /// `allow`, `deny`, `would-deny`, `evicted`.
    pub verdict: String,
    /// The deciding rule's text, `default-deny`, `self`, `special:…`, …
    pub rule: String,
}

/// A use an audit line records: a guest's use, or a reload of the run's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordedUse {
    /// A guest's use (or a grant it lost), by the audit's word for it.
    Use(UseKind),
    /// `policy-reload`: the run's policy replaced, or a reload refused.
    PolicyReload,
}

impl RecordedUse {
    /// The word the audit uses.
    fn word(self) -> &'static str {
        match self {
            Self::Use(use_kind) => use_kind.word(),
            Self::PolicyReload => "policy-reload",
        }
    }
}

impl<'de> Deserialize<'de> for RecordedUse {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        if word == "policy-reload" {
            return Ok(Self::PolicyReload);
        }
        UseKind::from_word(&word)
            .map(Self::Use)
            .ok_or_else(|| serde::de::Error::unknown_variant(&word, &UseKind::WORDS))
    }
}

fn is_udp(use_kind: UseKind) -> bool {
    matches!(
        use_kind,
        UseKind::UdpBind | UseKind::UdpSend | UseKind::UdpReceive
    )
}

/// Parses one audit line; `Ok(None)` for a blank line. The error says what is wrong
/// with it, in one line, for the caller to prefix with the file and line number.
pub fn parse_record(line: &str) -> Result<Option<AuditRecord>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let record: AuditRecord = serde_json::from_str(line).map_err(|err| {
        if err.is_eof() {
            "a truncated audit line".to_owned()
        } else {
            format!("not an audit line: {err}")
        }
    })?;
    let needs_address = !matches!(
        record.use_kind,
        RecordedUse::Use(UseKind::Lookup) | RecordedUse::PolicyReload
    );
    match (&record.address, record.use_kind) {
        (None, _) if needs_address => Err(format!(
            "a `{}` line without an address",
            record.use_kind.word()
        )),
        (Some(address), RecordedUse::Use(UseKind::LookupAnswer | UseKind::GrantEvicted)) => {
            address
                .parse::<IpAddr>()
                .map_err(|_| format!("`{address}` is not an IP address"))?;
            Ok(Some(record))
        }
        (Some(address), _) => {
            address
                .parse::<SocketAddr>()
                .map_err(|_| format!("`{address}` is not a socket address"))?;
            Ok(Some(record))
        }
        (None, _) => Ok(Some(record)),
    }
}

/// How far [`suggest`] folds rules together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Group {
    /// Many ports of one host become one rule with a list or range.
    pub ports: bool,
    /// Many names of one domain become one `*.domain` rule.
    pub hosts: bool,
}

/// What a rule is on: a name or an address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Target {
    Name(String),
    Ip(IpAddr),
    /// `*.domain`, from [`Group::hosts`].
    Domain(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name),
            Self::Domain(domain) => write!(f, "*.{domain}"),
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// A port, or any port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Port {
    One(u16),
    Any,
}

/// One use a rule must allow: its direction, scheme, target and port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Need {
    direction: Direction,
    udp: bool,
    target: Target,
    port: Port,
}

/// How many uses of each kind a rule covers.
type Counts = BTreeMap<UseKind, u64>;

/// One suggested rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuggestedRule {
    /// Its direction (`allow`, `listen`, `accept`).
    pub direction: Direction,
    /// Its text, as `--policy` and the flags read it.
    pub rule: String,
    /// The uses it covers, by kind.
    pub uses: Vec<(String, u64)>,
    /// Why it is commented out (the special-address preset's kind), if it is.
    pub refused_by: Option<String>,
    /// Whether its port is any port because the system picked the port.
    pub any_port_bound: bool,
}

impl SuggestedRule {
    /// The comment after the rule: the uses it covers.
    fn comment(&self) -> String {
        let total: u64 = self.uses.iter().map(|(_, count)| count).sum();
        let kinds: Vec<String> = self
            .uses
            .iter()
            .map(|(word, count)| format!("{word} {count}"))
            .collect();
        let noun = if total == 1 { "use" } else { "uses" };
        let mut comment = format!("{total} {noun}: {}", kinds.join(", "));
        if self.any_port_bound {
            comment.push_str("; bound to port 0, so any port");
        }
        if let Some(special) = &self.refused_by {
            let _ = write!(
                comment,
                "; refused by the special-address preset ({special}): uncomment to allow"
            );
        }
        comment
    }
}

/// The least policy that allows what an audit recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Suggestion {
    /// The rules, sorted by direction (`allow`, `listen`, `accept`), then text.
    pub rules: Vec<SuggestedRule>,
    /// What the reader should know: uses the preset refused, deny rules the audit
    /// shows refusing something the suggestion allows.
    pub warnings: Vec<String>,
    /// The audit lines read.
    pub lines: u64,
    /// The uses that needed no rule (self connections).
    pub self_uses: u64,
}

impl Suggestion {
    /// The rules in use (not commented out) of one direction.
    pub fn active(&self, direction: Direction) -> impl Iterator<Item = &SuggestedRule> {
        self.rules
            .iter()
            .filter(move |rule| rule.direction == direction && rule.refused_by.is_none())
    }

    /// The suggestion as a policy file (`--policy` reads it), with `header` as its
    /// first comment lines.
    pub fn to_toml(&self, header: &str) -> String {
        let mut out = String::new();
        for line in header.lines() {
            let _ = writeln!(out, "# {line}");
        }
        for direction in [Direction::Allow, Direction::Listen, Direction::Accept] {
            let rules: Vec<&SuggestedRule> = self
                .rules
                .iter()
                .filter(|rule| rule.direction == direction)
                .collect();
            if rules.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{} = [", direction.key());
            for rule in rules {
                let quoted = format!("\"{}\",", rule.rule);
                let open = if rule.refused_by.is_some() { "# " } else { "" };
                let _ = writeln!(out, "  {open}{quoted:<32} # {}", rule.comment());
            }
            out.push_str("]\n");
        }
        out
    }

    /// The suggestion as the shim's pod annotations (`sockbox.io/allow`, …), with
    /// `header` as comment lines and the refused rules as comments.
    pub fn to_annotations(&self, header: &str) -> String {
        let mut out = String::new();
        for line in header.lines() {
            let _ = writeln!(out, "# {line}");
        }
        for direction in [Direction::Allow, Direction::Listen, Direction::Accept] {
            let key = match direction {
                Direction::Listen => "sockbox.io/allow-listen",
                Direction::Accept => "sockbox.io/allow-accept",
                _ => "sockbox.io/allow",
            };
            for rule in self.rules.iter().filter(|rule| rule.direction == direction) {
                if rule.refused_by.is_some() {
                    let _ = writeln!(out, "# {key}: {} ({})", rule.rule, rule.comment());
                }
            }
            let active: Vec<&str> = self.active(direction).map(|rule| &*rule.rule).collect();
            if !active.is_empty() {
                let _ = writeln!(out, "{key}: \"{}\"", active.join(","));
            }
        }
        out
    }
}

/// What one instance's audit lines say so far.
#[derive(Debug, Default)]
struct Instance {
    /// The name each address was last answered for.
    answers: HashMap<IpAddr, String>,
    /// Names looked up, and how many times.
    lookups: BTreeMap<String, u64>,
    /// Names whose answers a use went to.
    used_names: HashSet<String>,
    /// Peers the instance sent datagrams to (their replies need no rule).
    sent_to: HashSet<SocketAddr>,
    /// Peers whose datagrams arrived unasked (datagrams back to them are replies).
    reply_peers: HashSet<SocketAddr>,
    /// The address of a bind to port 0, until the line with the port it got.
    pending_port0: HashMap<bool, IpAddr>,
    /// Addresses bound on a port the system picked.
    picked: HashSet<(bool, SocketAddr)>,
    /// Listeners and binds allowed as self connections, by transport.
    self_inbound: Vec<(bool, SocketAddr, UseKind)>,
    /// Whether the instance accepted someone other than itself, by transport.
    accepted_others: [bool; 2],
    /// Whether the instance bound as a client does (the unspecified address, port 0)
    /// and got a port, by transport.
    client_bound: [bool; 2],
}

/// The least policy allowing every use `audits` recorded. Each audit is one run's: an
/// address answered for a name in one run says nothing of another run's connections.
pub fn suggest<A>(audits: impl IntoIterator<Item = A>, group: Group) -> Suggestion
where
    A: IntoIterator<Item = AuditRecord>,
{
    let mut needs: BTreeMap<Need, Counts> = BTreeMap::new();
    let mut refused: BTreeMap<Need, (Counts, String)> = BTreeMap::new();
    let mut instances: BTreeMap<(usize, String), Instance> = BTreeMap::new();
    let mut warnings = BTreeSet::new();
    let mut suggestion = Suggestion::default();
    let mut add = |need: Need, use_kind: UseKind, rule: &str| {
        if let Some(special) = rule.strip_prefix("special:") {
            let entry = refused
                .entry(need)
                .or_insert_with(|| (Counts::new(), format!("special:{special}")));
            *entry.0.entry(use_kind).or_default() += 1;
        } else {
            *needs.entry(need).or_default().entry(use_kind).or_default() += 1;
        }
    };
    let records = audits
        .into_iter()
        .enumerate()
        .flat_map(|(audit, records)| records.into_iter().map(move |record| (audit, record)));
    for (audit, record) in records {
        suggestion.lines += 1;
        let RecordedUse::Use(use_kind) = record.use_kind else {
            // A policy reload: no use of the guest's.
            continue;
        };
        let instance = instances
            .entry((audit, record.instance.clone()))
            .or_default();
        let udp = is_udp(use_kind);
        if record.verdict == "deny"
            && !matches!(&*record.rule, "default-deny" | "max-sockets")
            && !record.rule.starts_with("special:")
        {
            warnings.insert(format!(
                "the audit shows `{}` denying a {}; the suggestion allows it",
                record.rule,
                use_kind.word()
            ));
        }
        let addr = record.address.as_deref().and_then(|a| a.parse().ok());
        match use_kind {
            UseKind::GrantEvicted => {}
            UseKind::Lookup => {
                if let Some(name) = record.name {
                    *instance.lookups.entry(name).or_default() += 1;
                }
            }
            UseKind::LookupAnswer => {
                let ip = record.address.as_deref().and_then(|a| a.parse().ok());
                if let (Some(ip), Some(name)) = (ip, record.name) {
                    instance.answers.insert(canonical(ip), name);
                }
            }
            UseKind::TcpConnect | UseKind::UdpSend => {
                let Some(addr) = addr.map(canonical_addr) else {
                    continue;
                };
                if record.rule == "self" {
                    suggestion.self_uses += 1;
                    continue;
                }
                if use_kind == UseKind::UdpSend && instance.reply_peers.contains(&addr) {
                    // A reply to a peer that reached the instance first.
                    add(accept_need(true, addr), use_kind, &record.rule);
                    continue;
                }
                if udp {
                    instance.sent_to.insert(addr);
                }
                let target = match instance.answers.get(&addr.ip()) {
                    Some(name) => {
                        instance.used_names.insert(name.clone());
                        Target::Name(name.clone())
                    }
                    None => Target::Ip(addr.ip()),
                };
                let need = Need {
                    direction: Direction::Allow,
                    udp,
                    target,
                    port: port_of(addr),
                };
                add(need, use_kind, &record.rule);
            }
            UseKind::TcpAccept | UseKind::UdpReceive => {
                let Some(addr) = addr.map(canonical_addr) else {
                    continue;
                };
                if record.rule == "self" {
                    suggestion.self_uses += 1;
                    continue;
                }
                if udp && instance.sent_to.contains(&addr) {
                    // An answer from a peer the instance sent to: its allow rule covers it.
                    continue;
                }
                if udp {
                    instance.reply_peers.insert(addr);
                }
                instance.accepted_others[usize::from(udp)] = true;
                add(accept_need(udp, addr), use_kind, &record.rule);
            }
            UseKind::TcpBind | UseKind::UdpBind | UseKind::TcpListen => {
                let Some(addr) = addr else { continue };
                let ip = canonical(addr.ip());
                if use_kind != UseKind::TcpListen && addr.port() == 0 {
                    instance.pending_port0.insert(udp, ip);
                    continue;
                }
                if use_kind != UseKind::TcpListen && instance.pending_port0.get(&udp) == Some(&ip) {
                    instance.pending_port0.remove(&udp);
                    instance.picked.insert((udp, addr));
                    if ip.is_unspecified() {
                        // The client form: the outbound rule of the scheme allows it.
                        instance.client_bound[usize::from(udp)] = true;
                        continue;
                    }
                }
                if record.rule == "self" {
                    instance.self_inbound.push((udp, addr, use_kind));
                    continue;
                }
                let need = listen_need(instance, udp, addr);
                add(need, use_kind, &record.rule);
            }
        }
    }
    for instance in instances.values_mut() {
        // A bind to port 0 refused before it got a port.
        for (udp, ip) in std::mem::take(&mut instance.pending_port0) {
            if !ip.is_unspecified() {
                let use_kind = if udp {
                    UseKind::UdpBind
                } else {
                    UseKind::TcpBind
                };
                let need = Need {
                    direction: Direction::Listen,
                    udp,
                    target: Target::Ip(ip),
                    port: Port::Any,
                };
                *needs.entry(need).or_default().entry(use_kind).or_default() += 1;
            }
        }
        // A self listener that also accepted others needs its listen rule.
        for (udp, addr, use_kind) in std::mem::take(&mut instance.self_inbound) {
            if instance.accepted_others[usize::from(udp)] {
                let need = listen_need(instance, udp, addr);
                *needs.entry(need).or_default().entry(use_kind).or_default() += 1;
            } else {
                suggestion.self_uses += 1;
            }
        }
        // The lookups: counted on the rules of their names, or a rule of their own.
        for (name, count) in &instance.lookups {
            let covering = needs.iter_mut().find(|(need, _)| {
                need.direction == Direction::Allow && need.target == Target::Name(name.clone())
            });
            match covering {
                Some((_, counts)) => *counts.entry(UseKind::Lookup).or_default() += count,
                None => {
                    let need = Need {
                        direction: Direction::Allow,
                        udp: false,
                        target: Target::Name(name.clone()),
                        port: Port::Any,
                    };
                    *needs
                        .entry(need)
                        .or_default()
                        .entry(UseKind::Lookup)
                        .or_default() += count;
                }
            }
        }
    }
    for (need, (_, special)) in &refused {
        warnings.insert(format!(
            "the special-address preset refused {} ({special}); the rule is listed commented out",
            describe(need)
        ));
    }
    // A client's bind (the unspecified address, port 0) is allowed by an outbound rule
    // of its scheme; an instance that bound so and never sent needs a listen rule.
    for udp in [false, true] {
        let client_bound = instances
            .values()
            .any(|instance| instance.client_bound[usize::from(udp)]);
        let outbound = needs
            .keys()
            .any(|need| need.direction == Direction::Allow && need.udp == udp);
        if client_bound && !outbound {
            let unspecified = IpAddr::from([0, 0, 0, 0]);
            let need = Need {
                direction: Direction::Listen,
                udp,
                target: Target::Ip(unspecified),
                port: Port::Any,
            };
            let use_kind = if udp {
                UseKind::UdpBind
            } else {
                UseKind::TcpBind
            };
            *needs.entry(need).or_default().entry(use_kind).or_default() += 1;
        }
    }
    suggestion.rules = fold(needs, group)
        .into_iter()
        .map(|(rule, counts, any)| SuggestedRule {
            direction: rule.0,
            rule: rule.1,
            uses: words(&counts),
            refused_by: None,
            any_port_bound: any,
        })
        .collect();
    suggestion.rules.extend(
        refused
            .into_iter()
            .map(|(need, (counts, special))| SuggestedRule {
                direction: need.direction,
                rule: rule_text(&need.target, need.udp, &[need.port]),
                uses: words(&counts),
                refused_by: Some(special),
                any_port_bound: false,
            }),
    );
    suggestion.rules.sort_by(|a, b| {
        (a.direction, a.refused_by.is_some(), &a.rule).cmp(&(
            b.direction,
            b.refused_by.is_some(),
            &b.rule,
        ))
    });
    suggestion.warnings = warnings.into_iter().collect();
    suggestion
}

/// The listen rule a bind or listen on `addr` needs: on its port, or any port when the
/// system picked it.
fn listen_need(instance: &Instance, udp: bool, addr: SocketAddr) -> Need {
    let port = if instance.picked.contains(&(udp, addr)) {
        Port::Any
    } else {
        port_of(addr)
    };
    Need {
        direction: Direction::Listen,
        udp,
        target: Target::Ip(canonical(addr.ip())),
        port,
    }
}

/// The accept rule a peer at `addr` needs: its address, any port.
fn accept_need(udp: bool, addr: SocketAddr) -> Need {
    Need {
        direction: Direction::Accept,
        udp,
        target: Target::Ip(addr.ip()),
        port: Port::Any,
    }
}

fn port_of(addr: SocketAddr) -> Port {
    match addr.port() {
        0 => Port::Any,
        port => Port::One(port),
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical(addr.ip()), addr.port())
}

fn describe(need: &Need) -> String {
    let scheme = if need.udp { "udp" } else { "tcp" };
    let port = match need.port {
        Port::One(port) => port.to_string(),
        Port::Any => "*".to_owned(),
    };
    format!("{scheme} {} {}:{port}", need.direction.key(), need.target)
}

fn words(counts: &Counts) -> Vec<(String, u64)> {
    counts
        .iter()
        .map(|(use_kind, count)| (use_kind.word().to_owned(), *count))
        .collect()
}

/// A rule's text: `tcp://TARGET:PORTS`.
fn rule_text(target: &Target, udp: bool, ports: &[Port]) -> String {
    let scheme = if udp { "udp" } else { "tcp" };
    format!("{scheme}://{target}:{}", ports_text(ports))
}

/// `443`, `*`, `8000-8002` or `{80,443,8000-8002}`.
fn ports_text(ports: &[Port]) -> String {
    if ports.contains(&Port::Any) || ports.is_empty() {
        return "*".to_owned();
    }
    let mut numbers: Vec<u16> = ports
        .iter()
        .filter_map(|port| match port {
            Port::One(port) => Some(*port),
            Port::Any => None,
        })
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for port in numbers {
        match runs.last_mut() {
            Some((_, end)) if u32::from(*end) + 1 == u32::from(port) => *end = port,
            _ => runs.push((port, port)),
        }
    }
    let items: Vec<String> = runs
        .iter()
        .map(|&(start, end)| match end - start {
            0 => start.to_string(),
            _ => format!("{start}-{end}"),
        })
        .collect();
    match items.as_slice() {
        [one] => one.clone(),
        _ => format!("{{{}}}", items.join(",")),
    }
}

/// The needs folded into rules as `group` asks: (direction, text), the uses they
/// cover, and whether a port is any because the system picked it.
fn fold(needs: BTreeMap<Need, Counts>, group: Group) -> Vec<((Direction, String), Counts, bool)> {
    // (direction, udp, target) -> ports and counts.
    type Key = (Direction, bool, Target);
    let mut by_host: BTreeMap<Key, Vec<(Port, Counts)>> = BTreeMap::new();
    for (need, counts) in needs {
        by_host
            .entry((need.direction, need.udp, need.target))
            .or_default()
            .push((need.port, counts));
    }
    if group.hosts {
        by_host = fold_hosts(by_host);
    }
    let mut rules = Vec::new();
    for ((direction, udp, target), ports) in by_host {
        let any =
            direction == Direction::Listen && ports.iter().any(|(port, _)| *port == Port::Any);
        if group.ports || ports.iter().any(|(port, _)| *port == Port::Any) {
            let mut counts = Counts::new();
            let list: Vec<Port> = ports.iter().map(|(port, _)| *port).collect();
            for (_, each) in &ports {
                merge(&mut counts, each);
            }
            rules.push(((direction, rule_text(&target, udp, &list)), counts, any));
        } else {
            for (port, counts) in ports {
                rules.push(((direction, rule_text(&target, udp, &[port])), counts, false));
            }
        }
    }
    rules
}

/// Folds the names of one domain (two or more, same direction, scheme and ports) into
/// `*.domain`.
fn fold_hosts(
    by_host: BTreeMap<(Direction, bool, Target), Vec<(Port, Counts)>>,
) -> BTreeMap<(Direction, bool, Target), Vec<(Port, Counts)>> {
    let mut domains: BTreeMap<(Direction, bool, String, Vec<Port>), Vec<Target>> = BTreeMap::new();
    for ((direction, udp, target), ports) in &by_host {
        if let Target::Name(name) = target
            && let Some((_, parent)) = name.split_once('.')
            && parent.contains('.')
        {
            let list = ports.iter().map(|(port, _)| *port).collect();
            domains
                .entry((*direction, *udp, parent.to_owned(), list))
                .or_default()
                .push(target.clone());
        }
    }
    let mut out = by_host;
    for ((direction, udp, parent, _), names) in domains {
        if names.len() < 2 {
            continue;
        }
        let mut merged: BTreeMap<Port, Counts> = BTreeMap::new();
        for name in names {
            for (port, counts) in out.remove(&(direction, udp, name)).unwrap_or_default() {
                merge(merged.entry(port).or_default(), &counts);
            }
        }
        out.insert(
            (direction, udp, Target::Domain(parent)),
            merged.into_iter().collect(),
        );
    }
    out
}

fn merge(into: &mut Counts, from: &Counts) {
    for (use_kind, count) in from {
        *into.entry(*use_kind).or_default() += count;
    }
}

//! Network policy: which socket uses and name lookups a guest may make. (Over 400
//! lines: `Policy`'s builders and its decision procedure read best beside the table
//! below; rules, the matcher, files, parsing and verdicts are modules of their own.)
//!
//! A [`Policy`] holds rules in four directions and decides every socket use that
//! wasmtime-wasi reports, and every name lookup sockbox's resolver is asked for. A rule
//! is `SCHEME://HOST:PORTS` (see [`Rule`] for the grammar). Nothing is allowed unless a
//! rule allows it, and a `deny` rule wins over every allow.
//!
//! | direction | flag / file key | covers |
//! |---|---|---|
//! | [`Direction::Allow`] | `--allow` / `allow` | outbound: TCP connect, UDP send (and replies from those peers) |
//! | [`Direction::Listen`] | `--allow-listen` / `listen` | inbound: TCP bind and listen, UDP bind for receiving |
//! | [`Direction::Accept`] | `--allow-accept` / `accept` | which peers a listener may accept (default: any, once listening is allowed) |
//! | [`Direction::Deny`] | `--deny` / `deny` | any use of what it matches, in every direction |
//!
//! How each [`SocketAddrUse`] is decided, after `deny` rules (the first matching deny
//! rule denies):
//!
//! | use | address wasmtime-wasi passes | allowed by |
//! |---|---|---|
//! | `TcpConnect` | the remote address | the first `allow` rule matching it |
//! | `UdpSend` | the remote address | the first `allow` rule matching it; else a reply to a peer received from under a `listen` or `accept` rule ([`Enforcer::check`](crate::enforce::Enforcer::check)) |
//! | `TcpBind`, `UdpBind` | the local address | the first `listen` rule matching it |
//! | `TcpBind`, `UdpBind` to the unspecified address, port 0 | the implicit bind before a connect, a send or a `listen` without `bind` | a `listen` rule matching it, else the first `allow` rule of that scheme: the connect or send that follows is judged itself |
//! | `TcpListen` | the bound address (unspecified, port 0, without an earlier bind) | the first `listen` rule matching it |
//! | `TcpAccept` | the peer's address | the first `accept` rule of tcp matching it; with no tcp `accept` rule, the first tcp `listen` rule |
//! | `UdpReceive` | the sender's address | an `allow` rule matching it (a reply from a peer the guest may send to), else as `TcpAccept`, over udp |
//!
//! **Self connections** ([`Decider::SelfConnection`], `"rule":"self"` in the audit):
//! where no rule allows it, an instance may still bind a TCP socket on a loopback
//! address with port 0, listen on it, connect to that listener of its own and accept
//! its own connections on it — the loopback socket pair Python's
//! `socket.socketpair()` (and so every asyncio event loop) makes on WASI. Nothing else
//! is granted: a connection from anyone else is judged as any accept, a connect to any
//! other port as any connect. Binds are decided here ([`is_self_bind`]); which sockets
//! are the instance's own, its enforcer knows ([`Policy::decide_own`]). `--no-self`
//! turns them off.
//!
//! Addresses are judged as what they mean: an IPv4-mapped IPv6 address
//! (`::ffff:10.0.0.1`) as the IPv4 address it carries; the unspecified address
//! (`0.0.0.0`, `::`: every local address) only by `*`, a `/0` network or the
//! unspecified address itself; port 0 (any port) only by `*`. IPv6 scope ids are
//! ignored. `[::]/0` covers IPv6 only: IPv4 is covered by IPv4 rules (or `*`).
//!
//! Name rules (`tcp://example.com:443`, `tcp://*.example.com:443`) work through
//! lookups: a lookup succeeds only for a name some `allow` or `listen` rule covers
//! (any other name gets `name-unresolvable`, the error a missing name gets), and the
//! addresses it returns become matchable by the rules covering that name, for that
//! instance only — see [`NameGrants`](crate::enforce::NameGrants).

mod decision;
mod file;
mod matcher;
mod nat64;
mod parse;
mod publish;
mod rule;
#[cfg(test)]
mod self_tests;
mod special;
#[cfg(test)]
mod spelling_tests;
pub mod suggest;
#[cfg(test)]
mod suggest_tests;
#[cfg(test)]
pub(crate) mod tests;
mod verdict;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use decision::{DecidedBy, Decision, Subject, UseKind};
pub use file::PolicyFileError;
pub use nat64::Nat64Prefix;
pub use parse::{RuleError, normalize_name};
pub use publish::{Publish, PublishError};
pub use rule::{Host, Ports, Rule, Scheme, Transport};
pub use special::{Special, embedded_v4};
pub use verdict::{Decider, Direction, Mode, RuleRef, Verdict};
pub use wasmtime_wasi::sockets::SocketAddrUse;

use matcher::Table;

/// Reads a use as people write it — `connect tcp`, `bind udp`, … — as the
/// [`SocketAddrUse`] wasmtime-wasi reports for it.
pub fn parse_use(verb: &str, transport: &str) -> Result<SocketAddrUse, String> {
    use SocketAddrUse as U;
    Ok(match (verb, transport) {
        ("connect", "tcp") => U::TcpConnect,
        ("bind", "tcp") => U::TcpBind,
        ("listen", "tcp") => U::TcpListen,
        ("accept", "tcp") => U::TcpAccept,
        ("bind", "udp") => U::UdpBind,
        ("send", "udp") => U::UdpSend,
        ("receive", "udp") => U::UdpReceive,
        (_, "tcp" | "udp") => {
            return Err(format!(
                "`{verb} {transport}` is not a use: tcp has connect, bind, listen, accept; udp has bind, send, receive"
            ));
        }
        _ => return Err(format!("`{transport}` is not a transport: use tcp or udp")),
    })
}

/// A set of rules deciding every socket use and lookup of a guest instance.
///
/// ```
/// use sockbox_host::policy::{Decider, Direction, Policy, SocketAddrUse};
///
/// let policy = Policy::deny_all()
///     .allow("tcp://10.0.0.0/8:443")?
///     .allow_listen("tcp://127.0.0.1:*")?
///     .deny("tcp://10.0.0.13:*")?;
///
/// let verdict = policy.decide("10.1.2.3:443".parse()?, SocketAddrUse::TcpConnect);
/// assert!(verdict.allowed);
/// assert_eq!(policy.describe(verdict.by), "--allow tcp://10.0.0.0/8:443");
///
/// let verdict = policy.decide("10.0.0.13:443".parse()?, SocketAddrUse::TcpConnect);
/// assert!(!verdict.allowed);
/// assert_eq!(policy.describe(verdict.by), "--deny tcp://10.0.0.13:*");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    inherit: bool,
    mode: Mode,
    allow_special: bool,
    /// Self connections are off (`--no-self`).
    no_self: bool,
    /// The network's own NAT64 prefixes, beside the well-known one.
    nat64: Vec<Nat64Prefix>,
    publish: Vec<Publish>,
    rules: [Vec<Rule>; 4],
    tables: [Table; 4],
}

impl Policy {
    /// Returns a policy that allows nothing.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Returns a policy that allows every use, like `wasmtime run -S inherit-network`;
    /// `deny` rules added to it still refuse what they match.
    pub fn inherit_network() -> Self {
        Self::default().with_inherit_network()
    }

    /// Makes this policy allow every use that no `deny` rule refuses.
    pub fn with_inherit_network(mut self) -> Self {
        self.inherit = true;
        self
    }

    /// Sets whether denials take effect ([`Mode::Enforce`], the default) or are only
    /// recorded as `would-deny` ([`Mode::Audit`]).
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Returns whether denials take effect or are only recorded.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Turns the special-address preset off: metadata endpoints, link-local, multicast,
    /// broadcast and the unspecified address are then judged by the rules alone.
    pub fn with_special_allowed(mut self) -> Self {
        self.allow_special = true;
        self
    }

    /// Reports whether the special-address preset is off.
    pub fn allows_special(&self) -> bool {
        self.allow_special
    }

    /// Turns self connections off (`--no-self`): binding a loopback address on port 0,
    /// and listening on, connecting to and accepting from such a socket of the
    /// instance's own, are then judged by the rules alone.
    pub fn without_self(mut self) -> Self {
        self.no_self = true;
        self
    }

    /// Reports whether self connections are allowed where no rule allows them (the
    /// default): an instance may make a loopback socket pair of its own, as Python's
    /// `socket.socketpair()` does on WASI, without a grant.
    pub fn allows_self(&self) -> bool {
        !self.no_self
    }

    /// Adds a NAT64 prefix of the network's own (`64:ff9b:1::/48`): its addresses carry
    /// an IPv4 address, and are judged by deny rules and the special-address preset as
    /// that address too, as `64:ff9b::/96`'s always are.
    pub fn with_nat64_prefix(mut self, prefix: Nat64Prefix) -> Self {
        self.push_nat64_prefix(prefix);
        self
    }

    /// Adds a NAT64 prefix, in place; see [`Policy::with_nat64_prefix`].
    pub fn push_nat64_prefix(&mut self, prefix: Nat64Prefix) {
        if !self.nat64.contains(&prefix) {
            self.nat64.push(prefix);
        }
    }

    /// Returns the network's own NAT64 prefixes.
    pub fn nat64_prefixes(&self) -> &[Nat64Prefix] {
        &self.nat64
    }

    /// Returns the IPv4 address an IPv6 address (`ip`, canonical) carries, in any
    /// spelling that reaches it: IPv4-compatible, NAT64 (the well-known prefix and the
    /// network's own), 6to4. IPv4-mapped addresses are IPv4 once canonical.
    pub fn carried_v4(&self, ip: IpAddr) -> Option<Ipv4Addr> {
        let IpAddr::V6(v6) = ip else {
            return None;
        };
        embedded_v4(v6).or_else(|| self.nat64.iter().find_map(|prefix| prefix.carried(v6)))
    }

    /// Returns the kind of special address `ip` (canonical) is, in any spelling.
    fn special_of(&self, ip: IpAddr) -> Option<Special> {
        Special::of(ip).or_else(|| {
            self.carried_v4(ip)
                .and_then(|v4| Special::of(IpAddr::V4(v4)))
        })
    }

    /// Publishes a port: the guest's binds to `publish.guest_port` use
    /// `publish.host_port` on the host. A guest port published twice (per transport),
    /// or a host port other than 0 given twice, is an error.
    pub fn with_publish(mut self, publish: Publish) -> Result<Self, PublishError> {
        self.push_publish(publish)?;
        Ok(self)
    }

    /// Publishes a port, in place; see [`Policy::with_publish`].
    pub fn push_publish(&mut self, publish: Publish) -> Result<(), PublishError> {
        for other in &self.publish {
            if other.transport != publish.transport {
                continue;
            }
            if other.guest_port == publish.guest_port {
                return Err(PublishError::new(
                    &publish,
                    format!(
                        "guest port {} is already published ({other})",
                        other.guest_port
                    ),
                ));
            }
            if publish.host_port != 0 && other.host_port == publish.host_port {
                return Err(PublishError::new(
                    &publish,
                    format!("host port {} is already used ({other})", other.host_port),
                ));
            }
        }
        self.publish.push(publish);
        Ok(())
    }

    /// Returns the published ports.
    pub fn published(&self) -> &[Publish] {
        &self.publish
    }

    /// Gives every publication whose host port is 0 the host port `pick` returns for
    /// it (the instances of one run share one: see `sandbox/instances.rs`).
    pub(crate) fn pick_host_ports<E>(
        &mut self,
        mut pick: impl FnMut(Publish) -> Result<u16, E>,
    ) -> Result<(), E> {
        for publish in &mut self.publish {
            if publish.host_port == 0 {
                publish.host_port = pick(*publish)?;
            }
        }
        Ok(())
    }

    /// Takes the host ports `running` picked for its publications of port 0, for the
    /// same publications of this policy (a reload keeps the ports the run bound).
    pub(crate) fn adopt_published(&mut self, running: &Policy) {
        for publish in &mut self.publish {
            if publish.host_port == 0
                && let Some(picked) = running.publication(publish.transport, publish.guest_port)
            {
                publish.host_port = picked.host_port;
            }
        }
    }

    /// Returns the publication of the guest's `port` over `transport`, if it has one.
    pub fn publication(&self, transport: Transport, port: u16) -> Option<Publish> {
        self.publish
            .iter()
            .find(|publish| publish.transport == transport && publish.guest_port == port)
            .copied()
    }

    /// Adds an outbound rule: the guest may connect (TCP) or send (UDP) to what it matches.
    pub fn allow(self, rule: &str) -> Result<Self, RuleError> {
        self.with_rule(Direction::Allow, rule.parse()?)
    }

    /// Adds an inbound rule: the guest may bind and listen on what it matches.
    pub fn allow_listen(self, rule: &str) -> Result<Self, RuleError> {
        self.with_rule(Direction::Listen, rule.parse()?)
    }

    /// Adds an accept rule: listeners may accept peers it matches (once any accept rule
    /// of a scheme exists, only those peers).
    pub fn allow_accept(self, rule: &str) -> Result<Self, RuleError> {
        self.with_rule(Direction::Accept, rule.parse()?)
    }

    /// Adds a deny rule: what it matches is refused, whatever allows it.
    pub fn deny(self, rule: &str) -> Result<Self, RuleError> {
        self.with_rule(Direction::Deny, rule.parse()?)
    }

    /// Adds a parsed rule in `direction`. Accept rules cannot name hosts by DNS name:
    /// a peer's name is not known when it connects.
    pub fn with_rule(mut self, direction: Direction, rule: Rule) -> Result<Self, RuleError> {
        self.push(direction, rule)?;
        Ok(self)
    }

    /// Adds a parsed rule in `direction`, in place; see [`Policy::with_rule`].
    pub fn push(&mut self, direction: Direction, rule: Rule) -> Result<(), RuleError> {
        if direction == Direction::Accept && rule.has_names() {
            return Err(RuleError::misplaced(
                &rule.to_string(),
                "names a host by DNS name, but accept rules match peers by address (a peer's name is not known): use an address, a CIDR or *".into(),
            ));
        }
        let slot = direction.slot();
        self.tables[slot].push(&rule);
        // A deny rule written in an IPv6 spelling of IPv4 addresses (`[64:ff9b::a00:0]/104`)
        // also denies the IPv4 network it carries.
        if direction == Direction::Deny {
            for host in rule.hosts() {
                if let Host::Net(ipnet::IpNet::V6(net)) = host
                    && let Some(carried) = special::embedded_v4_net(*net)
                {
                    self.tables[slot].index_last(carried);
                }
            }
        }
        self.rules[slot].push(rule);
        Ok(())
    }

    /// Reports whether this policy inherits the host's network.
    pub fn inherits_network(&self) -> bool {
        self.inherit
    }

    /// Returns every rule with its place, directions in [`Direction::ALL`] order.
    pub fn rules(&self) -> impl Iterator<Item = (RuleRef, &Rule)> {
        Direction::ALL.into_iter().flat_map(move |direction| {
            self.rules[direction.slot()]
                .iter()
                .enumerate()
                .map(move |(index, rule)| (RuleRef { direction, index }, rule))
        })
    }

    /// Returns the rule `rule` refers to, if it is one of this policy's.
    pub fn rule(&self, rule: RuleRef) -> Option<&Rule> {
        self.rules[rule.direction.slot()].get(rule.index)
    }

    /// Reports whether the policy allows anything at all.
    pub fn is_empty(&self) -> bool {
        !self.inherit
            && self.rules[..Direction::Deny.slot()]
                .iter()
                .all(Vec::is_empty)
    }

    /// Reports whether some use of `transport` could be allowed; if not, wasmtime-wasi
    /// is told to refuse creating such sockets at all.
    pub fn uses(&self, transport: Transport) -> bool {
        self.inherit
            || self.mode == Mode::Audit
            || (transport == Transport::Tcp && self.allows_self())
            || self.table(Direction::Allow).covers(transport)
            || self.table(Direction::Listen).covers(transport)
    }

    /// Reports whether some rule names a host by DNS name: only then do the addresses
    /// lookups granted take part in a decision.
    pub fn has_name_rules(&self) -> bool {
        self.tables.iter().any(Table::has_names)
    }

    /// Reports whether some name lookup could be allowed: a rule names a host or is `*`.
    pub fn uses_names(&self) -> bool {
        self.inherit
            || self.mode == Mode::Audit
            || [Direction::Allow, Direction::Listen]
                .into_iter()
                .flat_map(|direction| &self.rules[direction.slot()])
                .any(|rule| {
                    rule.hosts()
                        .iter()
                        .any(|host| host.is_name() || *host == Host::Any)
                })
    }

    /// Decides one socket use by addresses alone (no lookups have granted anything).
    pub fn decide(&self, addr: SocketAddr, socket_use: SocketAddrUse) -> Verdict {
        self.decide_with(addr, socket_use, &[])
    }

    /// Decides one socket use, with the name rules lookups granted its address to
    /// (`granted`, as [`Grants::rules_for`](crate::enforce::Grants::rules_for) gives
    /// them). Does not allocate, takes no lock.
    pub fn decide_with(
        &self,
        addr: SocketAddr,
        socket_use: SocketAddrUse,
        granted: &[RuleRef],
    ) -> Verdict {
        self.decide_bound(addr, addr, socket_use, granted)
    }

    /// Decides a bind on the address it really got: `bound`, where the guest asked for
    /// `requested` (port 0 asks the system for a port, which a bind's first check
    /// cannot see). Rules match `bound`; a bind that asked for the unspecified address
    /// with port 0 is still the implicit, client-side form, which an `allow` rule of
    /// the scheme allows when no `listen` rule does. `granted`: the name rules lookups
    /// granted `bound`'s address to.
    pub fn decide_bound(
        &self,
        requested: SocketAddr,
        bound: SocketAddr,
        socket_use: SocketAddrUse,
        granted: &[RuleRef],
    ) -> Verdict {
        let ip = bound.ip().to_canonical();
        let port = bound.port();
        let implicit_bind = requested.ip().to_canonical().is_unspecified() && requested.port() == 0;
        let special = |transport| self.decide_special(socket_use, transport, ip, port);
        let verdict = self.decide_use(
            socket_use,
            implicit_bind,
            special,
            |direction, transport| {
                let table = self.table(direction);
                let mut first = table.first_match(direction, transport, ip, port, granted);
                // A deny holds for every spelling of the address: the IPv4 address an
                // IPv6 one carries is denied as itself.
                if direction == Direction::Deny
                    && let Some(v4) = self.carried_v4(ip)
                    && let Some(carried) =
                        table.first_match(direction, transport, IpAddr::V4(v4), port, &[])
                {
                    first = Some(first.map_or(carried, |first| first.min(carried)));
                }
                first.map(|index| RuleRef {
                    direction,
                    index: index as usize,
                })
            },
        );
        if is_self_bind(requested, socket_use) {
            self.or_self(verdict)
        } else {
            verdict
        }
    }

    /// Decides a use of the instance's own self-connection sockets: listening on a
    /// socket it bound on a loopback address with port 0, connecting to such a
    /// listener, or accepting from a socket of its own that connected to one. The rules
    /// decide first (a `deny` rule still refuses, an `allow` rule that covers it decides
    /// it); where none allows it, self connections allow it unless they are off
    /// (`--no-self`). Which sockets are the instance's own, the enforcer knows.
    pub fn decide_own(
        &self,
        addr: SocketAddr,
        socket_use: SocketAddrUse,
        granted: &[RuleRef],
    ) -> Verdict {
        use SocketAddrUse as U;
        let verdict = self.decide_with(addr, socket_use, granted);
        if matches!(socket_use, U::TcpListen | U::TcpConnect | U::TcpAccept) {
            self.or_self(verdict)
        } else {
            verdict
        }
    }

    /// `verdict`, or allowed as a self connection where only the default denied it.
    fn or_self(&self, verdict: Verdict) -> Verdict {
        match verdict.by {
            Decider::DefaultDeny if self.allows_self() => Verdict::allow(Decider::SelfConnection),
            _ => verdict,
        }
    }

    /// Decides a socket use on whatever addresses `name` resolves to, on `port`: as the
    /// use would be decided once a lookup of `name` has granted them. Rules by address
    /// do not apply (which addresses the name has is not known here), `*` does.
    pub fn decide_name(&self, name: &str, port: u16, socket_use: SocketAddrUse) -> Verdict {
        let name = normalize_name(name).unwrap_or_else(|_| name.to_ascii_lowercase());
        self.decide_use(
            socket_use,
            false,
            |_| None,
            |direction, transport| {
                self.rules[direction.slot()]
                    .iter()
                    .position(|rule| {
                        rule.scheme().covers(transport)
                            && rule.matches_name(&name)
                            && rule.ports().contains(port)
                    })
                    .map(|index| RuleRef { direction, index })
            },
        )
    }

    /// The special-address preset's verdict on a use reaching out to `ip`: `None` when
    /// the preset has nothing to say (off, not an outbound use, not a special address);
    /// else allowed by the first `allow` rule naming the address explicitly
    /// ([`Special::explicit`]), or denied by the preset.
    fn decide_special(
        &self,
        socket_use: SocketAddrUse,
        transport: Transport,
        ip: IpAddr,
        port: u16,
    ) -> Option<Verdict> {
        use SocketAddrUse as U;
        if self.allow_special || !matches!(socket_use, U::TcpConnect | U::UdpSend) {
            return None;
        }
        let special = self.special_of(ip)?;
        let explicit = self.explicit_rule(special, ip, |rule| {
            rule.scheme().covers(transport) && rule.ports().contains(port)
        });
        Some(match explicit {
            Some(rule) => Verdict::allow(rule),
            None => Verdict::deny(Decider::Special(special)),
        })
    }

    /// The first `allow` rule that names `ip`, a `special` address, explicitly and
    /// passes `fits`.
    fn explicit_rule(
        &self,
        special: Special,
        ip: IpAddr,
        fits: impl Fn(&Rule) -> bool,
    ) -> Option<Decider> {
        self.rules[Direction::Allow.slot()]
            .iter()
            .position(|rule| {
                fits(rule)
                    && rule.hosts().iter().any(|host| {
                        matches!(host, Host::Net(net) if net.contains(&ip) && special.explicit(*net))
                    })
            })
            .map(|index| {
                Decider::Rule(RuleRef {
                    direction: Direction::Allow,
                    index,
                })
            })
    }

    /// Decides one address an allowed lookup of `name` returned, before the guest sees
    /// it (a defence against DNS rebinding): refused when a `deny` rule matching the
    /// address covers every use the rules covering `name` grant (their schemes and
    /// ports; under `inherit_network`, every use), or when it is a special address no
    /// `allow` rule names explicitly and some rule covering `name` reaches out
    /// (`allow`, or `inherit_network`). Else allowed by the first rule covering `name`.
    pub fn decide_answer(&self, name: &str, addr: IpAddr) -> Verdict {
        let ip = addr.to_canonical();
        let name = normalize_name(name).unwrap_or_else(|_| name.to_ascii_lowercase());
        let covering: Vec<(RuleRef, &Rule)> = self
            .rules()
            .filter(|(rule_ref, rule)| {
                matches!(rule_ref.direction, Direction::Allow | Direction::Listen)
                    && rule.matches_name(&name)
            })
            .collect();
        let denies_all = |deny: &Rule| {
            if self.inherit {
                return deny.scheme() == Scheme::Any && *deny.ports() == Ports::Any;
            }
            covering.iter().all(|(_, rule)| {
                (deny.scheme() == Scheme::Any || deny.scheme() == rule.scheme())
                    && deny.ports().covers(rule.ports())
            })
        };
        let carried = self.carried_v4(ip).map(IpAddr::V4);
        let denied = self.rules[Direction::Deny.slot()].iter().position(|deny| {
            denies_all(deny)
                && deny.hosts().iter().any(|host| match host {
                    Host::Any => true,
                    Host::Net(net) => {
                        net.contains(&ip)
                            || carried.is_some_and(|v4| net.contains(&v4))
                            || matches!(net, ipnet::IpNet::V6(v6)
                                if special::embedded_v4_net(*v6).is_some_and(|v4| v4.contains(&ip)))
                    }
                    Host::Name(_) | Host::Suffix(_) => false,
                })
        });
        if let Some(index) = denied {
            return Verdict::deny(Decider::Rule(RuleRef {
                direction: Direction::Deny,
                index,
            }));
        }
        let outbound = self.inherit
            || covering
                .iter()
                .any(|(rule_ref, _)| rule_ref.direction == Direction::Allow);
        if !self.allow_special
            && outbound
            && let Some(special) = self.special_of(ip)
        {
            return match self.explicit_rule(special, ip, |_| true) {
                Some(rule) => Verdict::allow(rule),
                None => Verdict::deny(Decider::Special(special)),
            };
        }
        match covering.first() {
            Some(&(rule_ref, _)) => Verdict::allow(Decider::Rule(rule_ref)),
            None if self.inherit => Verdict::allow(Decider::InheritNetwork),
            None => Verdict::deny(Decider::DefaultDeny),
        }
    }

    /// The decision procedure, given the special-address preset's say and how to find
    /// the first rule of a direction that matches the subject; `implicit_bind` when the
    /// subject is the unspecified address with port 0.
    fn decide_use(
        &self,
        socket_use: SocketAddrUse,
        implicit_bind: bool,
        special: impl Fn(Transport) -> Option<Verdict>,
        find: impl Fn(Direction, Transport) -> Option<RuleRef>,
    ) -> Verdict {
        use SocketAddrUse as U;
        let transport = match socket_use {
            U::TcpBind | U::TcpListen | U::TcpAccept | U::TcpConnect => Transport::Tcp,
            U::UdpBind | U::UdpSend | U::UdpReceive => Transport::Udp,
        };
        let find = |direction| find(direction, transport).map(Decider::Rule);
        if let Some(rule) = find(Direction::Deny) {
            return Verdict::deny(rule);
        }
        if let Some(verdict) = special(transport) {
            return verdict;
        }
        if self.inherit {
            return Verdict::allow(Decider::InheritNetwork);
        }
        // Accepting (TCP) or receiving unsolicited datagrams (UDP): only once some listen
        // rule of the transport exists; then by accept rules, if it has any.
        let accept = || {
            let listening = self.first_for(Direction::Listen, transport)?;
            if self.table(Direction::Accept).covers(transport) {
                find(Direction::Accept)
            } else {
                Some(listening)
            }
        };
        let allowed = match socket_use {
            U::TcpConnect | U::UdpSend => find(Direction::Allow),
            U::TcpBind | U::UdpBind => find(Direction::Listen).or_else(|| {
                implicit_bind
                    .then(|| self.first_for(Direction::Allow, transport))
                    .flatten()
            }),
            U::TcpListen => find(Direction::Listen),
            U::TcpAccept => accept(),
            U::UdpReceive => find(Direction::Allow).or_else(accept),
        };
        match allowed {
            Some(rule) => Verdict::allow(rule),
            None => Verdict::deny(Decider::DefaultDeny),
        }
    }

    /// Decides a lookup of `name`: allowed when an `allow` or `listen` rule covers it,
    /// unless a `deny` rule covers it by name for every scheme and port.
    pub fn decide_lookup(&self, name: &str) -> Verdict {
        let Ok(name) = normalize_name(name) else {
            return Verdict::deny(Decider::DefaultDeny);
        };
        let covering = |direction: Direction| {
            self.rules[direction.slot()]
                .iter()
                .position(|rule| rule.matches_name(&name))
                .map(|index| Decider::Rule(RuleRef { direction, index }))
        };
        let denied = self.rules[Direction::Deny.slot()].iter().position(|rule| {
            rule.scheme() == Scheme::Any
                && *rule.ports() == Ports::Any
                && rule
                    .hosts()
                    .iter()
                    .any(|host| host.is_name() && host.matches_name(&name))
        });
        if let Some(index) = denied {
            return Verdict::deny(Decider::Rule(RuleRef {
                direction: Direction::Deny,
                index,
            }));
        }
        if self.inherit {
            return Verdict::allow(Decider::InheritNetwork);
        }
        match covering(Direction::Allow).or_else(|| covering(Direction::Listen)) {
            Some(rule) => Verdict::allow(rule),
            None => Verdict::deny(Decider::DefaultDeny),
        }
    }

    /// Returns what decided a use, with the rule's text.
    pub fn decided_by(&self, by: Decider) -> DecidedBy {
        match by {
            Decider::Rule(rule_ref) => DecidedBy::Rule {
                direction: rule_ref.direction,
                rule: self
                    .rule(rule_ref)
                    .map_or_else(|| format!("#{}", rule_ref.index), Rule::to_string),
            },
            Decider::InheritNetwork => DecidedBy::InheritNetwork,
            Decider::DefaultDeny => DecidedBy::DefaultDeny,
            Decider::Special(special) => DecidedBy::Special(special),
            Decider::SelfConnection => DecidedBy::SelfConnection,
        }
    }

    /// Describes what decided a use: `--allow tcp://10.0.0.0/8:443`, `inherit-network`
    /// or `default-deny`.
    pub fn describe(&self, by: Decider) -> String {
        self.decided_by(by).to_string()
    }

    fn table(&self, direction: Direction) -> &Table {
        &self.tables[direction.slot()]
    }

    fn first_for(&self, direction: Direction, transport: Transport) -> Option<Decider> {
        self.table(direction).first_for(transport).map(|index| {
            Decider::Rule(RuleRef {
                direction,
                index: index as usize,
            })
        })
    }
}

impl fmt::Display for Policy {
    /// One line per rule, `allow tcp://…`, after `inherit_network` if set; `(no network)`
    /// for a policy that allows nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mode != Mode::Enforce {
            writeln!(f, "mode   {}", self.mode.key())?;
        }
        if self.inherit {
            writeln!(f, "inherit_network")?;
        }
        if self.allow_special {
            writeln!(f, "allow_special")?;
        }
        if self.no_self {
            writeln!(f, "no_self")?;
        }
        for prefix in &self.nat64 {
            writeln!(f, "nat64  {prefix}")?;
        }
        for (rule_ref, rule) in self.rules() {
            writeln!(f, "{:<6} {rule}", rule_ref.direction.key())?;
        }
        for publish in &self.publish {
            writeln!(f, "publish {publish}")?;
        }
        if self.is_empty() {
            writeln!(f, "(no network)")?;
        }
        Ok(())
    }
}

/// Reports whether `requested` asks for a self connection's bind: TCP, a loopback
/// address, port 0 (the system picks a free port, so no service's port can be taken).
pub fn is_self_bind(requested: SocketAddr, socket_use: SocketAddrUse) -> bool {
    matches!(socket_use, SocketAddrUse::TcpBind)
        && requested.port() == 0
        && requested.ip().to_canonical().is_loopback()
}

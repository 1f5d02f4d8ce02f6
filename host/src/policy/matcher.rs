//! The hot path: rules indexed so a check costs a few hash lookups, not a walk over
//! every rule, and never allocates.
//!
//! Address and network patterns are indexed by prefix length: for each length some rule
//! uses, the checked address is masked once and looked up. `*` patterns are few and
//! walked; name patterns match through the addresses the instance's lookups granted, also
//! few. The deciding rule is the first rule, in the order given, that matches: each
//! bucket holds its rules in order, and the lowest rule wins.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::rule::{Host, Ports, Rule, Transport};
use super::{Direction, RuleRef};

/// The entries of one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Table {
    /// Each rule's transports (bit 0: TCP, bit 1: UDP) and ports, by rule index.
    rules: Vec<(u8, Ports)>,
    /// Address and network entries, by family and prefix length.
    prefixes: Vec<PrefixIndex>,
    /// The rules with a `*` host, in rule order.
    any: Vec<u32>,
    /// Which transports any rule covers.
    transports: u8,
    /// Whether any rule names hosts.
    named: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PrefixIndex {
    v6: bool,
    len: u8,
    mask: u128,
    /// Network bits → the rules with that network, in rule order.
    rules: HashMap<u128, Vec<u32>>,
}

fn transport_bit(transport: Transport) -> u8 {
    match transport {
        Transport::Tcp => 1,
        Transport::Udp => 2,
    }
}

/// An address as index key: IPv4 in the low 32 bits, with its family.
fn key(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (false, u128::from(v4.to_bits())),
        IpAddr::V6(v6) => (true, v6.to_bits()),
    }
}

impl Table {
    /// Appends `rule` as the next rule of this table.
    pub(super) fn push(&mut self, rule: &Rule) {
        let index = u32::try_from(self.rules.len()).unwrap_or(u32::MAX);
        let transports = [Transport::Tcp, Transport::Udp]
            .into_iter()
            .filter(|&t| rule.scheme().covers(t))
            .fold(0, |bits, t| bits | transport_bit(t));
        for host in rule.hosts() {
            match host {
                Host::Any => self.any.push(index),
                // Names match through grants, kept per rule: nothing to index.
                Host::Name(_) | Host::Suffix(_) => self.named = true,
                Host::Net(net) => self.index(*net, index),
            }
        }
        self.rules.push((transports, rule.ports().clone()));
        self.transports |= transports;
    }

    /// Indexes `net` for the rule pushed last, beside its own hosts.
    pub(super) fn index_last(&mut self, net: IpNet) {
        if let Some(last) = self.rules.len().checked_sub(1) {
            self.index(net, u32::try_from(last).unwrap_or(u32::MAX));
        }
    }

    fn index(&mut self, net: IpNet, rule: u32) {
        let (v6, bits) = key(net.network());
        let (_, mask) = key(net.netmask());
        let len = net.prefix_len();
        let position = self
            .prefixes
            .iter()
            .position(|prefix| prefix.v6 == v6 && prefix.len == len);
        let position = position.unwrap_or_else(|| {
            self.prefixes.push(PrefixIndex {
                v6,
                len,
                mask,
                rules: HashMap::new(),
            });
            self.prefixes.len() - 1
        });
        let rules = self.prefixes[position].rules.entry(bits).or_default();
        if rules.last() != Some(&rule) {
            rules.push(rule);
        }
    }

    /// Reports whether any rule covers `transport`.
    pub(super) fn covers(&self, transport: Transport) -> bool {
        self.transports & transport_bit(transport) != 0
    }

    /// Returns the first rule covering `transport`, whatever its hosts and ports.
    pub(super) fn first_for(&self, transport: Transport) -> Option<u32> {
        let bit = transport_bit(transport);
        self.rules
            .iter()
            .position(|(transports, _)| transports & bit != 0)
            .and_then(|index| u32::try_from(index).ok())
    }

    /// Reports whether some rule of this table names a host by DNS name.
    pub(super) fn has_names(&self) -> bool {
        self.named
    }

    /// Returns the first rule matching `ip` and `port` over `transport`.
    ///
    /// `ip` must be canonical (IPv4-mapped addresses already turned into IPv4). The
    /// unspecified address ("every local address") is matched only by `*`, a `/0`
    /// network, or the unspecified address itself; port 0 ("any port") only by `*`.
    pub(super) fn first_match(
        &self,
        direction: Direction,
        transport: Transport,
        ip: IpAddr,
        port: u16,
        granted: &[RuleRef],
    ) -> Option<u32> {
        let bit = transport_bit(transport);
        let fits = |rule: u32| {
            let (transports, ports) = &self.rules[rule as usize];
            transports & bit != 0 && ports.contains(port)
        };
        let (v6, bits) = key(ip);
        let unspecified = ip.is_unspecified();
        let max_len = if v6 { 128 } else { 32 };
        let mut best: Option<u32> = None;
        for prefix in &self.prefixes {
            if prefix.v6 != v6 || (unspecified && prefix.len != 0 && prefix.len != max_len) {
                continue;
            }
            if let Some(rules) = prefix.rules.get(&(bits & prefix.mask))
                && let Some(&rule) = rules.iter().find(|&&rule| fits(rule))
            {
                best = Some(best.map_or(rule, |best| best.min(rule)));
            }
        }
        // `*` entries are in rule order: none past the best indexed match can win.
        if let Some(&rule) = self
            .any
            .iter()
            .take_while(|&&rule| best.is_none_or(|best| rule < best))
            .find(|&&rule| fits(rule))
        {
            best = Some(rule);
        }
        // Name rules match what lookups granted them (`granted`: the rules a lookup
        // granted `ip` to), and only if some rule of this table has names.
        if self.named && !unspecified {
            for granted in granted {
                if granted.direction == direction {
                    let rule = u32::try_from(granted.index).unwrap_or(u32::MAX);
                    if fits(rule) && best.is_none_or(|best| rule < best) {
                        best = Some(rule);
                    }
                }
            }
        }
        best
    }
}

//! Name rules at work: the addresses an instance's lookups returned, kept per rule.
//!
//! When a guest resolves a name that a rule covers, the addresses the resolver returns
//! become matchable by that rule — and only that rule: its scheme, its ports, its
//! direction. Another rule, another name or another instance gains nothing.
//!
//! An instance keeps at most [`MAX_NAME_GRANTS`] addresses: a name rule such as
//! `tcp://*.example.com:443` against a resolver that returns ever new addresses would
//! otherwise grow the host's memory without end. Past it, the address granted longest
//! ago is forgotten (a connection to it is judged again as if never looked up, until a
//! lookup grants it again), and the enforcer audits each one forgotten.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use crate::policy::{Policy, RuleRef};

/// How many addresses one instance's lookups may have granted at once; past that, the
/// oldest grant is forgotten for each new address.
pub const MAX_NAME_GRANTS: usize = 4096;

/// The addresses lookups granted to name rules, for one guest instance.
#[derive(Debug, Default)]
pub struct NameGrants {
    granted: RwLock<Grants>,
}

/// Every address granted, with the rules it was granted to: a look-up by address, and
/// the order in which addresses were (last) granted.
#[derive(Debug, Default)]
pub struct Grants {
    by_addr: HashMap<IpAddr, Granted>,
    /// Addresses in the order they were granted, each with the grant's number; an entry
    /// whose number is no longer its address's was granted again later, and is skipped.
    order: VecDeque<(IpAddr, u64)>,
    /// The number the next grant gets.
    next: u64,
}

#[derive(Debug)]
struct Granted {
    /// The rules the address may be matched by.
    rules: Vec<RuleRef>,
    /// The name whose lookup granted it last.
    name: Arc<str>,
    /// Every name whose lookup granted it, to grant it again under a reloaded policy.
    names: Vec<Arc<str>>,
    /// The number of its latest grant (see [`Grants::order`]).
    number: u64,
}

/// An address forgotten to keep an instance's grants within [`MAX_NAME_GRANTS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evicted {
    /// The address.
    pub addr: IpAddr,
    /// The name whose lookup had granted it.
    pub name: String,
}

impl Grants {
    /// Returns the rules lookups granted `ip` (canonical) to: none if no lookup did.
    pub fn rules_for(&self, ip: IpAddr) -> &[RuleRef] {
        self.by_addr
            .get(&ip)
            .map_or(&[], |granted| granted.rules.as_slice())
    }

    /// Returns how many addresses are granted.
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// Reports whether no address is granted.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    fn grant(&mut self, addr: IpAddr, name: &Arc<str>, rules: &[RuleRef]) {
        let number = self.next;
        self.next += 1;
        let granted = self.by_addr.entry(addr).or_insert_with(|| Granted {
            rules: Vec::new(),
            name: Arc::clone(name),
            names: Vec::new(),
            number,
        });
        if !granted.names.contains(name) {
            granted.names.push(Arc::clone(name));
        }
        for rule in rules {
            if !granted.rules.contains(rule) {
                granted.rules.push(*rule);
            }
        }
        granted.name = Arc::clone(name);
        granted.number = number;
        self.order.push_back((addr, number));
    }

    /// Forgets the oldest grants until at most `max` addresses are granted.
    fn evict_past(&mut self, max: usize) -> Vec<Evicted> {
        let mut evicted = Vec::new();
        while self.by_addr.len() > max {
            let Some((addr, number)) = self.order.pop_front() else {
                break;
            };
            if self.by_addr.get(&addr).is_some_and(|g| g.number == number)
                && let Some(granted) = self.by_addr.remove(&addr)
            {
                evicted.push(Evicted {
                    addr,
                    name: granted.name.to_string(),
                });
            }
        }
        // Entries of addresses granted again later stay in the queue until they reach
        // its front; past twice the live ones, drop them all at once.
        if self.order.len() > 2 * self.by_addr.len().max(64) {
            let by_addr = &self.by_addr;
            self.order
                .retain(|(addr, number)| by_addr.get(addr).is_some_and(|g| g.number == *number));
        }
        evicted
    }
}

impl NameGrants {
    /// Returns an empty set: no lookup has happened yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `name` resolved to `addrs`: every rule of `policy` whose hosts cover
    /// `name` by name (not by `*`) now also matches those addresses. Returns the
    /// addresses forgotten to stay within [`MAX_NAME_GRANTS`], oldest first.
    pub fn record(&self, policy: &Policy, name: &str, addrs: &[IpAddr]) -> Vec<Evicted> {
        self.record_within(policy, name, addrs, MAX_NAME_GRANTS)
    }

    fn record_within(
        &self,
        policy: &Policy,
        name: &str,
        addrs: &[IpAddr],
        max: usize,
    ) -> Vec<Evicted> {
        let rules = covering(policy, name);
        if rules.is_empty() || addrs.is_empty() {
            return Vec::new();
        }
        let name: Arc<str> = Arc::from(name);
        let mut granted = self
            .granted
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for addr in addrs {
            granted.grant(addr.to_canonical(), &name, &rules);
        }
        granted.evict_past(max)
    }

    /// Grants every address again under `policy` (a reload): to the rules of `policy`
    /// that cover the names whose lookups granted it. An address no rule covers any
    /// more stays known, granted to no rule, until a lookup grants it again.
    pub fn rederive(&self, policy: &Policy) {
        let mut granted = self
            .granted
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for entry in granted.by_addr.values_mut() {
            let mut rules = Vec::new();
            for name in &entry.names {
                for rule in covering(policy, name) {
                    if !rules.contains(&rule) {
                        rules.push(rule);
                    }
                }
            }
            entry.rules = rules;
        }
    }

    /// Returns every grant so far, to decide with ([`Grants::rules_for`]).
    pub fn read(&self) -> RwLockReadGuard<'_, Grants> {
        self.granted
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The rules of `policy` whose hosts cover `name` by name (not by `*`): what a lookup
/// of `name` grants its answers to.
pub(crate) fn covering(policy: &Policy, name: &str) -> Vec<RuleRef> {
    policy
        .rules()
        .filter(|(_, rule)| {
            rule.hosts()
                .iter()
                .any(|host| host.is_name() && host.matches_name(name))
        })
        .map(|(rule_ref, _)| rule_ref)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Direction;

    fn policy() -> Policy {
        Policy::deny_all()
            .allow("tcp://*.example.com:443")
            .and_then(|policy| policy.allow("udp://*:53"))
            .and_then(|policy| policy.allow("tcp://api.example.com:8443"))
            .expect("valid rules")
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from_bits(0x0a00_0000 + n))
    }

    /// An address is granted to the rules naming the name looked up, and only those.
    #[test]
    fn an_address_is_granted_to_the_rules_naming_the_name() {
        let grants = NameGrants::new();
        grants.record(&policy(), "api.example.com", &[ip(1)]);
        grants.record(&policy(), "www.example.com", &[ip(2)]);
        let read = grants.read();
        let rule = |index| RuleRef {
            direction: Direction::Allow,
            index,
        };
        assert_eq!(read.rules_for(ip(1)), [rule(0), rule(2)]);
        assert_eq!(read.rules_for(ip(2)), [rule(0)]);
        assert_eq!(read.rules_for(ip(3)), []);
        // IPv4-mapped answers are kept as the IPv4 address they are.
        drop(read);
        grants.record(
            &policy(),
            "www.example.com",
            &["::ffff:10.0.0.9".parse().expect("ip")],
        );
        assert_eq!(grants.read().rules_for(ip(9)), [rule(0)]);
    }

    /// A resolver that keeps returning new addresses grows the grants only to the
    /// bound; the oldest go first, and an address granted again counts as new.
    #[test]
    fn grants_are_bounded_oldest_first() {
        let grants = NameGrants::new();
        let policy = policy();
        let mut evicted = Vec::new();
        for n in 0..10 {
            evicted.extend(grants.record_within(&policy, "a.example.com", &[ip(n)], 4));
            if n == 7 {
                // Granted again: now the newest.
                evicted.extend(grants.record_within(&policy, "b.example.com", &[ip(5)], 4));
            }
        }
        let read = grants.read();
        assert_eq!(read.len(), 4);
        let kept: Vec<u32> = (0..10)
            .filter(|&n| !read.rules_for(ip(n)).is_empty())
            .collect();
        assert_eq!(kept, [5, 7, 8, 9]);
        let gone: Vec<IpAddr> = evicted.iter().map(|e| e.addr).collect();
        assert_eq!(gone, [ip(0), ip(1), ip(2), ip(3), ip(4), ip(6)]);
        assert!(read.order.len() <= 2 * 64, "stale entries are dropped");
    }

    /// Many lookups of the same few addresses keep the queue of grant order bounded.
    #[test]
    fn granting_again_keeps_the_order_bounded() {
        let grants = NameGrants::new();
        let policy = policy();
        for _ in 0..10_000 {
            grants.record(&policy, "a.example.com", &[ip(1), ip(2)]);
        }
        let read = grants.read();
        assert_eq!(read.len(), 2);
        assert!(read.order.len() <= 2 * 64, "{}", read.order.len());
    }

    /// The enforcer audits every address it forgets, with the name that granted it.
    #[test]
    fn evictions_are_audited() {
        use crate::enforce::{AuditLog, DenialLog, Enforcer, PolicyHandle};
        let file = tempfile::NamedTempFile::new().expect("a temp file");
        let audit = AuditLog::to_file(file.reopen().expect("reopen"));
        let denials = Arc::new(DenialLog::default());
        let enforcer = Enforcer::new(
            "grants",
            PolicyHandle::new(policy()),
            Arc::clone(&denials),
            Some(Arc::new(audit)),
        );
        let addrs: Vec<IpAddr> = (0..=u32::try_from(MAX_NAME_GRANTS).expect("fits"))
            .map(ip)
            .collect();
        enforcer.grant("www.example.com", &addrs);
        let text = std::fs::read_to_string(file.path()).expect("the audit");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        for field in [
            r#""use":"grant-evicted""#,
            r#""address":"10.0.0.0""#,
            r#""name":"www.example.com""#,
            r#""verdict":"evicted""#,
            r#""rule":"max-name-grants""#,
        ] {
            assert!(lines[0].contains(field), "{field}: {}", lines[0]);
        }
        assert!(denials.denials().is_empty(), "an eviction is no denial");
    }
}

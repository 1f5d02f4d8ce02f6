//! Name rules at work: the addresses an instance's lookups returned, kept per rule.
//!
//! When a guest resolves a name that a rule covers, the addresses the resolver returns
//! become matchable by that rule — and only that rule: its scheme, its ports, its
//! direction. Another rule, another name or another instance gains nothing.

use std::net::IpAddr;
use std::sync::{RwLock, RwLockReadGuard};

use crate::policy::{Policy, RuleRef};

/// The addresses lookups granted to name rules, for one guest instance.
#[derive(Debug, Default)]
pub struct NameGrants {
    granted: RwLock<Vec<(RuleRef, IpAddr)>>,
}

impl NameGrants {
    /// Returns an empty set: no lookup has happened yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `name` resolved to `addrs`: every rule of `policy` whose hosts cover
    /// `name` by name (not by `*`) now also matches those addresses.
    pub fn record(&self, policy: &Policy, name: &str, addrs: &[IpAddr]) {
        let mut granted = self
            .granted
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (rule_ref, rule) in policy.rules() {
            let by_name = rule
                .hosts()
                .iter()
                .any(|host| host.is_name() && host.matches_name(name));
            if !by_name {
                continue;
            }
            for addr in addrs {
                let grant = (rule_ref, addr.to_canonical());
                if !granted.contains(&grant) {
                    granted.push(grant);
                }
            }
        }
    }

    /// Returns every grant so far: which rule may match which address.
    pub fn read(&self) -> RwLockReadGuard<'_, Vec<(RuleRef, IpAddr)>> {
        self.granted
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

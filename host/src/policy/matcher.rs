//! The hot path: rules flattened into entries that judge an address without allocating.
//!
//! Each host pattern of each rule becomes one [`Entry`]: a family, network bits and a
//! mask, or a reference to the addresses lookups granted to the rule. A check walks the
//! entries of one direction in order and stops at the first match, so the deciding rule
//! is always the first rule (in the order given) that matches.

use std::net::IpAddr;

use ipnet::IpNet;

use super::names::NameGrants;
use super::rule::{Host, Ports, Rule, Transport};
use super::{Direction, RuleRef};

/// The entries of one direction, in rule order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Table {
    entries: Vec<Entry>,
    /// Each rule's ports, by rule index.
    ports: Vec<Ports>,
    /// Which transports any rule of this table covers (bit 0: TCP, bit 1: UDP).
    transports: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    rule: u32,
    transports: u8,
    host: HostMatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostMatch {
    Any,
    V4 {
        bits: u32,
        mask: u32,
    },
    V6 {
        bits: u128,
        mask: u128,
    },
    /// A name or `*.suffix`: matches the addresses lookups of covered names returned.
    Granted,
}

fn transport_bit(transport: Transport) -> u8 {
    match transport {
        Transport::Tcp => 1,
        Transport::Udp => 2,
    }
}

impl Table {
    /// Appends `rule` as rule number `index` of this table.
    pub(super) fn push(&mut self, index: usize, rule: &Rule) {
        let transports = [Transport::Tcp, Transport::Udp]
            .into_iter()
            .filter(|&t| rule.scheme().covers(t))
            .fold(0, |bits, t| bits | transport_bit(t));
        let rule_index = u32::try_from(index).unwrap_or(u32::MAX);
        let mut granted = false;
        for host in rule.hosts() {
            let host = match host {
                Host::Any => HostMatch::Any,
                Host::Net(IpNet::V4(net)) => HostMatch::V4 {
                    bits: net.network().to_bits(),
                    mask: net.netmask().to_bits(),
                },
                Host::Net(IpNet::V6(net)) => HostMatch::V6 {
                    bits: net.network().to_bits(),
                    mask: net.netmask().to_bits(),
                },
                // One entry stands for all of a rule's names: grants are kept per rule.
                Host::Name(_) | Host::Suffix(_) if granted => continue,
                Host::Name(_) | Host::Suffix(_) => {
                    granted = true;
                    HostMatch::Granted
                }
            };
            self.entries.push(Entry {
                rule: rule_index,
                transports,
                host,
            });
        }
        self.ports.push(rule.ports().clone());
        self.transports |= transports;
    }

    /// Reports whether any rule covers `transport`.
    pub(super) fn covers(&self, transport: Transport) -> bool {
        self.transports & transport_bit(transport) != 0
    }

    /// Returns the first rule covering `transport`, whatever its hosts and ports.
    pub(super) fn first_for(&self, transport: Transport) -> Option<u32> {
        let bit = transport_bit(transport);
        self.entries
            .iter()
            .find(|entry| entry.transports & bit != 0)
            .map(|entry| entry.rule)
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
        grants: Option<&NameGrants>,
    ) -> Option<u32> {
        let bit = transport_bit(transport);
        let unspecified = ip.is_unspecified();
        self.entries
            .iter()
            .find(|entry| {
                entry.transports & bit != 0
                    && entry.host.matches(ip, unspecified, || {
                        grants.is_some_and(|grants| {
                            grants.contains(
                                RuleRef {
                                    direction,
                                    index: entry.rule as usize,
                                },
                                ip,
                            )
                        })
                    })
                    && self.ports[entry.rule as usize].contains(port)
            })
            .map(|entry| entry.rule)
    }
}

impl HostMatch {
    fn matches(self, ip: IpAddr, unspecified: bool, granted: impl FnOnce() -> bool) -> bool {
        match (self, ip) {
            (Self::Any, _) => true,
            (Self::V4 { bits, mask }, IpAddr::V4(v4)) => {
                if unspecified {
                    mask == 0 || (mask == u32::MAX && bits == 0)
                } else {
                    v4.to_bits() & mask == bits
                }
            }
            (Self::V6 { bits, mask }, IpAddr::V6(v6)) => {
                if unspecified {
                    mask == 0 || (mask == u128::MAX && bits == 0)
                } else {
                    v6.to_bits() & mask == bits
                }
            }
            (Self::Granted, _) => !unspecified && granted(),
            (Self::V4 { .. }, IpAddr::V6(_)) | (Self::V6 { .. }, IpAddr::V4(_)) => false,
        }
    }
}

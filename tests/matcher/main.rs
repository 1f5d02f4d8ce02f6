//! The policy matcher against references: CIDR and port matching agree with brute
//! force, rules survive parse → display → parse, and a check allocates nothing.
//!
//! Its own test binary: `allocation-counter` replaces the global allocator, which the
//! end-to-end suite should not pay for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use fixtures::thousand_rules;
use proptest::prelude::*;
use sockbox_host::enforce::{DenialLog, Enforcer, NameGrants, PolicyHandle};
use sockbox_host::policy::{Policy, Rule, SocketAddrUse};

#[path = "../../host/examples/fixtures/thousand_rules.rs"]
mod fixtures;

/// Reports whether the first `len` bits of `a` and `b` are equal, bit by bit.
fn same_prefix(a: &[u8], b: &[u8], len: u8) -> bool {
    (0..usize::from(len)).all(|bit| {
        let mask = 0x80 >> (bit % 8);
        a[bit / 8] & mask == b[bit / 8] & mask
    })
}

/// Clears the bits of `octets` past `len`, giving the network address.
fn network(octets: &mut [u8], len: u8) {
    for bit in usize::from(len)..octets.len() * 8 {
        octets[bit / 8] &= !(0x80 >> (bit % 8));
    }
}

fn connect(policy: &Policy, addr: SocketAddr) -> bool {
    policy.decide(addr, SocketAddrUse::TcpConnect).allowed
}

/// An address: anywhere, the unspecified one, or `None` for one near the network.
fn v4_addr() -> impl Strategy<Value = Option<[u8; 4]>> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(Some),
        Just(Some([0; 4])),
        Just(None),
        Just(None)
    ]
}

fn v6_addr() -> impl Strategy<Value = Option<[u8; 16]>> {
    prop_oneof![
        any::<[u8; 16]>().prop_map(Some),
        Just(Some([0; 16])),
        any::<[u8; 4]>().prop_map(|v4| Some(Ipv4Addr::from(v4).to_ipv6_mapped().octets())),
        Just(None),
        Just(None),
    ]
}

/// A host pattern in rule syntax, as a generator.
fn host_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_string()),
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(mut o, len)| {
            network(&mut o, len);
            format!("{}/{len}", Ipv4Addr::from(o))
        }),
        any::<[u8; 16]>().prop_map(|o| format!("[{}]", Ipv6Addr::from(o))),
        (any::<[u8; 16]>(), 0u8..=128).prop_map(|(mut o, len)| {
            network(&mut o, len);
            format!("[{}]/{len}", Ipv6Addr::from(o))
        }),
        "[a-z][a-z0-9-]{0,8}[a-z0-9](\\.[a-z][a-z0-9]{0,6}){0,3}",
        "[a-z][a-z0-9]{0,8}(\\.[a-z]{1,6}){1,3}".prop_map(|name| format!("*.{name}")),
    ]
}

fn port_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u16..).prop_map(|port| port.to_string()),
        (1u16.., 1u16..).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
    ]
}

fn list(items: Vec<String>) -> String {
    match items.as_slice() {
        [one] => one.clone(),
        _ => format!("{{{}}}", items.join(",")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// An IPv4 CIDR rule covers exactly the addresses whose first LEN bits match,
    /// whether the address comes as IPv4 or IPv4-mapped IPv6.
    #[test]
    fn ipv4_cidr_agrees_with_brute_force(mut net in any::<[u8; 4]>(), len in 0u8..=32, addr in v4_addr(), flip in 0usize..32, port in 1u16..) {
        network(&mut net, len);
        // Some addresses are picked near the network: its own address with one bit flipped.
        let addr = addr.unwrap_or_else(|| {
            let mut near = net;
            near[flip / 8] ^= 0x80 >> (flip % 8);
            near
        });
        // The matcher alone: the special-address preset is tested below.
        let policy = Policy::deny_all().allow(&format!("tcp://{}/{len}:*", Ipv4Addr::from(net))).expect("valid").with_special_allowed();
        // The unspecified address means every address: only /0 covers it.
        let expected = if addr == [0; 4] { len == 0 } else { same_prefix(&net, &addr, len) };
        let v4 = Ipv4Addr::from(addr);
        prop_assert_eq!(connect(&policy, SocketAddr::new(IpAddr::V4(v4), port)), expected);
        prop_assert_eq!(connect(&policy, SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), port)), expected);
    }

    /// An IPv6 CIDR rule covers exactly the IPv6 addresses whose first LEN bits match;
    /// IPv4-mapped addresses are judged as IPv4, so never by an IPv6 rule.
    #[test]
    fn ipv6_cidr_agrees_with_brute_force(mut net in any::<[u8; 16]>(), len in 0u8..=128, addr in v6_addr(), flip in 0usize..128, port in 1u16..) {
        network(&mut net, len);
        let addr = addr.unwrap_or_else(|| {
            let mut near = net;
            near[flip / 8] ^= 0x80 >> (flip % 8);
            near
        });
        let ip = Ipv6Addr::from(addr);
        let policy = Policy::deny_all()
            .allow(&format!("tcp://[{}]/{len}:*", Ipv6Addr::from(net)))
            .map(Policy::with_special_allowed);
        let Ok(policy) = policy else {
            // A network inside ::ffff:0:0/96 reads as IPv4; tested above.
            prop_assert!(Ipv6Addr::from(net).to_ipv4_mapped().is_some());
            return Ok(());
        };
        let expected = if ip.to_ipv4_mapped().is_some() {
            false
        } else if ip.is_unspecified() {
            len == 0 || (len == 128 && Ipv6Addr::from(net).is_unspecified())
        } else {
            same_prefix(&net, &addr, len)
        };
        prop_assert_eq!(connect(&policy, SocketAddr::new(IpAddr::V6(ip), port)), expected);
    }

    /// Under `inherit_network`, an IPv4 address is refused as a target exactly when it
    /// is special (std's own predicates and the metadata endpoints as the reference), in
    /// every spelling: plain, IPv4-mapped, IPv4-compatible, NAT64 and 6to4.
    #[test]
    fn special_addresses_agree_with_std_in_every_spelling(octets in prop_oneof![
        any::<[u8; 4]>(),
        any::<[u8; 2]>().prop_map(|[c, d]| [169, 254, c, d]),
        any::<[u8; 3]>().prop_map(|[b, c, d]| [224 | (b & 0x0f), b, c, d]),
        Just([169, 254, 169, 254]),
        Just([100, 100, 100, 200]),
        Just([255; 4]),
        Just([0; 4]),
    ], port in 1u16..) {
        let v4 = Ipv4Addr::from(octets);
        let special = v4.is_link_local()
            || v4.is_multicast()
            || v4.is_broadcast()
            || v4.is_unspecified()
            || v4 == Ipv4Addr::new(100, 100, 100, 200);
        let bits = u128::from(v4.to_bits());
        let mut spellings = vec![
            IpAddr::V4(v4),
            IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(Ipv6Addr::from_bits((0x0064_ff9b_u128 << 96) | bits)),
            IpAddr::V6(Ipv6Addr::from_bits((0x2002_u128 << 112) | (bits << 80) | 1)),
        ];
        // IPv4-compatible, for addresses whose first octet is not 0 (`::1` stays loopback).
        if octets[0] != 0 {
            spellings.push(IpAddr::V6(Ipv6Addr::from_bits(bits)));
        }
        let policy = Policy::inherit_network();
        for ip in spellings {
            prop_assert_eq!(connect(&policy, SocketAddr::new(ip, port)), !special, "{}", ip);
        }
    }

    /// A port list covers exactly the ports some range of it includes; port 0 never.
    #[test]
    fn port_lists_agree_with_brute_force(ranges in prop::collection::vec((1u16.., 0u16..200), 1..5), port in prop_oneof![Just(0u16), Just(1), Just(u16::MAX), any::<u16>()]) {
        let ranges: Vec<(u16, u16)> = ranges.iter().map(|&(lo, span)| (lo, lo.saturating_add(span))).collect();
        let text: Vec<String> = ranges.iter().map(|(lo, hi)| format!("{lo}-{hi}")).collect();
        let policy = Policy::deny_all().allow(&format!("tcp://127.0.0.1:{}", list(text))).expect("valid");
        let expected = port != 0 && ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi);
        prop_assert_eq!(connect(&policy, SocketAddr::from(([127, 0, 0, 1], port))), expected);
        // A range's edges, whatever the random port.
        for &(lo, hi) in &ranges {
            prop_assert!(connect(&policy, SocketAddr::from(([127, 0, 0, 1], lo))));
            prop_assert!(connect(&policy, SocketAddr::from(([127, 0, 0, 1], hi))));
        }
    }

    /// Parse → display → parse is the identity, for every grammar form.
    #[test]
    fn parse_display_parse_is_identity(
        scheme in prop::sample::select(vec!["tcp", "udp", "*", "TCP"]),
        hosts in prop_oneof![Just(vec!["*".to_owned()]), prop::collection::vec(host_text(), 1..4)],
        ports in prop_oneof![Just(vec!["*".to_owned()]), prop::collection::vec(port_text(), 1..4)],
    ) {
        let text = format!("{scheme}://{}:{}", list(hosts), list(ports));
        let rule: Rule = text.parse().map_err(|err| TestCaseError::fail(format!("{err}")))?;
        let shown = rule.to_string();
        let again: Rule = shown.parse().map_err(|err| TestCaseError::fail(format!("{err}")))?;
        prop_assert_eq!(&again, &rule);
        prop_assert_eq!(again.to_string(), shown);
    }
}

/// A check walks 1,000 rules (addresses, networks, lists, names with grants, deny rules)
/// without allocating, allowed or denied.
#[test]
fn a_check_does_not_allocate() {
    let mut policy = thousand_rules();
    policy = policy
        .allow_listen("tcp://127.0.0.1:*")
        .and_then(|policy| policy.allow("tcp://169.254.169.254:80"))
        .expect("valid");
    let grants = NameGrants::new();
    grants.record(
        &policy,
        "host3.example.com",
        &["203.0.113.7".parse().expect("an address")],
    );
    let attempts: Vec<(SocketAddr, SocketAddrUse)> = [
        ("10.0.3.1:443", SocketAddrUse::TcpConnect),
        ("203.0.113.7:443", SocketAddrUse::TcpConnect),
        ("8.8.8.8:53", SocketAddrUse::UdpSend),
        ("[fd00::2]:53", SocketAddrUse::UdpReceive),
        ("0.0.0.0:0", SocketAddrUse::TcpBind),
        ("127.0.0.1:8080", SocketAddrUse::TcpListen),
        ("127.0.0.1:50000", SocketAddrUse::TcpAccept),
        ("[::ffff:192.168.4.4]:9", SocketAddrUse::TcpConnect),
        // Special addresses: the preset's refusal, and an explicit rule's allowance.
        ("[64:ff9b::a9fe:101]:80", SocketAddrUse::TcpConnect),
        ("169.254.169.254:80", SocketAddrUse::TcpConnect),
    ]
    .into_iter()
    .map(|(addr, socket_use)| (addr.parse().expect("an address"), socket_use))
    .collect();
    let mut allowed = 0;
    let info = allocation_counter::measure(|| {
        for &(addr, socket_use) in &attempts {
            allowed += usize::from(
                policy
                    .decide_with(addr, socket_use, grants.read().rules_for(addr.ip()))
                    .allowed,
            );
        }
    });
    assert_eq!(info.count_total, 0, "a check allocated: {info:?}");
    // Both outcomes were exercised.
    assert!(
        allowed > 0 && allowed < attempts.len(),
        "{allowed} of {} allowed",
        attempts.len()
    );

    // As wasmtime-wasi calls it, through the enforcer: an allowed use records nothing,
    // so allocates nothing (a denial is recorded, and may).
    let enforcer = Enforcer::new(
        "bench",
        PolicyHandle::new(policy),
        Arc::new(DenialLog::default()),
        None,
    );
    enforcer.grant(
        "host3.example.com",
        &["203.0.113.7".parse().expect("an address")],
    );
    let allowed: Vec<_> = attempts
        .iter()
        .copied()
        .filter(|&(addr, socket_use)| enforcer.policy().decide(addr, socket_use).allowed)
        .chain([(
            "203.0.113.7:443".parse().expect("an address"),
            SocketAddrUse::TcpConnect,
        )])
        .collect();
    let info = allocation_counter::measure(|| {
        for &(addr, socket_use) in &allowed {
            assert!(enforcer.check(addr, socket_use));
        }
    });
    assert_eq!(info.count_total, 0, "an allowed check allocated: {info:?}");
}

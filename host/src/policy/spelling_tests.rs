//! Embedded IPv4 spellings across rules and the special-address preset: a deny holds
//! for every spelling that carries the address it names, an allow for what it names.

use std::net::{IpAddr, SocketAddr};

use super::*;

/// Every spelling of the IPv4 address `a.b.c.d` sockbox knows, with port 80:
/// itself, IPv4-mapped, IPv4-compatible, NAT64's well-known prefix, 6to4, and under
/// the network-specific prefix `64:ff9b:1::/48` (RFC 6052: octets 6-7 and 9-10).
fn spellings(v4: [u8; 4]) -> [(&'static str, SocketAddr); 6] {
    let [a, b, c, d] = v4;
    let (ab, cd) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
    let v6 = |segments: [u16; 8]| SocketAddr::new(IpAddr::from(segments), 80);
    [
        ("ipv4", SocketAddr::from((v4, 80))),
        ("mapped", v6([0, 0, 0, 0, 0, 0xffff, ab, cd])),
        ("compatible", v6([0, 0, 0, 0, 0, 0, ab, cd])),
        ("nat64", v6([0x64, 0xff9b, 0, 0, 0, 0, ab, cd])),
        ("6to4", v6([0x2002, ab, cd, 0, 0, 0, 0, 1])),
        (
            "nat64/48",
            v6([0x64, 0xff9b, 1, ab, u16::from(c), u16::from(d) << 8, 0, 0]),
        ),
    ]
}

fn verdict(policy: &Policy, addr: SocketAddr) -> String {
    let verdict = policy.decide(addr, SocketAddrUse::TcpConnect);
    let word = if verdict.allowed { "allow" } else { "deny" };
    format!("{word} {}", policy.describe(verdict.by))
}

fn network_prefix() -> Nat64Prefix {
    "64:ff9b:1::/48".parse().expect("a prefix")
}

/// A deny on an IPv4 network holds for every spelling that carries one of its
/// addresses — the network's own NAT64 prefix once it is named — and a deny written in
/// an IPv6 spelling holds for the IPv4 addresses it carries.
#[test]
fn a_deny_holds_in_every_spelling() {
    for deny in ["tcp://10.0.0.0/8:*", "tcp://[64:ff9b::a00:0]/104:*"] {
        let denied = format!("deny --deny {deny}");
        let policy = Policy::inherit_network().deny(deny).expect("a rule");
        let named = policy.clone().with_nat64_prefix(network_prefix());
        for (spelling, addr) in spellings([10, 0, 0, 5]) {
            let expected = match spelling {
                // Not a NAT64 prefix until the policy names it.
                "nat64/48" => "allow inherit-network",
                _ => &denied,
            };
            assert_eq!(verdict(&policy, addr), expected, "{deny} {spelling} {addr}");
            assert_eq!(verdict(&named, addr), denied, "{deny} {spelling} {addr}");
        }
        // Addresses outside the network stay allowed in every spelling.
        for (spelling, addr) in spellings([192, 0, 2, 1]) {
            assert_eq!(
                verdict(&named, addr),
                "allow inherit-network",
                "{deny} {spelling}"
            );
        }
    }
}

/// An allow rule allows what it names: an IPv4 address and its IPv4-mapped form (the
/// same socket on Linux), not the spellings that go through a translator or a tunnel,
/// which a rule must name itself.
#[test]
fn an_allow_holds_for_what_it_names() {
    let policy = Policy::deny_all()
        .allow("tcp://10.0.0.5:80")
        .and_then(|policy| policy.allow("tcp://[64:ff9b::a00:6]:80"))
        .expect("rules")
        .with_nat64_prefix(network_prefix());
    for (spelling, addr) in spellings([10, 0, 0, 5]) {
        let expected = match spelling {
            "ipv4" | "mapped" => "allow --allow tcp://10.0.0.5:80",
            _ => "deny default-deny",
        };
        assert_eq!(verdict(&policy, addr), expected, "{spelling} {addr}");
    }
    for (spelling, addr) in spellings([10, 0, 0, 6]) {
        let expected = match spelling {
            "nat64" => "allow --allow tcp://[64:ff9b::a00:6]:80",
            _ => "deny default-deny",
        };
        assert_eq!(verdict(&policy, addr), expected, "{spelling} {addr}");
    }
}

/// The special-address preset refuses a metadata endpoint in every spelling, the
/// network's own NAT64 prefix included once it is named; a rule naming the endpoint
/// allows only the spellings it names, as any allow does.
#[test]
fn the_preset_holds_in_every_spelling() {
    let policy = Policy::inherit_network().with_nat64_prefix(network_prefix());
    let unnamed = Policy::inherit_network();
    for (spelling, addr) in spellings([169, 254, 169, 254]) {
        assert_eq!(
            verdict(&policy, addr),
            "deny special:metadata",
            "{spelling}"
        );
        let expected = if spelling == "nat64/48" {
            "allow inherit-network"
        } else {
            "deny special:metadata"
        };
        assert_eq!(verdict(&unnamed, addr), expected, "{spelling}");
    }
    let named = Policy::deny_all()
        .allow("tcp://169.254.169.254:80")
        .expect("a rule")
        .with_nat64_prefix(network_prefix());
    for (spelling, addr) in spellings([169, 254, 169, 254]) {
        let expected = match spelling {
            "ipv4" | "mapped" => "allow --allow tcp://169.254.169.254:80",
            _ => "deny special:metadata",
        };
        assert_eq!(verdict(&named, addr), expected, "{spelling}");
    }
}

/// A lookup's answer in another spelling of a denied address is refused before the
/// guest sees it (DNS64 hands guests NAT64 addresses).
#[test]
fn answers_in_any_spelling_are_denied() {
    let policy = Policy::deny_all()
        .allow("tcp://*.example.com:443")
        .and_then(|policy| policy.deny("tcp://10.0.0.0/8:*"))
        .expect("rules")
        .with_nat64_prefix(network_prefix());
    for (spelling, addr) in spellings([10, 0, 0, 5]) {
        let verdict = policy.decide_answer("www.example.com", addr.ip());
        assert!(!verdict.allowed, "{spelling}");
        assert_eq!(policy.describe(verdict.by), "--deny tcp://10.0.0.0/8:*");
    }
    let allowed = policy.decide_answer("www.example.com", "64:ff9b::c000:201".parse().expect("ip"));
    assert!(allowed.allowed);
}

/// Policy files and their display carry the network's NAT64 prefixes; a prefix of a
/// length RFC 6052 does not define is an error on its line.
#[test]
fn nat64_prefixes_in_files() {
    let policy = Policy::from_toml(
        "inherit_network = true\nnat64_prefixes = [\"64:ff9b:1::/48\"]\ndeny = [\"tcp://10.0.0.0/8:*\"]\n",
        "p.toml",
    )
    .expect("a policy");
    assert_eq!(policy.nat64_prefixes(), [network_prefix()]);
    assert!(
        policy.to_string().contains("nat64  64:ff9b:1::/48\n"),
        "{policy}"
    );
    let [.., (_, addr)] = spellings([10, 0, 0, 5]);
    assert!(!policy.decide(addr, SocketAddrUse::TcpConnect).allowed);
    let err = Policy::from_toml("nat64_prefixes = [\"64:ff9b::/95\"]\n", "p.toml")
        .expect_err("a bad prefix");
    assert_eq!(
        err.to_string(),
        "p.toml:1: nat64_prefixes: `64:ff9b::/95` is not a NAT64 prefix: its length must be 32, 40, 48, 56, 64 or 96 (RFC 6052)"
    );
}

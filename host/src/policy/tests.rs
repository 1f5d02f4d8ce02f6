//! Table-driven tests of parsing, verdicts, lookups and name grants. Over 400 lines
//! because `verdicts` is one table: every grammar form and use, 165 cases.

use std::net::IpAddr;

use super::*;
use crate::enforce::NameGrants;

/// Builds a policy from `;`-separated `DIRECTION RULE` items (`allow tcp://…; deny …`),
/// plus `inherit` for an inherited network.
pub(crate) fn policy(spec: &str) -> Policy {
    let mut policy = Policy::deny_all();
    for item in spec
        .split(';')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        if item == "inherit" {
            policy = policy.with_inherit_network();
            continue;
        }
        let (direction, rule) = item.split_once(' ').expect("DIRECTION RULE");
        let direction = Direction::ALL
            .into_iter()
            .find(|d| d.key() == direction)
            .expect("a direction key");
        let rule = rule.parse().unwrap_or_else(|err| panic!("{err}"));
        policy = policy
            .with_rule(direction, rule)
            .unwrap_or_else(|err| panic!("{err}"));
    }
    policy
}

/// Parses `connect tcp 10.0.0.1:80`.
fn attempt(text: &str) -> (SocketAddrUse, SocketAddr) {
    let mut words = text.split(' ');
    let (verb, transport, addr) = (
        words.next().expect("a verb"),
        words.next().expect("a transport"),
        words.next().expect("an address"),
    );
    let socket_use = parse_use(verb, transport).unwrap_or_else(|err| panic!("{err}"));
    (socket_use, addr.parse().expect("a socket address"))
}

/// `allow` / `deny`, then what decides: a flag and rule, `default-deny`, `inherit-network`.
fn verdict_text(policy: &Policy, verdict: Verdict) -> String {
    let word = if verdict.allowed { "allow" } else { "deny" };
    format!("{word} {}", policy.describe(verdict.by))
}

/// Every grammar form, both families, mapped addresses, ranges' edges, deny precedence
/// and each `SocketAddrUse`: the verdict and the rule that decides it.
#[test]
fn verdicts() {
    // (policy, attempt, expected verdict and decider)
    let cases: &[(&str, &str, &str)] = &[
        // --- IPv4 addresses and networks.
        (
            "allow tcp://127.0.0.1:8080",
            "connect tcp 127.0.0.1:8080",
            "allow --allow tcp://127.0.0.1:8080",
        ),
        (
            "allow tcp://127.0.0.1:8080",
            "connect tcp 127.0.0.2:8080",
            "deny default-deny",
        ),
        (
            "allow tcp://127.0.0.1:8080",
            "connect tcp 127.0.0.1:8081",
            "deny default-deny",
        ),
        (
            "allow tcp://127.0.0.1:8080",
            "connect tcp [::1]:8080",
            "deny default-deny",
        ),
        (
            "allow tcp://10.0.0.0/8:*",
            "connect tcp 10.0.0.0:1",
            "allow --allow tcp://10.0.0.0/8:*",
        ),
        (
            "allow tcp://10.0.0.0/8:*",
            "connect tcp 10.255.255.255:65535",
            "allow --allow tcp://10.0.0.0/8:*",
        ),
        (
            "allow tcp://10.0.0.0/8:*",
            "connect tcp 9.255.255.255:80",
            "deny default-deny",
        ),
        (
            "allow tcp://10.0.0.0/8:*",
            "connect tcp 11.0.0.0:80",
            "deny default-deny",
        ),
        (
            "allow tcp://192.168.1.0/24:80",
            "connect tcp 192.168.1.255:80",
            "allow --allow tcp://192.168.1.0/24:80",
        ),
        (
            "allow tcp://192.168.1.0/24:80",
            "connect tcp 192.168.2.0:80",
            "deny default-deny",
        ),
        (
            "allow tcp://192.168.1.2/31:80",
            "connect tcp 192.168.1.3:80",
            "allow --allow tcp://192.168.1.2/31:80",
        ),
        (
            "allow tcp://192.168.1.2/31:80",
            "connect tcp 192.168.1.4:80",
            "deny default-deny",
        ),
        (
            "allow tcp://192.168.1.2/31:80",
            "connect tcp 192.168.1.1:80",
            "deny default-deny",
        ),
        (
            "allow tcp://0.0.0.0/0:443",
            "connect tcp 8.8.8.8:443",
            "allow --allow tcp://0.0.0.0/0:443",
        ),
        (
            "allow tcp://0.0.0.0/0:443",
            "connect tcp 255.255.255.255:443",
            "deny special:broadcast",
        ),
        (
            "allow tcp://0.0.0.0/0:443",
            "connect tcp [2001:db8::1]:443",
            "deny default-deny",
        ),
        (
            "allow tcp://128.0.0.0/1:1",
            "connect tcp 127.255.255.255:1",
            "deny default-deny",
        ),
        (
            "allow tcp://128.0.0.0/1:1",
            "connect tcp 128.0.0.0:1",
            "allow --allow tcp://128.0.0.0/1:1",
        ),
        // --- IPv6 addresses and networks.
        (
            "allow tcp://[::1]:80",
            "connect tcp [::1]:80",
            "allow --allow tcp://[::1]:80",
        ),
        (
            "allow tcp://[::1]:80",
            "connect tcp [::2]:80",
            "deny default-deny",
        ),
        (
            "allow tcp://[::1]:80",
            "connect tcp 127.0.0.1:80",
            "deny default-deny",
        ),
        (
            "allow tcp://[fd00::]/8:*",
            "connect tcp [fd00::1]:1",
            "allow --allow tcp://[fd00::]/8:*",
        ),
        (
            "allow tcp://[fd00::]/8:*",
            "connect tcp [fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:1",
            "allow --allow tcp://[fd00::]/8:*",
        ),
        (
            "allow tcp://[fd00::]/8:*",
            "connect tcp [fc00::1]:1",
            "deny default-deny",
        ),
        (
            "allow tcp://[fd00::]/8:*",
            "connect tcp [fe00::]:1",
            "deny default-deny",
        ),
        (
            "allow tcp://[2001:db8::]/127:9",
            "connect tcp [2001:db8::1]:9",
            "allow --allow tcp://[2001:db8::]/127:9",
        ),
        (
            "allow tcp://[2001:db8::]/127:9",
            "connect tcp [2001:db8::2]:9",
            "deny default-deny",
        ),
        (
            "allow tcp://[::]/0:9",
            "connect tcp [2001:db8::2]:9",
            "allow --allow tcp://[::]/0:9",
        ),
        // [::]/0 is IPv6: IPv4, even written mapped, is judged as IPv4.
        (
            "allow tcp://[::]/0:9",
            "connect tcp 10.0.0.1:9",
            "deny default-deny",
        ),
        (
            "allow tcp://[::]/0:9",
            "connect tcp [::ffff:10.0.0.1]:9",
            "deny default-deny",
        ),
        // --- IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
        (
            "allow tcp://10.0.0.1:80",
            "connect tcp [::ffff:10.0.0.1]:80",
            "allow --allow tcp://10.0.0.1:80",
        ),
        (
            "allow tcp://10.0.0.0/8:80",
            "connect tcp [::ffff:10.9.9.9]:80",
            "allow --allow tcp://10.0.0.0/8:80",
        ),
        (
            "allow tcp://10.0.0.0/8:80",
            "connect tcp [::ffff:11.0.0.1]:80",
            "deny default-deny",
        ),
        (
            "allow tcp://[::ffff:10.0.0.0]/104:80",
            "connect tcp 10.1.1.1:80",
            "allow --allow tcp://10.0.0.0/8:80",
        ),
        (
            "allow tcp://[::ffff:10.0.0.0]/104:80",
            "connect tcp [::ffff:10.1.1.1]:80",
            "allow --allow tcp://10.0.0.0/8:80",
        ),
        (
            "deny tcp://10.0.0.1:*; allow tcp://*:*",
            "connect tcp [::ffff:10.0.0.1]:80",
            "deny --deny tcp://10.0.0.1:*",
        ),
        (
            "deny tcp://[::ffff:10.0.0.1]:*; allow tcp://*:*",
            "connect tcp 10.0.0.1:80",
            "deny --deny tcp://10.0.0.1:*",
        ),
        // Only ::ffff:0:0/96 is mapped: the deprecated compatible form ::a.b.c.d is IPv6.
        (
            "allow tcp://10.0.0.1:80",
            "connect tcp [::10.0.0.1]:80",
            "deny default-deny",
        ),
        // --- IPv6 scope ids do not change a verdict.
        (
            "allow tcp://[fe80::]/10:80",
            "connect tcp [fe80::1%2]:80",
            "allow --allow tcp://[fe80::]/10:80",
        ),
        (
            "allow tcp://[fe80::]/10:80",
            "connect tcp [fe80::1%999]:80",
            "allow --allow tcp://[fe80::]/10:80",
        ),
        (
            "allow tcp://[fe80::1]:80",
            "connect tcp [fe80::1%3]:80",
            "allow --allow tcp://[fe80::1]:80",
        ),
        (
            "deny tcp://[fe80::1]:*; allow tcp://*:*",
            "connect tcp [fe80::1%3]:80",
            "deny --deny tcp://[fe80::1]:*",
        ),
        // --- Ports: single, range edges, lists, any.
        (
            "allow tcp://127.0.0.1:1000-2000",
            "connect tcp 127.0.0.1:999",
            "deny default-deny",
        ),
        (
            "allow tcp://127.0.0.1:1000-2000",
            "connect tcp 127.0.0.1:1000",
            "allow --allow tcp://127.0.0.1:1000-2000",
        ),
        (
            "allow tcp://127.0.0.1:1000-2000",
            "connect tcp 127.0.0.1:2000",
            "allow --allow tcp://127.0.0.1:1000-2000",
        ),
        (
            "allow tcp://127.0.0.1:1000-2000",
            "connect tcp 127.0.0.1:2001",
            "deny default-deny",
        ),
        (
            "allow tcp://127.0.0.1:1-65535",
            "connect tcp 127.0.0.1:65535",
            "allow --allow tcp://127.0.0.1:1-65535",
        ),
        (
            "allow tcp://127.0.0.1:1-65535",
            "connect tcp 127.0.0.1:1",
            "allow --allow tcp://127.0.0.1:1-65535",
        ),
        (
            "allow tcp://127.0.0.1:65535",
            "connect tcp 127.0.0.1:65534",
            "deny default-deny",
        ),
        (
            "allow tcp://127.0.0.1:{80,443}",
            "connect tcp 127.0.0.1:80",
            "allow --allow tcp://127.0.0.1:{80,443}",
        ),
        (
            "allow tcp://127.0.0.1:{80,443}",
            "connect tcp 127.0.0.1:443",
            "allow --allow tcp://127.0.0.1:{80,443}",
        ),
        (
            "allow tcp://127.0.0.1:{80,443}",
            "connect tcp 127.0.0.1:81",
            "deny default-deny",
        ),
        (
            "allow tcp://127.0.0.1:{80,8000-8002}",
            "connect tcp 127.0.0.1:8002",
            "allow --allow tcp://127.0.0.1:{80,8000-8002}",
        ),
        (
            "allow tcp://127.0.0.1:{80,8000-8002}",
            "connect tcp 127.0.0.1:8003",
            "deny default-deny",
        ),
        (
            "allow tcp://127.0.0.1:{80,8000-8002}",
            "connect tcp 127.0.0.1:7999",
            "deny default-deny",
        ),
        (
            "allow tcp://127.0.0.1:*",
            "connect tcp 127.0.0.1:1",
            "allow --allow tcp://127.0.0.1:*",
        ),
        (
            "allow tcp://127.0.0.1:*",
            "connect tcp 127.0.0.1:65535",
            "allow --allow tcp://127.0.0.1:*",
        ),
        // Port 0 (any port) is covered only by `*`.
        // (here a loopback port 0 is a self bind, which no rule needs)
        (
            "listen tcp://127.0.0.1:1-65535",
            "bind tcp 127.0.0.1:0",
            "allow self",
        ),
        (
            "listen tcp://10.0.0.1:1-65535",
            "bind tcp 10.0.0.1:0",
            "deny default-deny",
        ),
        (
            "listen tcp://127.0.0.1:*",
            "bind tcp 127.0.0.1:0",
            "allow --allow-listen tcp://127.0.0.1:*",
        ),
        (
            "listen tcp://127.0.0.1:{1-65535}",
            "listen tcp 127.0.0.1:0",
            "deny default-deny",
        ),
        // --- Schemes.
        (
            "allow tcp://127.0.0.1:53",
            "send udp 127.0.0.1:53",
            "deny default-deny",
        ),
        (
            "allow udp://127.0.0.1:53",
            "connect tcp 127.0.0.1:53",
            "deny default-deny",
        ),
        (
            "allow udp://127.0.0.1:53",
            "send udp 127.0.0.1:53",
            "allow --allow udp://127.0.0.1:53",
        ),
        (
            "allow *://127.0.0.1:53",
            "send udp 127.0.0.1:53",
            "allow --allow *://127.0.0.1:53",
        ),
        (
            "allow *://127.0.0.1:53",
            "connect tcp 127.0.0.1:53",
            "allow --allow *://127.0.0.1:53",
        ),
        (
            "allow udp://127.0.0.1:53; allow tcp://127.0.0.1:53",
            "connect tcp 127.0.0.1:53",
            "allow --allow tcp://127.0.0.1:53",
        ),
        (
            "listen udp://127.0.0.1:*",
            "listen tcp 127.0.0.1:5000",
            "deny default-deny",
        ),
        (
            "listen *://127.0.0.1:*",
            "bind udp 127.0.0.1:5000",
            "allow --allow-listen *://127.0.0.1:*",
        ),
        // --- Host lists.
        (
            "allow tcp://{10.0.0.1,[::1]}:80",
            "connect tcp 10.0.0.1:80",
            "allow --allow tcp://{10.0.0.1,[::1]}:80",
        ),
        (
            "allow tcp://{10.0.0.1,[::1]}:80",
            "connect tcp [::1]:80",
            "allow --allow tcp://{10.0.0.1,[::1]}:80",
        ),
        (
            "allow tcp://{10.0.0.1,[::1]}:80",
            "connect tcp 10.0.0.2:80",
            "deny default-deny",
        ),
        (
            "allow tcp://{10.0.0.0/8,192.168.0.0/16}:{80,443}",
            "connect tcp 192.168.3.4:443",
            "allow --allow tcp://{10.0.0.0/8,192.168.0.0/16}:{80,443}",
        ),
        (
            "allow tcp://{10.0.0.0/8,192.168.0.0/16}:{80,443}",
            "connect tcp 192.168.3.4:8080",
            "deny default-deny",
        ),
        (
            "allow tcp://{example.com,10.0.0.1}:80",
            "connect tcp 10.0.0.1:80",
            "allow --allow tcp://{example.com,10.0.0.1}:80",
        ),
        // --- `*` hosts and names (by address, a name matches only what lookups granted).
        (
            "allow tcp://*:443",
            "connect tcp 1.2.3.4:443",
            "allow --allow tcp://*:443",
        ),
        (
            "allow tcp://*:443",
            "connect tcp [2001:db8::1]:443",
            "allow --allow tcp://*:443",
        ),
        (
            "allow tcp://*:443",
            "connect tcp 1.2.3.4:80",
            "deny default-deny",
        ),
        (
            "allow tcp://example.com:443",
            "connect tcp 93.184.216.34:443",
            "deny default-deny",
        ),
        (
            "allow tcp://*.example.com:443",
            "connect tcp 93.184.216.34:443",
            "deny default-deny",
        ),
        ("allow *://*:*", "send udp [::1]:9", "allow --allow *://*:*"),
        // --- Deny wins, in every direction, whatever the order.
        (
            "allow tcp://10.0.0.0/8:*; deny tcp://10.0.0.13:*",
            "connect tcp 10.0.0.13:80",
            "deny --deny tcp://10.0.0.13:*",
        ),
        (
            "deny tcp://10.0.0.13:*; allow tcp://10.0.0.0/8:*",
            "connect tcp 10.0.0.13:80",
            "deny --deny tcp://10.0.0.13:*",
        ),
        (
            "allow tcp://10.0.0.0/8:*; deny tcp://10.0.0.13:*",
            "connect tcp 10.0.0.14:80",
            "allow --allow tcp://10.0.0.0/8:*",
        ),
        (
            "allow tcp://10.0.0.0/8:*; deny tcp://10.0.0.0/8:22",
            "connect tcp 10.1.1.1:22",
            "deny --deny tcp://10.0.0.0/8:22",
        ),
        (
            "allow tcp://10.0.0.0/8:*; deny tcp://10.0.0.0/8:22",
            "connect tcp 10.1.1.1:23",
            "allow --allow tcp://10.0.0.0/8:*",
        ),
        (
            "allow *://10.0.0.1:*; deny udp://10.0.0.1:*",
            "connect tcp 10.0.0.1:53",
            "allow --allow *://10.0.0.1:*",
        ),
        (
            "allow *://10.0.0.1:*; deny udp://10.0.0.1:*",
            "send udp 10.0.0.1:53",
            "deny --deny udp://10.0.0.1:*",
        ),
        (
            "listen tcp://127.0.0.1:*; deny tcp://127.0.0.1:22",
            "bind tcp 127.0.0.1:22",
            "deny --deny tcp://127.0.0.1:22",
        ),
        (
            "listen tcp://127.0.0.1:*; deny tcp://127.0.0.1:22",
            "listen tcp 127.0.0.1:22",
            "deny --deny tcp://127.0.0.1:22",
        ),
        (
            "listen tcp://127.0.0.1:*; deny tcp://10.0.0.0/8:*",
            "accept tcp 10.1.2.3:5000",
            "deny --deny tcp://10.0.0.0/8:*",
        ),
        (
            "listen tcp://127.0.0.1:*; deny tcp://10.0.0.0/8:*",
            "accept tcp 127.0.0.1:5000",
            "allow --allow-listen tcp://127.0.0.1:*",
        ),
        (
            "listen tcp://127.0.0.1:*; accept tcp://10.0.0.0/8:*; deny tcp://10.0.0.13:*",
            "accept tcp 10.0.0.13:5000",
            "deny --deny tcp://10.0.0.13:*",
        ),
        (
            "allow udp://10.0.0.53:53; deny udp://10.0.0.53:53",
            "receive udp 10.0.0.53:53",
            "deny --deny udp://10.0.0.53:53",
        ),
        (
            "deny tcp://*:*; allow tcp://*:*",
            "connect tcp 127.0.0.1:80",
            "deny --deny tcp://*:*",
        ),
        (
            "deny tcp://*:*; allow tcp://*:*",
            "bind tcp 0.0.0.0:0",
            "deny --deny tcp://*:*",
        ),
        (
            "deny tcp://0.0.0.0/0:*; allow tcp://*:*",
            "connect tcp [::1]:80",
            "allow --allow tcp://*:*",
        ),
        // A deny on some addresses does not cover the unspecified address (every address).
        (
            "allow tcp://*:*; deny tcp://10.0.0.0/8:*",
            "bind tcp 0.0.0.0:0",
            "allow --allow tcp://*:*",
        ),
        // --- Binds: explicit binds by listen rules; the implicit bind (unspecified, port
        // 0) before a connect or send by any outbound rule of the scheme.
        (
            "listen tcp://127.0.0.1:*",
            "bind tcp 127.0.0.1:8080",
            "allow --allow-listen tcp://127.0.0.1:*",
        ),
        (
            "listen tcp://127.0.0.1:8080",
            "bind tcp 127.0.0.1:8081",
            "deny default-deny",
        ),
        (
            "allow tcp://127.0.0.1:*",
            "bind tcp 127.0.0.1:8080",
            "deny default-deny",
        ),
        (
            "allow tcp://10.0.0.1:80",
            "bind tcp 0.0.0.0:0",
            "allow --allow tcp://10.0.0.1:80",
        ),
        (
            "allow tcp://10.0.0.1:80",
            "bind tcp [::]:0",
            "allow --allow tcp://10.0.0.1:80",
        ),
        (
            "allow tcp://10.0.0.1:80",
            "bind tcp 0.0.0.0:8080",
            "deny default-deny",
        ),
        (
            "allow tcp://10.0.0.1:80",
            "bind tcp 10.0.0.2:0",
            "deny default-deny",
        ),
        (
            "allow tcp://10.0.0.1:80",
            "bind tcp 127.0.0.1:0",
            "allow self",
        ),
        (
            "allow udp://10.0.0.1:53",
            "bind tcp 0.0.0.0:0",
            "deny default-deny",
        ),
        (
            "allow udp://10.0.0.1:53",
            "bind udp 0.0.0.0:0",
            "allow --allow udp://10.0.0.1:53",
        ),
        (
            "allow tcp://10.0.0.1:53",
            "bind udp 0.0.0.0:0",
            "deny default-deny",
        ),
        (
            "listen udp://127.0.0.1:5353",
            "bind udp 127.0.0.1:5353",
            "allow --allow-listen udp://127.0.0.1:5353",
        ),
        (
            "listen udp://127.0.0.1:5353",
            "bind udp 127.0.0.1:5354",
            "deny default-deny",
        ),
        (
            "listen tcp://*:*",
            "bind tcp 0.0.0.0:0",
            "allow --allow-listen tcp://*:*",
        ),
        (
            "listen tcp://*:*; allow tcp://10.0.0.1:80",
            "bind tcp 0.0.0.0:0",
            "allow --allow-listen tcp://*:*",
        ),
        // --- The unspecified address means every address: only `*`, `/0` or itself.
        (
            "listen tcp://127.0.0.1:*",
            "listen tcp 0.0.0.0:8080",
            "deny default-deny",
        ),
        (
            "listen tcp://0.0.0.0/0:*",
            "listen tcp 0.0.0.0:8080",
            "allow --allow-listen tcp://0.0.0.0/0:*",
        ),
        (
            "listen tcp://0.0.0.0:*",
            "listen tcp 0.0.0.0:8080",
            "allow --allow-listen tcp://0.0.0.0:*",
        ),
        (
            "listen tcp://0.0.0.0/8:*",
            "listen tcp 0.0.0.0:8080",
            "deny default-deny",
        ),
        (
            "listen tcp://*:8080",
            "listen tcp 0.0.0.0:8080",
            "allow --allow-listen tcp://*:8080",
        ),
        (
            "listen tcp://[::1]:*",
            "listen tcp [::]:8080",
            "deny default-deny",
        ),
        (
            "listen tcp://[::]/0:*",
            "listen tcp [::]:8080",
            "allow --allow-listen tcp://[::]/0:*",
        ),
        (
            "listen tcp://[::]:*",
            "listen tcp [::]:8080",
            "allow --allow-listen tcp://[::]:*",
        ),
        (
            "listen tcp://0.0.0.0/0:*",
            "listen tcp [::]:8080",
            "deny default-deny",
        ),
        (
            "listen tcp://0.0.0.0:*",
            "connect tcp 0.0.0.0:80",
            "deny special:unspecified",
        ),
        // --- Listening: the bound address; without a bind, unspecified and port 0.
        (
            "listen tcp://127.0.0.1:*",
            "listen tcp 127.0.0.1:40000",
            "allow --allow-listen tcp://127.0.0.1:*",
        ),
        (
            "listen tcp://127.0.0.1:8080",
            "listen tcp 127.0.0.1:8080",
            "allow --allow-listen tcp://127.0.0.1:8080",
        ),
        (
            "listen tcp://127.0.0.1:8080",
            "listen tcp [::1]:8080",
            "deny default-deny",
        ),
        (
            "listen tcp://*:*",
            "listen tcp 0.0.0.0:0",
            "allow --allow-listen tcp://*:*",
        ),
        (
            "listen tcp://*:8080",
            "listen tcp 0.0.0.0:0",
            "deny default-deny",
        ),
        (
            "allow tcp://*:*",
            "listen tcp 0.0.0.0:0",
            "deny default-deny",
        ),
        (
            "allow tcp://*:*",
            "listen tcp 127.0.0.1:8080",
            "deny default-deny",
        ),
        // --- Accepting: any peer once listening is allowed, unless accept rules exist.
        (
            "listen tcp://127.0.0.1:*",
            "accept tcp 127.0.0.1:50000",
            "allow --allow-listen tcp://127.0.0.1:*",
        ),
        (
            "listen tcp://127.0.0.1:*",
            "accept tcp [2001:db8::1]:50000",
            "allow --allow-listen tcp://127.0.0.1:*",
        ),
        (
            "allow tcp://*:*",
            "accept tcp 127.0.0.1:50000",
            "deny default-deny",
        ),
        (
            "listen tcp://127.0.0.1:*; accept tcp://127.0.0.0/8:*",
            "accept tcp 127.0.0.1:50000",
            "allow --allow-accept tcp://127.0.0.0/8:*",
        ),
        (
            "listen tcp://127.0.0.1:*; accept tcp://127.0.0.0/8:*",
            "accept tcp 10.0.0.1:50000",
            "deny default-deny",
        ),
        (
            "listen tcp://127.0.0.1:*; accept tcp://127.0.0.0/8:1-1023",
            "accept tcp 127.0.0.1:50000",
            "deny default-deny",
        ),
        (
            "listen tcp://127.0.0.1:*; accept udp://10.0.0.0/8:*",
            "accept tcp 127.0.0.1:50000",
            "allow --allow-listen tcp://127.0.0.1:*",
        ),
        (
            "accept tcp://127.0.0.0/8:*",
            "accept tcp 127.0.0.1:50000",
            "deny default-deny",
        ),
        (
            "listen tcp://127.0.0.1:*; accept tcp://[::1]:*; accept tcp://127.0.0.1:*",
            "accept tcp 127.0.0.1:9",
            "allow --allow-accept tcp://127.0.0.1:*",
        ),
        // --- UDP: send, replies, unsolicited datagrams.
        (
            "allow udp://10.0.0.53:53",
            "send udp 10.0.0.53:53",
            "allow --allow udp://10.0.0.53:53",
        ),
        (
            "allow udp://10.0.0.53:53",
            "send udp 10.0.0.54:53",
            "deny default-deny",
        ),
        (
            "allow udp://10.0.0.53:53",
            "receive udp 10.0.0.53:53",
            "allow --allow udp://10.0.0.53:53",
        ),
        (
            "allow udp://10.0.0.53:53",
            "receive udp 10.0.0.53:54",
            "deny default-deny",
        ),
        (
            "allow udp://10.0.0.53:53",
            "receive udp 10.6.6.6:53",
            "deny default-deny",
        ),
        (
            "listen udp://0.0.0.0:5353",
            "receive udp 10.6.6.6:1234",
            "allow --allow-listen udp://0.0.0.0:5353",
        ),
        (
            "listen udp://0.0.0.0:5353; accept udp://10.0.0.0/8:*",
            "receive udp 10.6.6.6:1234",
            "allow --allow-accept udp://10.0.0.0/8:*",
        ),
        (
            "listen udp://0.0.0.0:5353; accept udp://10.0.0.0/8:*",
            "receive udp 11.6.6.6:1234",
            "deny default-deny",
        ),
        (
            "listen udp://0.0.0.0:5353; accept tcp://10.0.0.0/8:*",
            "receive udp 11.6.6.6:1234",
            "allow --allow-listen udp://0.0.0.0:5353",
        ),
        (
            "listen tcp://0.0.0.0:*",
            "receive udp 10.6.6.6:1234",
            "deny default-deny",
        ),
        (
            "listen udp://127.0.0.1:*; allow udp://10.0.0.53:53; accept udp://127.0.0.1:*",
            "receive udp 10.0.0.53:53",
            "allow --allow udp://10.0.0.53:53",
        ),
        // --- First matching rule decides, in the order given.
        (
            "allow tcp://10.0.0.0/8:*; allow tcp://10.0.0.1:80",
            "connect tcp 10.0.0.1:80",
            "allow --allow tcp://10.0.0.0/8:*",
        ),
        (
            "allow tcp://10.0.0.1:80; allow tcp://10.0.0.0/8:*",
            "connect tcp 10.0.0.1:80",
            "allow --allow tcp://10.0.0.1:80",
        ),
        (
            "deny tcp://10.0.0.1:*; deny tcp://10.0.0.0/8:*",
            "connect tcp 10.0.0.1:80",
            "deny --deny tcp://10.0.0.1:*",
        ),
        // --- Inheriting the network: everything, but deny rules still win.
        ("inherit", "connect tcp 8.8.8.8:53", "allow inherit-network"),
        ("inherit", "receive udp 8.8.8.8:53", "allow inherit-network"),
        ("inherit", "listen tcp 0.0.0.0:0", "allow inherit-network"),
        (
            "inherit; deny tcp://10.0.0.0/8:*",
            "connect tcp 10.0.0.1:80",
            "deny --deny tcp://10.0.0.0/8:*",
        ),
        (
            "inherit; deny tcp://10.0.0.0/8:*",
            "connect tcp 11.0.0.1:80",
            "allow inherit-network",
        ),
        (
            "inherit; deny *://*:25",
            "send udp 1.2.3.4:25",
            "deny --deny *://*:25",
        ),
        // --- No rules: nothing.
        ("", "connect tcp 127.0.0.1:80", "deny default-deny"),
        ("", "bind tcp 0.0.0.0:0", "deny default-deny"),
        ("", "listen tcp 0.0.0.0:0", "deny default-deny"),
        ("", "accept tcp 127.0.0.1:80", "deny default-deny"),
        ("", "bind udp 0.0.0.0:0", "deny default-deny"),
        ("", "send udp 127.0.0.1:53", "deny default-deny"),
        ("", "receive udp 127.0.0.1:53", "deny default-deny"),
        (
            "deny tcp://*:*",
            "connect tcp 127.0.0.1:80",
            "deny --deny tcp://*:*",
        ),
    ];
    assert!(cases.len() >= 150, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (spec, use_text, expected) in cases {
        let policy = policy(spec);
        let (socket_use, addr) = attempt(use_text);
        let got = verdict_text(&policy, policy.decide(addr, socket_use));
        if got != *expected {
            failures.push(format!(
                "[{spec}] {use_text}: expected {expected}, got {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Lookups: allowed only for names an allow or listen rule covers, by name, suffix or `*`.
#[test]
fn lookups() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "allow tcp://example.com:443",
            "example.com",
            "allow --allow tcp://example.com:443",
        ),
        (
            "allow tcp://example.com:443",
            "EXAMPLE.com.",
            "allow --allow tcp://example.com:443",
        ),
        (
            "allow tcp://example.com:443",
            "www.example.com",
            "deny default-deny",
        ),
        (
            "allow tcp://example.com:443",
            "example.org",
            "deny default-deny",
        ),
        (
            "allow tcp://*.example.com:443",
            "www.example.com",
            "allow --allow tcp://*.example.com:443",
        ),
        (
            "allow tcp://*.example.com:443",
            "a.b.example.com",
            "allow --allow tcp://*.example.com:443",
        ),
        (
            "allow tcp://*.example.com:443",
            "example.com",
            "deny default-deny",
        ),
        (
            "allow tcp://*.example.com:443",
            "badexample.com",
            "deny default-deny",
        ),
        (
            "allow tcp://*:443",
            "anything.test",
            "allow --allow tcp://*:443",
        ),
        (
            "allow tcp://10.0.0.0/8:*",
            "example.com",
            "deny default-deny",
        ),
        (
            "listen tcp://localhost:8080",
            "localhost",
            "allow --allow-listen tcp://localhost:8080",
        ),
        (
            "allow udp://{ns1.example.net,10.0.0.53}:53",
            "ns1.example.net",
            "allow --allow udp://{ns1.example.net,10.0.0.53}:53",
        ),
        (
            "allow tcp://*.example.com:*; deny *://bad.example.com:*",
            "bad.example.com",
            "deny --deny *://bad.example.com:*",
        ),
        (
            "allow tcp://*.example.com:*; deny tcp://bad.example.com:*",
            "bad.example.com",
            "allow --allow tcp://*.example.com:*",
        ),
        (
            "allow tcp://*.example.com:*; deny *://*.bad.example.com:*",
            "x.bad.example.com",
            "deny --deny *://*.bad.example.com:*",
        ),
        ("inherit", "example.com", "allow inherit-network"),
        (
            "inherit; deny *://example.com:*",
            "example.com",
            "deny --deny *://example.com:*",
        ),
        ("", "localhost", "deny default-deny"),
        (
            "allow tcp://bücher.example:443",
            "xn--bcher-kva.example",
            "allow --allow tcp://xn--bcher-kva.example:443",
        ),
    ];
    let mut failures = Vec::new();
    for (spec, name, expected) in cases {
        let policy = policy(spec);
        let got = verdict_text(&policy, policy.decide_lookup(name));
        if got != *expected {
            failures.push(format!(
                "[{spec}] lookup {name}: expected {expected}, got {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A lookup grants its addresses to the rules covering the name — their scheme, their
/// ports, their direction — and to no other rule or instance.
#[test]
fn name_grants_are_scoped_to_their_rules() {
    let policy = policy(
        "allow tcp://a.example:80; allow udp://b.example:53; listen tcp://*.local.test:*; \
         deny tcp://bad.example:*",
    );
    let a: IpAddr = "10.0.0.1".parse().expect("an address");
    let grants = NameGrants::new();
    let check = |grants: &NameGrants, text: &str| {
        let (socket_use, addr) = attempt(text);
        verdict_text(
            &policy,
            policy.decide_with(
                addr,
                socket_use,
                grants.read().rules_for(addr.ip().to_canonical()),
            ),
        )
    };
    assert_eq!(
        check(&grants, "connect tcp 10.0.0.1:80"),
        "deny default-deny"
    );

    grants.record(&policy, "b.example", &[a]);
    // b.example's rule is udp port 53: a's address gains nothing else.
    assert_eq!(
        check(&grants, "connect tcp 10.0.0.1:80"),
        "deny default-deny"
    );
    assert_eq!(
        check(&grants, "send udp 10.0.0.1:53"),
        "allow --allow udp://b.example:53"
    );
    assert_eq!(check(&grants, "send udp 10.0.0.1:54"), "deny default-deny");

    grants.record(
        &policy,
        "a.example",
        &["::ffff:10.0.0.1".parse().expect("mapped")],
    );
    assert_eq!(
        check(&grants, "connect tcp 10.0.0.1:80"),
        "allow --allow tcp://a.example:80"
    );
    assert_eq!(
        check(&grants, "connect tcp [::ffff:10.0.0.1]:80"),
        "allow --allow tcp://a.example:80"
    );
    assert_eq!(
        check(&grants, "connect tcp 10.0.0.2:80"),
        "deny default-deny"
    );
    // Outbound grants do not open listening.
    assert_eq!(
        check(&grants, "listen tcp 10.0.0.1:80"),
        "deny default-deny"
    );

    grants.record(
        &policy,
        "db.local.test",
        &["127.0.0.5".parse().expect("an address")],
    );
    assert_eq!(
        check(&grants, "listen tcp 127.0.0.5:9000"),
        "allow --allow-listen tcp://*.local.test:*"
    );
    assert_eq!(
        check(&grants, "connect tcp 127.0.0.5:9000"),
        "deny default-deny"
    );

    // A name a deny rule covers denies what it resolves to, even if another name shares it.
    grants.record(&policy, "bad.example", &[a]);
    assert_eq!(
        check(&grants, "connect tcp 10.0.0.1:80"),
        "deny --deny tcp://bad.example:*"
    );

    // Another instance's grants are its own.
    let other = NameGrants::new();
    assert_eq!(check(&other, "send udp 10.0.0.1:53"), "deny default-deny");
}

/// `decide_name` judges a use on a name's addresses as the guest would after a lookup.
#[test]
fn decisions_by_name() {
    use SocketAddrUse::*;
    let policy = policy(
        "allow tcp://*.example.com:443; allow tcp://10.0.0.0/8:*; deny tcp://bad.example.com:*",
    );
    let check =
        |name, port, socket_use| verdict_text(&policy, policy.decide_name(name, port, socket_use));
    assert_eq!(
        check("www.example.com", 443, TcpConnect),
        "allow --allow tcp://*.example.com:443"
    );
    assert_eq!(
        check("WWW.example.com.", 443, TcpConnect),
        "allow --allow tcp://*.example.com:443"
    );
    assert_eq!(
        check("www.example.com", 80, TcpConnect),
        "deny default-deny"
    );
    assert_eq!(
        check("bad.example.com", 443, TcpConnect),
        "deny --deny tcp://bad.example.com:*"
    );
    assert_eq!(check("www.example.com", 443, UdpSend), "deny default-deny");
    assert_eq!(check("intranet", 80, TcpConnect), "deny default-deny");
}

/// What the sandbox enables follows the rules: TCP, UDP and lookups only when needed.
#[test]
fn enabled_transports_follow_the_rules() {
    let enabled = |spec: &str| {
        let policy = policy(spec);
        (
            policy.uses(Transport::Tcp),
            policy.uses(Transport::Udp),
            policy.uses_names(),
        )
    };
    // TCP is on for self connections (a loopback socket pair of the instance's own).
    assert_eq!(enabled(""), (true, false, false));
    assert_eq!(enabled("deny *://*:*"), (true, false, false));
    assert_eq!(enabled("accept tcp://10.0.0.0/8:*"), (true, false, false));
    assert_eq!(enabled("allow tcp://10.0.0.1:80"), (true, false, false));
    assert_eq!(enabled("listen udp://127.0.0.1:*"), (true, true, false));
    let no_self = |spec: &str| {
        let policy = policy(spec).without_self();
        (policy.uses(Transport::Tcp), policy.uses(Transport::Udp))
    };
    assert_eq!(no_self(""), (false, false));
    assert_eq!(no_self("listen udp://127.0.0.1:*"), (false, true));
    assert_eq!(enabled("allow *://example.com:80"), (true, true, true));
    assert_eq!(enabled("allow tcp://*:443"), (true, false, true));
    assert_eq!(enabled("inherit"), (true, true, true));
}

/// Rules print in a canonical form that parses back to the same rule.
#[test]
fn display_round_trips() {
    for (text, canonical) in [
        ("tcp://127.0.0.1:80", "tcp://127.0.0.1:80"),
        ("TCP://127.0.0.1:80", "tcp://127.0.0.1:80"),
        ("tcp://[::1]:*", "tcp://[::1]:*"),
        ("tcp://[fd00::]/8:443", "tcp://[fd00::]/8:443"),
        ("tcp://[::ffff:10.0.0.1]:80", "tcp://10.0.0.1:80"),
        ("tcp://0.0.0.0/0:5-5", "tcp://0.0.0.0/0:5"),
        (
            "udp://{10.0.0.1,[::1],Example.COM.,*.test}:{53,5353-5354}",
            "udp://{10.0.0.1,[::1],example.com,*.test}:{53,5353-5354}",
        ),
        ("*://*:*", "*://*:*"),
        ("tcp://{10.0.0.1}:{80}", "tcp://10.0.0.1:80"),
    ] {
        let rule: Rule = text.parse().unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(rule.to_string(), canonical);
        assert_eq!(canonical.parse::<Rule>(), Ok(rule));
    }
}

/// Malformed rules name the rule, the part and the reason.
#[test]
fn parse_errors() {
    for (text, message) in [
        ("tcp://", "rule has nothing after the scheme"),
        ("127.0.0.1:80", "rule expected SCHEME://HOST:PORTS"),
        (
            "http://127.0.0.1:80",
            "scheme `http` is an application protocol",
        ),
        (
            "ftp://127.0.0.1:80",
            "scheme `ftp` is not a scheme: use tcp, udp or *",
        ),
        ("://127.0.0.1:80", "scheme is empty"),
        ("tcp://:80", "host is empty"),
        (
            "tcp://10.0.0.0/33:80",
            "host prefix length `/33` is not between 0 and 32",
        ),
        (
            "tcp://[::1]/129:80",
            "host prefix length `/129` is not between 0 and 128",
        ),
        (
            "tcp://10.0.0.0/x:80",
            "host prefix length `/x` is not between 0 and 32",
        ),
        (
            "tcp://10.0.0.1/8:80",
            "host `10.0.0.1/8` has bits set past its prefix: the network is 10.0.0.0/8",
        ),
        ("tcp://::1:80", "looks like IPv6: write it in brackets"),
        ("tcp://[::1:80", "host has `[` without `]`"),
        ("tcp://[zz::1]:80", "host `zz::1` is not an IPv6 address"),
        ("tcp://[::1]x:80", "host expected `/LEN` after `[::1]`"),
        (
            "tcp://10.0.0.256:80",
            "host `10.0.0.256` is not an IPv4 address",
        ),
        (
            "tcp://0x7f.1:80",
            "host `0x7f.1` reads as the IPv4 address 127.0.0.1",
        ),
        (
            "tcp://exa mple.com:80",
            "host `exa mple.com` is not a DNS name",
        ),
        (
            "tcp://a..b:80",
            "host `a..b` is not a DNS name: it has an empty label",
        ),
        ("tcp://-a.com:80", "a label starts or ends with `-`"),
        (
            "tcp://ex*ample.com:80",
            "`*` may only stand alone or start the name",
        ),
        ("tcp://*.:80", "host name is empty"),
        (
            "tcp://example.com/8:80",
            "a prefix length needs an IPv4 address",
        ),
        ("tcp://{}:80", "host list `{}` is empty"),
        ("tcp://{10.0.0.1,}:80", "host is empty"),
        (
            "tcp://{10.0.0.1:80",
            "host list `{10.0.0.1:80` has `{` without `}`",
        ),
        ("tcp://{*,10.0.0.1}:80", "`*` already covers every host"),
        ("tcp://{{10.0.0.1}}:80", "lists cannot be nested"),
        ("tcp://10.0.0.1", "ports are missing: write 10.0.0.1:PORT"),
        ("tcp://[::1]", "ports are missing: write [::1]:PORT"),
        ("tcp://127.0.0.1:", "ports are empty"),
        (
            "tcp://127.0.0.1:70000",
            "ports port 70000 is out of range (1-65535)",
        ),
        ("tcp://127.0.0.1:0", "ports port 0 means any port: write *"),
        ("tcp://127.0.0.1:9-1", "ports range `9-1` runs backwards"),
        ("tcp://127.0.0.1:a-b", "ports `a` is not a port"),
        ("tcp://127.0.0.1:{}", "ports list `{}` is empty"),
        ("tcp://127.0.0.1:{80,*}", "`*` already covers every port"),
        ("tcp://127.0.0.1:{80,70000}", "port 70000 is out of range"),
        (
            "tcp://[::1]]:80",
            "host expected `/LEN` after `[::1]`, found `]`",
        ),
    ] {
        let err = text.parse::<Rule>().expect_err(text).to_string();
        assert!(
            err.starts_with(&format!("invalid rule `{text}`: ")) && err.contains(message),
            "{text}: {err}"
        );
    }
}

/// Accept rules match peers by address: a name there is refused with the reason.
#[test]
fn accept_rules_cannot_name_hosts() {
    let err = Policy::deny_all()
        .allow_accept("tcp://peer.example:*")
        .expect_err("a name in an accept rule");
    assert!(
        err.to_string()
            .contains("accept rules match peers by address"),
        "{err}"
    );
    assert!(Policy::deny_all().allow_accept("tcp://*:*").is_ok());
}

/// Policy files: keys, line numbers for unknown keys and bad rules, flags' semantics.
#[test]
fn policy_files() {
    let policy = Policy::from_toml(
        "# comment\ninherit_network = false\nallow = [\"tcp://*.example.com:443\"]\n\
         listen = [\"tcp://127.0.0.1:*\"]\naccept = [\"tcp://127.0.0.0/8:*\"]\ndeny = [\"tcp://bad.example.com:*\"]\n",
        "p.toml",
    )
    .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        policy.to_string(),
        "allow  tcp://*.example.com:443\nlisten tcp://127.0.0.1:*\naccept tcp://127.0.0.0/8:*\ndeny   tcp://bad.example.com:*\n"
    );
    assert!(
        Policy::from_toml("inherit_network = true", "p.toml")
            .expect("valid")
            .inherits_network()
    );
    assert!(Policy::from_toml("", "p.toml").expect("valid").is_empty());

    for (text, expected) in [
        (
            "allow = []\nalow = []\n",
            "p.toml:2: unknown field `alow`, expected one of `inherit_network`, `allow`, `listen`, `accept`, `deny`",
        ),
        (
            "allow = [\n  \"tcp://10.0.0.1:80\",\n  \"tcp://10.0.0.1/33:80\",\n]\n",
            "p.toml:3: allow: invalid rule `tcp://10.0.0.1/33:80`: host prefix length `/33` is not between 0 and 32",
        ),
        (
            "\n\naccept = [\"tcp://x.example:1\"]",
            "p.toml:3: accept: invalid rule `tcp://x.example:1`: rule names a host by DNS name",
        ),
        (
            "allow = \"tcp://10.0.0.1:80\"",
            "p.toml:1: invalid type: string \"tcp://10.0.0.1:80\", expected a sequence",
        ),
        (
            "inherit_network = \"yes\"",
            "p.toml:1: invalid type: string \"yes\", expected a boolean",
        ),
        ("allow = [\"tcp://10.0.0.1:80\"", "p.toml:1: "),
        (
            "[allow]\nx = 1",
            "p.toml:1: invalid type: map, expected a sequence",
        ),
    ] {
        let err = Policy::from_toml(text, "p.toml")
            .expect_err(text)
            .to_string();
        assert!(err.starts_with(expected), "{text:?}: {err}");
        assert!(!err.contains('\n'), "one line: {err:?}");
    }
    let missing = Policy::load(std::path::Path::new("/nonexistent/p.toml")).expect_err("no file");
    assert!(
        missing
            .to_string()
            .starts_with("/nonexistent/p.toml: cannot read the policy file: "),
        "{missing}"
    );
}

/// One normalization for every name: lowercase, punycode, one final dot removed; what
/// is not a DNS name is refused.
#[test]
fn names_normalize_once() {
    for (name, normalized) in [
        ("Evil.Example", "evil.example"),
        ("evil.example.", "evil.example"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("_sip._tcp.example", "_sip._tcp.example"),
    ] {
        assert_eq!(normalize_name(name).as_deref(), Ok(normalized), "{name}");
        assert_eq!(
            normalize_name(normalized).as_deref(),
            Ok(normalized),
            "idempotent: {normalized}"
        );
    }
    let long_label = format!("{}.example", "x".repeat(64));
    let long_name = vec!["x".repeat(60); 5].join(".");
    for name in [
        "",
        ".",
        "evil.example..",
        "a..b",
        ".a",
        long_label.as_str(),
        long_name.as_str(),
        "a b",
        "-a.example",
    ] {
        assert!(normalize_name(name).is_err(), "{name:?} was accepted");
    }
}

/// A bind that asked for port 0 is decided on the port it got; the implicit, client
/// form (unspecified address, port 0) stays allowed by an outbound rule.
#[test]
fn binds_are_decided_on_what_they_got() {
    let policy = Policy::deny_all()
        .allow_listen("udp://127.0.0.1:*")
        .and_then(|p| p.deny("udp://127.0.0.1:1024-65535"))
        .and_then(|p| p.allow("udp://10.0.0.1:53"))
        .expect("valid rules");
    let asked: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    assert!(policy.decide(asked, SocketAddrUse::UdpBind).allowed);
    let got: SocketAddr = "127.0.0.1:40000".parse().expect("an address");
    let verdict = policy.decide_bound(asked, got, SocketAddrUse::UdpBind, &[]);
    assert!(!verdict.allowed);
    assert_eq!(
        policy.describe(verdict.by),
        "--deny udp://127.0.0.1:1024-65535"
    );
    let low: SocketAddr = "127.0.0.1:1000".parse().expect("an address");
    assert!(
        policy
            .decide_bound(asked, low, SocketAddrUse::UdpBind, &[])
            .allowed
    );

    let client: SocketAddr = "0.0.0.0:0".parse().expect("an address");
    let ephemeral: SocketAddr = "0.0.0.0:40000".parse().expect("an address");
    let verdict = policy.decide_bound(client, ephemeral, SocketAddrUse::UdpBind, &[]);
    assert!(verdict.allowed);
    assert_eq!(policy.describe(verdict.by), "--allow udp://10.0.0.1:53");
}

/// A rule error is one line whatever the rule held: control characters are escaped
/// (found by `fuzz/`'s `rule` target: a newline made a two-line error).
#[test]
fn rule_errors_are_one_line() {
    for text in [
        "\n",
        "tcp://a\nb:1",
        "tcp://127.0.0.1:\u{1b}[31m",
        "udp://x\r:1",
    ] {
        let err = text.parse::<Rule>().expect_err("not a rule");
        let message = err.to_string();
        assert_eq!(message.lines().count(), 1, "{message:?}");
        assert!(!message.chars().any(char::is_control), "{message:?}");
    }
    let err = "tcp://a\nb:1".parse::<Rule>().expect_err("not a rule");
    assert!(
        err.to_string()
            .starts_with("invalid rule `tcp://a\\nb:1`: "),
        "{err}"
    );
}

/// Audit-only mode, the special-address preset, answer filtering, published ports.
mod production {
    use std::net::{IpAddr, SocketAddr};

    use super::super::*;
    use SocketAddrUse::{TcpAccept, TcpBind, TcpConnect, TcpListen, UdpBind, UdpReceive, UdpSend};

    fn peer(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// The special-address preset: which kind each spelling is, which rules name it
    /// explicitly, and which uses it judges.
    #[test]
    fn special_addresses_by_kind_and_spelling() {
        use Special as K;
        let cases: &[(&str, Option<K>)] = &[
            ("169.254.169.254", Some(K::Metadata)),
            ("::ffff:169.254.169.254", Some(K::Metadata)),
            ("::169.254.169.254", Some(K::Metadata)),
            ("64:ff9b::a9fe:a9fe", Some(K::Metadata)),
            ("2002:a9fe:a9fe:ffff::1", Some(K::Metadata)),
            ("fd00:ec2::254", Some(K::Metadata)),
            ("100.100.100.200", Some(K::Metadata)),
            ("169.254.1.1", Some(K::LinkLocal)),
            ("fe80::1", Some(K::LinkLocal)),
            ("224.0.0.1", Some(K::Multicast)),
            ("ff02::1", Some(K::Multicast)),
            ("255.255.255.255", Some(K::Broadcast)),
            ("0.0.0.0", Some(K::Unspecified)),
            ("::", Some(K::Unspecified)),
            ("2002::", Some(K::Unspecified)),
            // Not special: loopback in every spelling, ordinary addresses, a NAT64
            // address of an ordinary one, `::1` (not `::0.0.0.1`).
            ("127.0.0.1", None),
            ("::1", None),
            ("::ffff:127.0.0.1", None),
            ("10.0.0.1", None),
            ("64:ff9b::a00:1", None),
            ("2002:a00:1::1", None),
            ("2001:db8::1", None),
            ("169.253.255.255", None),
            ("fd00:ec2::253", None),
            ("0.0.0.1", None),
        ];
        for &(ip, kind) in cases {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(K::of(parsed), kind, "{ip}");
        }
        for (net, kind) in [
            ("169.254.169.254/32", Some(K::Metadata)),
            ("169.254.0.0/16", Some(K::LinkLocal)),
            ("169.254.0.0/15", None),
            ("0.0.0.0/0", None),
            ("::/0", None),
            ("0.0.0.0/32", Some(K::Unspecified)),
            ("::ffff:169.254.169.254/128", Some(K::Metadata)),
            ("64:ff9b::a9fe:0/112", Some(K::LinkLocal)),
            ("64:ff9b::/96", None),
            ("2002:a9fe::/32", Some(K::LinkLocal)),
            ("2002::/16", None),
            ("::a9fe:a9fe/128", Some(K::Metadata)),
            ("::/96", None),
            ("fe80::/10", Some(K::LinkLocal)),
            ("fe80::/9", None),
            ("ff00::/8", Some(K::Multicast)),
            ("224.0.0.0/4", Some(K::Multicast)),
        ] {
            let parsed: ipnet::IpNet = net.parse().unwrap();
            assert_eq!(K::of_net(parsed), kind, "{net}");
        }
    }

    #[test]
    fn special_preset_judges_outbound_uses_only() {
        let policy = Policy::inherit_network();
        for (use_, allowed) in [
            (TcpConnect, false),
            (UdpSend, false),
            (TcpBind, true),
            (UdpBind, true),
            (TcpListen, true),
            (TcpAccept, true),
            (UdpReceive, true),
        ] {
            let verdict = policy.decide(peer("169.254.1.1:80"), use_);
            assert_eq!(verdict.allowed, allowed, "{use_:?}");
        }
        // A deny rule still wins over an explicit allow, and is named as the decider.
        let policy = Policy::deny_all()
            .allow("tcp://169.254.169.254:80")
            .unwrap()
            .deny("tcp://169.254.0.0/16:*")
            .unwrap();
        let verdict = policy.decide(peer("169.254.169.254:80"), TcpConnect);
        assert!(!verdict.allowed);
        assert_eq!(policy.describe(verdict.by), "--deny tcp://169.254.0.0/16:*");
        // An explicit rule must fit the use's scheme and port too.
        let policy = Policy::inherit_network()
            .allow("udp://169.254.169.254:80")
            .unwrap()
            .allow("tcp://169.254.169.254:81")
            .unwrap();
        let verdict = policy.decide(peer("169.254.169.254:80"), TcpConnect);
        assert_eq!(policy.describe(verdict.by), "special:metadata");
        // A name rule does not name the address: its grant is no explicit rule.
        let policy = Policy::deny_all()
            .allow("tcp://metadata.internal:80")
            .unwrap();
        let granted = [RuleRef {
            direction: Direction::Allow,
            index: 0,
        }];
        let verdict = policy.decide_with(peer("169.254.169.254:80"), TcpConnect, &granted);
        assert_eq!(policy.describe(verdict.by), "special:metadata");
    }

    #[test]
    fn lookup_answers_are_decided() {
        let ip = |text: &str| -> IpAddr { text.parse().unwrap() };
        let policy = Policy::deny_all()
            .allow("tcp://example.com:443")
            .unwrap()
            .deny("tcp://10.0.0.0/8:*")
            .unwrap()
            .deny("tcp://192.168.0.1:22")
            .unwrap();
        let describe = |policy: &Policy, name: &str, addr: &str| {
            let verdict = policy.decide_answer(name, ip(addr));
            (verdict.allowed, policy.describe(verdict.by))
        };
        assert_eq!(
            describe(&policy, "example.com", "10.1.2.3"),
            (false, "--deny tcp://10.0.0.0/8:*".into())
        );
        // A deny rule on another port leaves the answer usable on 443.
        assert_eq!(
            describe(&policy, "example.com", "192.168.0.1"),
            (true, "--allow tcp://example.com:443".into())
        );
        assert_eq!(
            describe(&policy, "example.com", "::ffff:169.254.169.254"),
            (false, "special:metadata".into())
        );
        assert_eq!(
            describe(&policy, "example.com", "93.184.216.34"),
            (true, "--allow tcp://example.com:443".into())
        );
        // Under inherit_network only a deny rule on every scheme and port refuses an answer.
        let policy = Policy::inherit_network()
            .deny("tcp://10.0.0.0/8:*")
            .unwrap()
            .deny("*://10.9.0.0/16:*")
            .unwrap();
        assert!(policy.decide_answer("a.example", ip("10.1.2.3")).allowed);
        assert!(!policy.decide_answer("a.example", ip("10.9.2.3")).allowed);
        // A name only listened on is not checked against the outbound preset.
        let policy = Policy::deny_all()
            .allow_listen("tcp://ll.example:80")
            .unwrap();
        assert!(
            policy
                .decide_answer("ll.example", ip("169.254.1.1"))
                .allowed
        );
        // allow_special turns the preset off for answers too.
        let policy = Policy::deny_all()
            .allow("tcp://example.com:443")
            .unwrap()
            .with_special_allowed();
        assert!(
            policy
                .decide_answer("example.com", ip("169.254.169.254"))
                .allowed
        );
    }

    #[test]
    fn ports_cover_ports() {
        let ports = |rule: &str| -> Ports { rule.parse::<Rule>().unwrap().ports().clone() };
        assert!(ports("tcp://*:*").covers(&ports("tcp://*:80")));
        assert!(ports("tcp://*:1-100").covers(&ports("tcp://*:{80,90-100}")));
        assert!(!ports("tcp://*:1-100").covers(&ports("tcp://*:99-101")));
        assert!(!ports("tcp://*:80").covers(&ports("tcp://*:*")));
    }

    #[test]
    fn publish_parses_and_prints() {
        let parsed: Publish = "8080:80".parse().unwrap();
        assert_eq!(
            parsed,
            Publish {
                transport: Transport::Tcp,
                host_port: 8080,
                guest_port: 80
            }
        );
        assert_eq!(parsed.to_string(), "8080:80");
        let udp: Publish = "0:53/udp".parse().unwrap();
        assert_eq!(udp.to_string(), "0:53/udp");
        assert_eq!("0:53/tcp".parse::<Publish>().unwrap().to_string(), "0:53");
        for (text, why) in [
            ("80", "expected HOST_PORT:GUEST_PORT"),
            ("a:80", "`a` is not a host port"),
            ("80:", "`` is not a guest port"),
            ("1:0", "the guest port cannot be 0"),
            ("1:2/icmp", "must be tcp or udp"),
            ("1:2:3", "`2:3` is not a guest port"),
        ] {
            let err = text.parse::<Publish>().unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.starts_with(&format!("publish `{text}`: ")), "{err}");
        }
        let policy = Policy::deny_all().with_publish(parsed).unwrap();
        let err = policy
            .clone()
            .with_publish("8080:81".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "publish `8080:81`: host port 8080 is already used (8080:80)"
        );
        // The same guest port over the other transport is another publication.
        let policy = policy.with_publish("0:80/udp".parse().unwrap()).unwrap();
        assert_eq!(policy.published().len(), 2);
        assert_eq!(
            policy.publication(Transport::Udp, 80).map(|p| p.host_port),
            Some(0)
        );
    }

    #[test]
    fn audit_mode_enables_what_it_must_observe() {
        let policy = Policy::deny_all().with_mode(Mode::Audit);
        assert!(policy.uses(Transport::Tcp));
        assert!(policy.uses(Transport::Udp));
        assert!(policy.uses_names());
        assert_eq!(policy.to_string(), "mode   audit\n(no network)\n");
        // The verdicts themselves are the enforcing ones.
        assert!(!policy.decide(peer("10.0.0.1:80"), TcpConnect).allowed);
    }
}

//! Table-driven tests of parsing and verdicts.

use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a socket address")
}

fn policy(connect: &[&str], listen: &[&str]) -> Policy {
    let mut policy = Policy::deny_all();
    for rule in connect {
        policy = policy.allow(rule).expect("a valid rule");
    }
    for rule in listen {
        policy = policy.allow_listen(rule).expect("a valid rule");
    }
    policy
}

/// Every grammar form of this version matches what it should and nothing more.
#[test]
fn verdicts() {
    use SocketAddrUse::*;
    // (allow rules, allow-listen rules, use, address, allowed?)
    type Case = (
        &'static [&'static str],
        &'static [&'static str],
        SocketAddrUse,
        &'static str,
        bool,
    );
    let cases: &[Case] = &[
        // Outbound: host forms and port forms.
        (
            &["tcp://127.0.0.1:8080"],
            &[],
            TcpConnect,
            "127.0.0.1:8080",
            true,
        ),
        (
            &["tcp://127.0.0.1:8080"],
            &[],
            TcpConnect,
            "127.0.0.1:8081",
            false,
        ),
        (
            &["tcp://127.0.0.1:8080"],
            &[],
            TcpConnect,
            "127.0.0.2:8080",
            false,
        ),
        (
            &["tcp://10.0.0.0/8:*"],
            &[],
            TcpConnect,
            "10.255.1.2:1",
            true,
        ),
        (
            &["tcp://10.0.0.0/8:*"],
            &[],
            TcpConnect,
            "11.0.0.1:1",
            false,
        ),
        (&["tcp://10.1.2.3/8:*"], &[], TcpConnect, "10.9.9.9:1", true),
        (
            &["tcp://127.0.0.1:1000-2000"],
            &[],
            TcpConnect,
            "127.0.0.1:999",
            false,
        ),
        (
            &["tcp://127.0.0.1:1000-2000"],
            &[],
            TcpConnect,
            "127.0.0.1:1000",
            true,
        ),
        (
            &["tcp://127.0.0.1:1000-2000"],
            &[],
            TcpConnect,
            "127.0.0.1:2000",
            true,
        ),
        (
            &["tcp://127.0.0.1:1000-2000"],
            &[],
            TcpConnect,
            "127.0.0.1:2001",
            false,
        ),
        (&["tcp://[::1]:443"], &[], TcpConnect, "[::1]:443", true),
        (
            &["tcp://[::1]:443"],
            &[],
            TcpConnect,
            "127.0.0.1:443",
            false,
        ),
        (
            &["tcp://[fd00::]/8:*"],
            &[],
            TcpConnect,
            "[fdff::1]:9",
            true,
        ),
        (
            &["tcp://[fd00::]/8:*"],
            &[],
            TcpConnect,
            "[fe00::1]:9",
            false,
        ),
        // IPv4-mapped IPv6 is judged as the IPv4 address it carries, both ways.
        (
            &["tcp://10.0.0.1:80"],
            &[],
            TcpConnect,
            "[::ffff:10.0.0.1]:80",
            true,
        ),
        (
            &["tcp://10.0.0.1:80"],
            &[],
            TcpConnect,
            "[::ffff:10.0.0.2]:80",
            false,
        ),
        (
            &["tcp://[::ffff:10.0.0.1]:80"],
            &[],
            TcpConnect,
            "10.0.0.1:80",
            true,
        ),
        (
            &["tcp://[::ffff:10.0.0.0]/104:80"],
            &[],
            TcpConnect,
            "10.200.0.1:80",
            true,
        ),
        (
            &["tcp://127.0.0.1:*"],
            &[],
            TcpConnect,
            "[::ffff:127.0.0.1]:5",
            true,
        ),
        // A scope id does not change a verdict.
        (
            &["tcp://[fe80::1]:80"],
            &[],
            TcpConnect,
            "[fe80::1%2]:80",
            true,
        ),
        // The implicit bind before a connect rides on the connect rules.
        (&["tcp://127.0.0.1:80"], &[], TcpBind, "0.0.0.0:0", true),
        (&["tcp://127.0.0.1:80"], &[], TcpBind, "[::]:0", true),
        (&[], &[], TcpBind, "0.0.0.0:0", false),
        // An explicit bind is inbound, port 0 only by `*`.
        (&["tcp://127.0.0.1:*"], &[], TcpBind, "127.0.0.1:0", false),
        (&[], &["tcp://127.0.0.1:*"], TcpBind, "127.0.0.1:0", true),
        (
            &[],
            &["tcp://127.0.0.1:8000-9000"],
            TcpBind,
            "127.0.0.1:0",
            false,
        ),
        (
            &[],
            &["tcp://127.0.0.1:8000-9000"],
            TcpBind,
            "127.0.0.1:8500",
            true,
        ),
        // Unspecified addresses mean every interface: only a rule containing them covers them.
        (&[], &["tcp://127.0.0.1:*"], TcpBind, "0.0.0.0:8080", false),
        (&[], &["tcp://0.0.0.0/0:*"], TcpBind, "0.0.0.0:8080", true),
        (
            &[],
            &["tcp://127.0.0.1:*"],
            TcpListen,
            "0.0.0.0:8080",
            false,
        ),
        // Listen is judged on the bound address; listening does not grant connecting.
        (
            &[],
            &["tcp://127.0.0.1:*"],
            TcpListen,
            "127.0.0.1:41000",
            true,
        ),
        (&[], &["tcp://[::1]:*"], TcpListen, "127.0.0.1:41000", false),
        (
            &[],
            &["tcp://127.0.0.1:*"],
            TcpConnect,
            "127.0.0.1:41000",
            false,
        ),
        // Accepting follows listening, from any peer.
        (
            &[],
            &["tcp://127.0.0.1:*"],
            TcpAccept,
            "10.1.1.1:5000",
            true,
        ),
        (
            &["tcp://127.0.0.1:*"],
            &[],
            TcpAccept,
            "127.0.0.1:5000",
            false,
        ),
        // No UDP rules in this version.
        (
            &["tcp://127.0.0.1:*"],
            &["tcp://127.0.0.1:*"],
            UdpSend,
            "127.0.0.1:53",
            false,
        ),
        (
            &["tcp://127.0.0.1:*"],
            &["tcp://127.0.0.1:*"],
            UdpBind,
            "0.0.0.0:0",
            false,
        ),
        (
            &[],
            &["tcp://127.0.0.1:*"],
            UdpReceive,
            "127.0.0.1:53",
            false,
        ),
    ];
    for (connect, listen, socket_use, target, expected) in cases {
        let verdict = policy(connect, listen).allows(addr(target), *socket_use);
        assert_eq!(
            verdict, *expected,
            "allow {connect:?} allow-listen {listen:?}: {socket_use:?} {target}"
        );
    }
}

/// Nothing is allowed without a rule; `inherit_network` allows everything.
#[test]
fn defaults() {
    let uses = [
        SocketAddrUse::TcpBind,
        SocketAddrUse::TcpListen,
        SocketAddrUse::TcpAccept,
        SocketAddrUse::TcpConnect,
        SocketAddrUse::UdpBind,
        SocketAddrUse::UdpSend,
        SocketAddrUse::UdpReceive,
    ];
    for socket_use in uses {
        assert!(!Policy::deny_all().allows(addr("127.0.0.1:80"), socket_use));
        assert!(Policy::inherit_network().allows(addr("10.0.0.1:80"), socket_use));
    }
    assert!(!Policy::deny_all().uses_tcp() && !Policy::deny_all().allows_name_lookup());
    assert!(!Policy::deny_all().uses_udp() && !policy(&["tcp://127.0.0.1:1"], &[]).uses_udp());
    let inherit = Policy::inherit_network();
    assert!(inherit.uses_tcp() && inherit.uses_udp() && inherit.allows_name_lookup());
    assert!(policy(&["tcp://127.0.0.1:1"], &[]).allows_name_lookup());
}

/// Rules print in a canonical form that parses back to the same rule.
#[test]
fn display_round_trips() {
    for (text, canonical) in [
        ("tcp://127.0.0.1:80", "tcp://127.0.0.1:80"),
        ("tcp://10.1.2.3/8:1-9", "tcp://10.0.0.0/8:1-9"),
        ("tcp://[::1]:*", "tcp://[::1]:*"),
        ("tcp://[fd00::1]/8:443", "tcp://[fd00::]/8:443"),
        ("tcp://[::ffff:10.0.0.1]:80", "tcp://10.0.0.1:80"),
        ("tcp://0.0.0.0/0:5-5", "tcp://0.0.0.0/0:5"),
    ] {
        let rule: Rule = text.parse().expect("a valid rule");
        assert_eq!(rule.to_string(), canonical);
        assert_eq!(canonical.parse::<Rule>(), Ok(rule));
    }
}

/// Malformed rules name the rule, the part and the reason.
#[test]
fn parse_errors() {
    for (text, message) in [
        ("tcp://", "rule expected HOST:PORTS after the scheme"),
        ("127.0.0.1:80", "rule expected SCHEME://HOST:PORTS"),
        (
            "udp://127.0.0.1:53",
            "scheme `udp` rules are not supported yet",
        ),
        ("http://127.0.0.1:80", "scheme `http` is not a scheme"),
        ("tcp://:80", "host is empty"),
        (
            "tcp://10.0.0.0/33:80",
            "host prefix length `/33` is not between 0 and 32",
        ),
        (
            "tcp://[::1]/129:80",
            "host prefix length `/129` is not between 0 and 128",
        ),
        ("tcp://::1:80", "looks like IPv6: write it in brackets"),
        ("tcp://[::1:80", "host has `[` without `]`"),
        ("tcp://[zz::1]:80", "host `zz::1` is not an IPv6 address"),
        ("tcp://example.com:80", "DNS names are not supported yet"),
        ("tcp://127.0.0.1:", "ports are empty"),
        (
            "tcp://127.0.0.1:70000",
            "ports `70000` is not a port (1-65535)",
        ),
        ("tcp://127.0.0.1:0", "ports port 0 means any port: write *"),
        ("tcp://127.0.0.1:9-1", "ports range `9-1` runs backwards"),
        ("tcp://127.0.0.1:a-b", "ports `a` is not a port"),
    ] {
        let err = text.parse::<Rule>().expect_err(text).to_string();
        assert!(
            err.starts_with(&format!("invalid rule `{text}`: ")) && err.contains(message),
            "{text}: {err}"
        );
    }
}

/// Each distinct denial is kept once, in order.
#[test]
fn denial_log_keeps_distinct_denials() {
    let log = DenialLog::default();
    let first = Denial {
        socket_use: UseKind::TcpConnect,
        addr: addr("10.0.0.1:80"),
    };
    let second = Denial {
        socket_use: UseKind::TcpListen,
        addr: addr("10.0.0.1:80"),
    };
    for denial in [first, first, second, first] {
        log.record(denial);
    }
    assert_eq!(log.denials(), [first, second]);
    assert_eq!(
        first.to_string(),
        "denied tcp connect to 10.0.0.1:80 (no rule allows it)"
    );
}

//! Self connections: what the policy decides alone (a self bind), what it decides for
//! the instance's own sockets, and the enforcer's steps from a bind to an accept.

use std::net::SocketAddr;
use std::sync::Arc;

use super::{DecidedBy, Decider, Policy, SocketAddrUse, Transport};
use crate::enforce::{DenialLog, Enforcer, PolicyHandle};
use SocketAddrUse::{TcpAccept, TcpBind, TcpConnect, TcpListen, UdpBind, UdpSend};

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("an address")
}

fn rule(policy: &Policy, text: &str, socket_use: SocketAddrUse) -> String {
    let verdict = policy.decide(addr(text), socket_use);
    let word = if verdict.allowed { "allow" } else { "deny" };
    format!("{word} {}", policy.describe(verdict.by))
}

fn own_rule(policy: &Policy, text: &str, socket_use: SocketAddrUse) -> String {
    let verdict = policy.decide_own(addr(text), socket_use, &[]);
    let word = if verdict.allowed { "allow" } else { "deny" };
    format!("{word} {}", policy.describe(verdict.by))
}

#[test]
fn a_self_bind_is_tcp_on_a_loopback_port_0() {
    let policy = Policy::deny_all();
    for (bind, socket_use, expected) in [
        ("127.0.0.1:0", TcpBind, "allow self"),
        ("127.3.2.1:0", TcpBind, "allow self"),
        ("[::1]:0", TcpBind, "allow self"),
        ("[::ffff:127.0.0.1]:0", TcpBind, "allow self"),
        // A chosen port could be a service's: the rules decide.
        ("127.0.0.1:8080", TcpBind, "deny default-deny"),
        // Not loopback: reachable from elsewhere.
        ("0.0.0.0:0", TcpBind, "deny default-deny"),
        ("10.0.0.1:0", TcpBind, "deny default-deny"),
        ("[::]:0", TcpBind, "deny default-deny"),
        // TCP only.
        ("127.0.0.1:0", UdpBind, "deny default-deny"),
    ] {
        assert_eq!(
            rule(&policy, bind, socket_use),
            expected,
            "{bind} {socket_use:?}"
        );
    }
    // The bind decided again on the port it got is still a self bind.
    let verdict = policy.decide_bound(addr("127.0.0.1:0"), addr("127.0.0.1:41234"), TcpBind, &[]);
    assert_eq!(verdict.by, Decider::SelfConnection);
    assert!(verdict.allowed);
}

#[test]
fn rules_decide_first_and_no_self_turns_it_off() {
    let listen = Policy::deny_all()
        .allow_listen("tcp://127.0.0.1:*")
        .expect("a rule");
    assert_eq!(
        rule(&listen, "127.0.0.1:0", TcpBind),
        "allow --allow-listen tcp://127.0.0.1:*"
    );
    let denied = Policy::deny_all()
        .deny("tcp://127.0.0.1:*")
        .expect("a rule");
    assert_eq!(
        rule(&denied, "127.0.0.1:0", TcpBind),
        "deny --deny tcp://127.0.0.1:*"
    );
    assert_eq!(
        own_rule(&denied, "127.0.0.1:41234", TcpConnect),
        "deny --deny tcp://127.0.0.1:*"
    );
    let off = Policy::deny_all().without_self();
    assert!(!off.allows_self());
    assert_eq!(rule(&off, "127.0.0.1:0", TcpBind), "deny default-deny");
    for socket_use in [TcpListen, TcpConnect, TcpAccept] {
        assert_eq!(
            own_rule(&off, "127.0.0.1:41234", socket_use),
            "deny default-deny"
        );
    }
}

#[test]
fn own_sockets_listen_connect_and_accept_as_self() {
    let policy = Policy::deny_all()
        .allow("tcp://127.0.0.1:5000")
        .expect("a rule");
    for socket_use in [TcpListen, TcpConnect, TcpAccept] {
        assert_eq!(
            own_rule(&policy, "127.0.0.1:41234", socket_use),
            "allow self",
            "{socket_use:?}"
        );
        // Not the instance's own: the rules alone.
        assert_eq!(
            rule(&policy, "127.0.0.1:41234", socket_use),
            "deny default-deny",
            "{socket_use:?}"
        );
    }
    assert_eq!(
        own_rule(&policy, "127.0.0.1:5000", TcpConnect),
        "allow --allow tcp://127.0.0.1:5000",
        "a rule that covers it decides it"
    );
    assert_eq!(
        own_rule(&policy, "127.0.0.1:41234", UdpSend),
        "deny default-deny",
        "UDP has no self connections"
    );
}

#[test]
fn self_connections_are_on_by_default_and_need_tcp() {
    let policy = Policy::deny_all();
    assert!(policy.allows_self());
    assert!(policy.is_empty(), "no network is granted");
    assert!(policy.uses(Transport::Tcp), "a socket pair is TCP");
    assert!(!policy.uses(Transport::Udp));
    let off = Policy::deny_all().without_self();
    assert!(!off.uses(Transport::Tcp));
    assert_eq!(off.to_string(), "no_self\n(no network)\n");
    assert_eq!(
        policy.decided_by(Decider::SelfConnection),
        DecidedBy::SelfConnection
    );
    assert_eq!(policy.describe(Decider::SelfConnection), "self");

    let file = Policy::from_toml("no_self = true\n", "p.toml").expect("valid");
    assert_eq!(file, off);
    let file = Policy::from_toml("no_self = false\n", "p.toml").expect("valid");
    assert_eq!(file, policy);
}

/// The enforcer's steps, as wasmtime-wasi and sockbox's WASI layer drive them for a
/// socket pair; what is not the instance's own is judged by the rules.
#[test]
fn the_enforcer_follows_a_socket_pair() {
    let denials = Arc::new(DenialLog::default());
    let enforcer = Enforcer::new(
        "t",
        PolicyHandle::new(Policy::deny_all()),
        denials.clone(),
        None,
    );
    let listener = addr("127.0.0.1:41234");
    let client = addr("127.0.0.1:41235");
    let stranger = addr("127.0.0.1:41236");

    assert!(enforcer.check(addr("127.0.0.1:0"), TcpBind));
    assert!(enforcer.check_bind(addr("127.0.0.1:0"), listener, TcpBind, 7));
    assert!(
        enforcer.own_listener(listener).is_none(),
        "not listening yet"
    );
    assert!(
        !enforcer.check(stranger, TcpListen),
        "bound by no self bind"
    );
    assert!(enforcer.check(listener, TcpListen));
    assert_eq!(enforcer.own_listener(listener), Some(7));
    assert!(enforcer.check(listener, TcpConnect));
    enforcer.expect_own_peer(client);
    assert!(!enforcer.check(stranger, TcpAccept), "another process");
    assert!(enforcer.check(client, TcpAccept));
    assert!(!enforcer.check(client, TcpAccept), "accepted once");
    assert!(
        !enforcer.check(addr("127.0.0.1:8080"), TcpConnect),
        "not its own"
    );
    enforcer.forget_own_listener(listener);
    assert!(!enforcer.check(listener, TcpConnect), "gone");
    let denied: Vec<String> = denials.denials().iter().map(ToString::to_string).collect();
    assert_eq!(
        denied,
        [
            "denied tcp listen on 127.0.0.1:41236 (no rule allows it)",
            "denied tcp accept from 127.0.0.1:41236 (no rule allows it)",
            "denied tcp accept from 127.0.0.1:41235 (no rule allows it)",
            "denied tcp connect to 127.0.0.1:8080 (no rule allows it)",
            "denied tcp connect to 127.0.0.1:41234 (no rule allows it)",
        ]
    );
}

#[test]
fn no_self_records_nothing_as_its_own() {
    let policy = Policy::deny_all()
        .allow_listen("tcp://127.0.0.1:*")
        .expect("a rule")
        .without_self();
    let enforcer = Enforcer::new("t", PolicyHandle::new(policy), Default::default(), None);
    let listener = addr("127.0.0.1:41234");
    assert!(enforcer.check_bind(addr("127.0.0.1:0"), listener, TcpBind, 7));
    assert!(enforcer.check(listener, TcpListen));
    assert_eq!(enforcer.own_listener(listener), None);
    assert!(!enforcer.check(listener, TcpConnect));
}

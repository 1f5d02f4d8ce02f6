//! Tests of the enforcer's own state beside the policy: the bounded denial log, UDP
//! reply peers, published binds and audit mode. (Verdicts are `policy/tests.rs`'s.)

use std::net::SocketAddr;
use std::sync::Arc;

use super::{DenialLog, Enforcer, MAX_DENIALS, PolicyHandle};
use crate::policy::tests::policy;
use crate::policy::{
    DecidedBy, Decision, Direction, Mode, Policy, SocketAddrUse, Subject, Transport, UseKind,
};
use SocketAddrUse::{TcpBind, TcpConnect, TcpListen, UdpReceive, UdpSend};

fn peer(text: &str) -> SocketAddr {
    text.parse().expect("a socket address")
}

/// Each distinct denial is kept once, in order, and reads as one line.
#[test]
fn denial_log_keeps_distinct_denials() {
    let log = DenialLog::default();
    let denial = |use_kind, subject: &str, by| Decision {
        use_kind,
        subject: match subject.parse() {
            Ok(addr) => Subject::Addr(addr),
            Err(_) => Subject::Name(subject.into()),
        },
        allowed: false,
        would_deny: false,
        by,
        host_addr: None,
    };
    let first = denial(UseKind::TcpConnect, "10.0.0.1:80", DecidedBy::DefaultDeny);
    let second = denial(UseKind::TcpListen, "10.0.0.1:80", DecidedBy::DefaultDeny);
    let third = denial(
        UseKind::Lookup,
        "evil.example",
        DecidedBy::Rule {
            direction: Direction::Deny,
            rule: "*://evil.example:*".into(),
        },
    );
    for denial in [&first, &first, &second, &first, &third] {
        log.record(denial);
    }
    assert_eq!(log.denials(), [first.clone(), second, third.clone()]);
    assert_eq!(
        first.to_string(),
        "denied tcp connect to 10.0.0.1:80 (no rule allows it)"
    );
    assert_eq!(
        third.to_string(),
        "denied lookup of evil.example (by --deny *://evil.example:*)"
    );
}

/// A UDP server may reply to whoever it received from under a listen rule, and to
/// nobody else; a deny rule on a sender keeps both directions shut.
#[test]
fn udp_replies_follow_receives() {
    use SocketAddrUse::{UdpReceive, UdpSend};
    let policy = policy("listen udp://127.0.0.1:*; deny udp://127.0.0.1:9");
    let enforcer = Enforcer::new("t", PolicyHandle::new(policy), Default::default(), None);
    let peer = |text: &str| -> SocketAddr { text.parse().expect("an address") };
    assert!(
        !enforcer.check(peer("127.0.0.1:5000"), UdpSend),
        "no datagram came yet"
    );
    assert!(enforcer.check(peer("127.0.0.1:5000"), UdpReceive));
    assert!(enforcer.check(peer("127.0.0.1:5000"), UdpSend), "a reply");
    assert!(
        enforcer.check(peer("[::ffff:127.0.0.1]:5000"), UdpSend),
        "the same peer, mapped"
    );
    assert!(
        !enforcer.check(peer("127.0.0.1:5001"), UdpSend),
        "another port"
    );
    assert!(
        !enforcer.check(peer("127.0.0.1:9"), UdpReceive),
        "denied sender"
    );
    assert!(
        !enforcer.check(peer("127.0.0.1:9"), UdpSend),
        "no reply to a denied sender"
    );
}

/// The denial log is bounded: a guest probing every port grows it to `MAX_DENIALS`
/// entries, then only a count.
#[test]
fn denial_log_is_bounded() {
    let log = DenialLog::default();
    for port in 0..3000u16 {
        log.record(&Decision {
            use_kind: UseKind::TcpConnect,
            subject: Subject::Addr(SocketAddr::from(([10, 0, 0, 1], port))),
            allowed: false,
            would_deny: false,
            by: DecidedBy::DefaultDeny,
            host_addr: None,
        });
    }
    assert_eq!(log.denials().len(), MAX_DENIALS);
    assert_eq!(log.dropped(), 3000 - MAX_DENIALS as u64);
}

/// A UDP server replies to a link-local peer that reached it first; it still may
/// not send to one on its own.
#[test]
fn udp_replies_reach_special_peers_that_came_first() {
    let policy = Policy::deny_all().allow_listen("udp://*:53").unwrap();
    let enforcer = Enforcer::new("t", PolicyHandle::new(policy), Default::default(), None);
    assert!(!enforcer.check(peer("169.254.7.7:5000"), UdpSend));
    assert!(enforcer.check(peer("169.254.7.7:5000"), UdpReceive));
    assert!(enforcer.check(peer("169.254.7.7:5000"), UdpSend), "a reply");
    assert!(!enforcer.check(peer("169.254.7.8:5000"), UdpSend));
}

/// A published bind is decided on the guest's port, passes wasmtime-wasi's check of
/// the host's address once, and its listen is judged on the guest's port; a bind of
/// the host's port itself is judged as what it is.
#[test]
fn published_binds_are_judged_on_the_guest_port() {
    let policy = Policy::deny_all()
        .allow_listen("tcp://127.0.0.1:80")
        .unwrap()
        .with_publish("8080:80".parse().unwrap())
        .unwrap();
    let enforcer = Enforcer::new("t", PolicyHandle::new(policy), Default::default(), None);
    let guest = peer("127.0.0.1:80");
    let host = enforcer.begin_bind(TcpBind, guest).unwrap().unwrap();
    assert_eq!(host, peer("127.0.0.1:8080"));
    assert!(
        enforcer.check(host, TcpBind),
        "the pending bind passes once"
    );
    enforcer.end_bind(TcpBind, guest, Some(host));
    assert_eq!(enforcer.guest_port(Transport::Tcp, 8080), Some(80));
    assert!(
        enforcer.check(host, TcpListen),
        "judged on the guest's port"
    );
    assert!(!enforcer.check(host, TcpBind), "the host's port itself");
    assert_eq!(enforcer.begin_bind(TcpBind, peer("127.0.0.1:81")), Ok(None));
    // Refused on the guest's view: nothing to bind on the host.
    let policy = Policy::deny_all()
        .with_publish("0:80".parse().unwrap())
        .unwrap();
    let enforcer = Enforcer::new("t", PolicyHandle::new(policy), Default::default(), None);
    assert_eq!(enforcer.begin_bind(TcpBind, guest), Err(()));
}

/// An enforcer in audit mode lets a denial through, recorded as would-deny and counted.
#[test]
fn enforcer_in_audit_mode_records_would_deny() {
    let denials = Arc::new(DenialLog::default());
    let policy = Policy::deny_all().with_mode(Mode::Audit);
    let enforcer = Enforcer::new("t", PolicyHandle::new(policy), denials.clone(), None);
    assert!(enforcer.check(peer("10.0.0.1:80"), TcpConnect));
    assert!(enforcer.check(peer("10.0.0.1:80"), TcpConnect));
    assert_eq!(denials.would_deny(), 2);
    let kept = denials.denials();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].allowed && kept[0].would_deny);
    assert_eq!(
        kept[0].to_string(),
        "would deny tcp connect to 10.0.0.1:80 (no rule allows it)"
    );
    // Answers are kept too, recorded.
    let answers = enforcer.filter_answers("x.example", vec!["10.0.0.1".parse().unwrap()]);
    assert_eq!(answers.len(), 1);
}

/// An unbound socket's implicit bind is refused exactly where no rule allows it, and
/// never in audit mode.
#[test]
fn implicit_binds_are_refused_where_no_rule_allows_them() {
    let enforcer =
        |policy: Policy| Enforcer::new("t", PolicyHandle::new(policy), Default::default(), None);
    let (v4, v6) = (peer("10.0.0.1:80"), peer("[fd00::1]:80"));
    let none = enforcer(Policy::deny_all());
    assert!(none.refuses_implicit_bind(v4) && none.refuses_implicit_bind(v6));
    let dial = enforcer(policy("allow tcp://10.0.0.1:80"));
    assert!(!dial.refuses_implicit_bind(v4) && !dial.refuses_implicit_bind(v6));
    let audit = enforcer(Policy::deny_all().with_mode(Mode::Audit));
    assert!(!audit.refuses_implicit_bind(v4));
}

//! `policy suggest`: what each kind of audit line becomes, the output's shape, bad
//! lines, and a property: the suggested policy allows every use the audit recorded
//! (and not a connection it did not record).

use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;

use super::suggest::{AuditRecord, Group, RecordedUse, Suggestion, parse_record, suggest};
use super::{Decider, Policy, RuleRef, SocketAddrUse, UseKind};
use crate::enforce::covering;

/// An audit line of instance `i`, would-deny by default-deny unless `rule` says.
fn line(use_kind: &str, address: Option<&str>, name: Option<&str>, rule: &str) -> AuditRecord {
    let mut json = serde_json::json!({
        "time": "2026-12-07T00:00:00.000Z",
        "instance": "i",
        "use": use_kind,
        "verdict": if rule == "self" { "allow" } else { "would-deny" },
        "rule": rule,
    });
    if let Some(address) = address {
        json["address"] = address.into();
    }
    if let Some(name) = name {
        json["name"] = name.into();
    }
    parse_record(&json.to_string())
        .expect("a well-formed line")
        .expect("not blank")
}

fn denied(use_kind: &str, address: &str) -> AuditRecord {
    line(use_kind, Some(address), None, "default-deny")
}

fn exact(records: Vec<AuditRecord>) -> Suggestion {
    suggest([records], Group::default())
}

/// The active rules, as `direction rule` lines.
fn rules(suggestion: &Suggestion) -> Vec<String> {
    suggestion
        .rules
        .iter()
        .filter(|rule| rule.refused_by.is_none())
        .map(|rule| format!("{} {}", rule.direction.key(), rule.rule))
        .collect()
}

fn policy_of(suggestion: &Suggestion) -> Policy {
    Policy::from_toml(&suggestion.to_toml("test"), "suggested.toml").expect("a valid policy")
}

#[test]
fn a_connection_to_a_looked_up_address_is_a_rule_on_the_name() {
    let suggestion = exact(vec![
        line("lookup", None, Some("db.example.com"), "default-deny"),
        line(
            "lookup-answer",
            Some("10.0.0.7"),
            Some("db.example.com"),
            "default-deny",
        ),
        denied("tcp-bind", "0.0.0.0:0"),
        denied("tcp-connect", "10.0.0.7:5432"),
        denied("tcp-connect", "10.9.9.9:80"),
    ]);
    assert_eq!(
        rules(&suggestion),
        ["allow tcp://10.9.9.9:80", "allow tcp://db.example.com:5432"]
    );
    // The lookup is counted on the name's rule.
    let db = &suggestion.rules[1];
    assert_eq!(
        db.uses,
        [("tcp-connect".to_owned(), 1), ("lookup".to_owned(), 1)]
    );
}

#[test]
fn a_server_on_port_zero_gets_any_port_and_its_peers_accept_rules() {
    let suggestion = exact(vec![
        denied("tcp-bind", "10.1.1.1:0"),
        denied("tcp-bind", "10.1.1.1:41234"),
        denied("tcp-listen", "10.1.1.1:41234"),
        denied("tcp-accept", "10.2.0.5:50000"),
        denied("tcp-accept", "10.2.0.5:50002"),
        denied("tcp-bind", "10.1.1.1:8080"),
        denied("tcp-listen", "10.1.1.1:8080"),
    ]);
    // Any port covers 8080 too: one listen rule, counting both listeners' uses.
    assert_eq!(
        rules(&suggestion),
        ["listen tcp://10.1.1.1:*", "accept tcp://10.2.0.5:*"]
    );
    assert_eq!(
        suggestion.rules[0].uses,
        [("tcp-bind".to_owned(), 2), ("tcp-listen".to_owned(), 2)]
    );
}

#[test]
fn client_ports_and_replies_make_no_rules() {
    let suggestion = exact(vec![
        // A UDP client: its bind is the client form, the answer needs no rule.
        denied("udp-bind", "0.0.0.0:0"),
        denied("udp-bind", "0.0.0.0:47524"),
        denied("udp-send", "10.0.0.53:53"),
        denied("udp-receive", "10.0.0.53:53"),
        // A UDP server: its peer's datagram, and the reply to it.
        denied("udp-bind", "10.1.1.1:5353"),
        denied("udp-receive", "10.3.3.3:40000"),
        denied("udp-send", "10.3.3.3:40000"),
    ]);
    assert_eq!(
        rules(&suggestion),
        [
            "allow udp://10.0.0.53:53",
            "listen udp://10.1.1.1:5353",
            "accept udp://10.3.3.3:*",
        ]
    );
}

#[test]
fn self_connections_need_no_rule_until_someone_else_is_accepted() {
    let pair = vec![
        line("tcp-bind", Some("127.0.0.1:0"), None, "self"),
        line("tcp-bind", Some("127.0.0.1:40000"), None, "self"),
        line("tcp-listen", Some("127.0.0.1:40000"), None, "self"),
        line("tcp-connect", Some("127.0.0.1:40000"), None, "self"),
        line("tcp-accept", Some("127.0.0.1:40001"), None, "self"),
    ];
    let alone = exact(pair.clone());
    assert!(alone.rules.is_empty(), "{alone:?}");
    assert_eq!(alone.self_uses, 4);
    let mut served = pair;
    served.push(denied("tcp-accept", "127.0.0.1:40002"));
    assert_eq!(
        rules(&exact(served)),
        ["listen tcp://127.0.0.1:*", "accept tcp://127.0.0.1:*"]
    );
}

#[test]
fn the_special_preset_stays_on_and_its_refusals_are_commented_out() {
    let suggestion = exact(vec![
        line(
            "tcp-connect",
            Some("169.254.169.254:80"),
            None,
            "special:metadata",
        ),
        denied("tcp-connect", "10.0.0.1:443"),
    ]);
    assert_eq!(rules(&suggestion), ["allow tcp://10.0.0.1:443"]);
    let toml = suggestion.to_toml("header");
    assert!(toml.contains("  # \"tcp://169.254.169.254:80\","), "{toml}");
    assert!(toml.contains("special:metadata"), "{toml}");
    assert_eq!(suggestion.warnings.len(), 1, "{:?}", suggestion.warnings);
    assert!(
        suggestion.warnings[0].contains("special:metadata"),
        "{:?}",
        suggestion.warnings
    );
    // Still refused when enforced.
    let policy = policy_of(&suggestion);
    let metadata: SocketAddr = "169.254.169.254:80".parse().expect("an address");
    assert!(!policy.decide(metadata, SocketAddrUse::TcpConnect).allowed);
}

#[test]
fn grouping_folds_ports_and_domains_only_when_asked() {
    let records = vec![
        denied("tcp-connect", "10.0.0.1:80"),
        denied("tcp-connect", "10.0.0.1:443"),
        denied("tcp-connect", "10.0.0.1:8000"),
        denied("tcp-connect", "10.0.0.1:8001"),
        line(
            "lookup-answer",
            Some("10.5.0.1"),
            Some("a.example.com"),
            "default-deny",
        ),
        denied("tcp-connect", "10.5.0.1:443"),
        line(
            "lookup-answer",
            Some("10.5.0.2"),
            Some("b.example.com"),
            "default-deny",
        ),
        denied("tcp-connect", "10.5.0.2:443"),
    ];
    assert_eq!(rules(&exact(records.clone())).len(), 6);
    let ports = suggest(
        [records.clone()],
        Group {
            ports: true,
            hosts: false,
        },
    );
    assert!(
        rules(&ports).contains(&"allow tcp://10.0.0.1:{80,443,8000-8001}".to_owned()),
        "{:?}",
        rules(&ports)
    );
    let hosts = suggest(
        [records],
        Group {
            ports: false,
            hosts: true,
        },
    );
    assert!(
        rules(&hosts).contains(&"allow tcp://*.example.com:443".to_owned()),
        "{:?}",
        rules(&hosts)
    );
}

#[test]
fn output_is_sorted_and_annotations_say_the_same() {
    let records = vec![
        denied("tcp-connect", "10.0.0.2:80"),
        denied("tcp-connect", "10.0.0.1:80"),
        denied("tcp-bind", "10.1.1.1:8080"),
    ];
    let mut reversed = records.clone();
    reversed.reverse();
    let forward = exact(records);
    assert_eq!(forward.to_toml("h"), exact(reversed).to_toml("h"));
    let annotations = forward.to_annotations("h");
    assert!(
        annotations.contains("sockbox.io/allow: \"tcp://10.0.0.1:80,tcp://10.0.0.2:80\""),
        "{annotations}"
    );
    assert!(
        annotations.contains("sockbox.io/allow-listen: \"tcp://10.1.1.1:8080\""),
        "{annotations}"
    );
}

#[test]
fn bad_lines_say_what_is_wrong() {
    let cases = [
        (
            r#"{"time":"t","instance":"i","use":"tcp-conn"#,
            "a truncated audit line",
        ),
        ("hello", "not an audit line"),
        (
            r#"{"time":"t","instance":"i","use":"teleport","verdict":"allow","rule":"x"}"#,
            "unknown variant `teleport`",
        ),
        (
            r#"{"time":"t","instance":"i","use":"tcp-connect","verdict":"allow","rule":"x"}"#,
            "a `tcp-connect` line without an address",
        ),
        (
            r#"{"time":"t","instance":"i","use":"tcp-connect","address":"nowhere","verdict":"allow","rule":"x"}"#,
            "`nowhere` is not a socket address",
        ),
    ];
    for (text, expected) in cases {
        let err = parse_record(text).expect_err(text);
        assert!(err.contains(expected), "{text}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }
    assert_eq!(parse_record("  "), Ok(None));
}

/// The reader reads what the audit writer writes.
#[test]
fn the_reader_reads_the_writer() {
    use std::io::{Read as _, Seek as _};

    use crate::enforce::AuditLog;
    use crate::policy::{Decision, Subject, Verdict};

    let mut file = tempfile::tempfile().expect("a temporary file");
    let log = AuditLog::to_file(file.try_clone().expect("a second handle"));
    let policy = Policy::deny_all();
    let addr: SocketAddr = "[2001:db8::1]:443".parse().expect("an address");
    for (use_kind, subject) in [
        (UseKind::Lookup, Subject::Name("example.com".into())),
        (
            UseKind::LookupAnswer,
            Subject::Answer {
                name: "example.com".into(),
                addr: addr.ip(),
            },
        ),
        (UseKind::TcpConnect, Subject::Addr(addr)),
    ] {
        let verdict = Verdict::deny(Decider::DefaultDeny);
        log.write("i", &Decision::new(&policy, use_kind, subject, verdict));
    }
    let mut text = String::new();
    file.rewind().expect("the audit's start");
    file.read_to_string(&mut text).expect("the audit");
    let read: Vec<AuditRecord> = text
        .lines()
        .map(|line| parse_record(line).expect(line).expect(line))
        .collect();
    let uses: Vec<RecordedUse> = read.iter().map(|record| record.use_kind).collect();
    assert_eq!(
        uses,
        [
            RecordedUse::Use(UseKind::Lookup),
            RecordedUse::Use(UseKind::LookupAnswer),
            RecordedUse::Use(UseKind::TcpConnect)
        ]
    );
    assert_eq!(
        rules(&exact(read)),
        ["allow tcp://example.com:443"],
        "{text}"
    );
}

/// One step of a generated workload, as an audit-only run with no rules records it.
#[derive(Debug, Clone)]
enum Step {
    /// A connection (or datagram) to `ip:port`, after a lookup of `name` gave `ip`.
    Dial {
        udp: bool,
        name: Option<u8>,
        ip: u8,
        port: u16,
    },
    /// A server on `ip` (port 0 when `port` is `None`), its peers, and its replies.
    Serve {
        udp: bool,
        ip: u8,
        port: Option<u16>,
        peers: Vec<(u8, u16)>,
    },
    /// A lookup whose answer nothing uses.
    Lookup { name: u8, ip: u8 },
}

fn ip(n: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, n])
}

fn name(n: u8) -> String {
    format!("host{n}.example.com")
}

fn step() -> impl Strategy<Value = Step> {
    let port = 1u16..2000;
    prop_oneof![
        (
            any::<bool>(),
            proptest::option::of(0u8..4),
            0u8..8,
            port.clone()
        )
            .prop_map(|(udp, name, ip, port)| Step::Dial {
                udp,
                name,
                ip,
                port
            }),
        (
            any::<bool>(),
            0u8..4,
            proptest::option::of(port.clone()),
            proptest::collection::vec((8u8..12, 30000u16..40000), 0..3)
        )
            .prop_map(|(udp, ip, port, peers)| Step::Serve {
                udp,
                ip,
                port,
                peers
            }),
        (0u8..4, 0u8..8).prop_map(|(name, ip)| Step::Lookup { name, ip }),
    ]
}

/// The audit lines `steps` make, and the uses to check (lookups by name, socket uses
/// with the address asked for and the address got).
fn record(steps: &[Step]) -> (Vec<AuditRecord>, Vec<Check>) {
    let mut lines = Vec::new();
    let mut checks = Vec::new();
    let mut next_port = 45000u16;
    for step in steps {
        match step {
            Step::Dial {
                udp,
                name: n,
                ip: i,
                port,
            } => {
                let scheme = if *udp { "udp" } else { "tcp" };
                if let Some(n) = n {
                    lines.push(line("lookup", None, Some(&name(*n)), "default-deny"));
                    lines.push(line(
                        "lookup-answer",
                        Some(&ip(*i).to_string()),
                        Some(&name(*n)),
                        "default-deny",
                    ));
                    checks.push(Check::Lookup(name(*n), ip(*i)));
                }
                let bound = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), next_port);
                next_port += 1;
                lines.push(denied(&format!("{scheme}-bind"), "0.0.0.0:0"));
                if *udp {
                    lines.push(denied("udp-bind", &bound.to_string()));
                }
                let target = SocketAddr::new(ip(*i), *port);
                let (verb, use_) = if *udp {
                    ("udp-send", SocketAddrUse::UdpSend)
                } else {
                    ("tcp-connect", SocketAddrUse::TcpConnect)
                };
                lines.push(denied(verb, &target.to_string()));
                checks.push(Check::Use(use_, target, target));
                if *udp {
                    lines.push(denied("udp-receive", &target.to_string()));
                    checks.push(Check::Use(SocketAddrUse::UdpReceive, target, target));
                    checks.push(Check::Use(
                        SocketAddrUse::UdpBind,
                        "0.0.0.0:0".parse().expect("an address"),
                        bound,
                    ));
                }
            }
            Step::Serve {
                udp,
                ip: i,
                port,
                peers,
            } => {
                let address = IpAddr::from([10, 1, 0, *i]);
                let (bind, listen) = if *udp {
                    (SocketAddrUse::UdpBind, None)
                } else {
                    (SocketAddrUse::TcpBind, Some(SocketAddrUse::TcpListen))
                };
                let scheme = if *udp { "udp" } else { "tcp" };
                let requested = SocketAddr::new(address, port.unwrap_or(0));
                let bound = SocketAddr::new(
                    address,
                    port.unwrap_or_else(|| {
                        next_port += 1;
                        next_port
                    }),
                );
                if port.is_none() {
                    lines.push(denied(&format!("{scheme}-bind"), &requested.to_string()));
                }
                lines.push(denied(&format!("{scheme}-bind"), &bound.to_string()));
                checks.push(Check::Use(bind, requested, bound));
                if let Some(listen) = listen {
                    lines.push(denied("tcp-listen", &bound.to_string()));
                    checks.push(Check::Use(listen, bound, bound));
                }
                for &(peer, peer_port) in peers {
                    let peer = SocketAddr::new(IpAddr::from([10, 2, 0, peer]), peer_port);
                    if *udp {
                        lines.push(denied("udp-receive", &peer.to_string()));
                        lines.push(denied("udp-send", &peer.to_string()));
                        checks.push(Check::Use(SocketAddrUse::UdpReceive, peer, peer));
                        checks.push(Check::Reply(peer));
                    } else {
                        lines.push(denied("tcp-accept", &peer.to_string()));
                        checks.push(Check::Use(SocketAddrUse::TcpAccept, peer, peer));
                    }
                }
            }
            Step::Lookup { name: n, ip: i } => {
                lines.push(line("lookup", None, Some(&name(*n)), "default-deny"));
                lines.push(line(
                    "lookup-answer",
                    Some(&ip(*i).to_string()),
                    Some(&name(*n)),
                    "default-deny",
                ));
                checks.push(Check::Lookup(name(*n), ip(*i)));
            }
        }
    }
    (lines, checks)
}

/// A use to decide under the suggested policy.
#[derive(Debug)]
enum Check {
    /// A lookup of the name, which answered the address.
    Lookup(String, IpAddr),
    /// A socket use: the address asked for, the address got.
    Use(SocketAddrUse, SocketAddr, SocketAddr),
    /// A datagram back to a peer whose datagram arrived first.
    Reply(SocketAddr),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every use the audit recorded is allowed by the suggestion (a lookup granting
    /// its answers the name's rules, as when enforced), and a connection to a port
    /// the audit never saw is not.
    #[test]
    fn the_suggestion_allows_every_recorded_use(
        steps in proptest::collection::vec(step(), 1..8),
        group_ports in any::<bool>(),
        group_hosts in any::<bool>(),
    ) {
        let (lines, checks) = record(&steps);
        let group = Group { ports: group_ports, hosts: group_hosts };
        let suggestion = suggest([lines], group);
        let policy = policy_of(&suggestion);
        let mut grants: Vec<(IpAddr, Vec<RuleRef>)> = Vec::new();
        let mut replies: Vec<SocketAddr> = Vec::new();
        for check in &checks {
            match check {
                Check::Lookup(name, answer) => {
                    prop_assert!(policy.decide_lookup(name).allowed, "lookup {name}\n{}", suggestion.to_toml(""));
                    grants.retain(|(ip, _)| ip != answer);
                    grants.push((*answer, covering(&policy, name)));
                }
                Check::Use(use_, requested, bound) => {
                    let granted: Vec<RuleRef> = grants
                        .iter()
                        .filter(|(ip, _)| *ip == bound.ip())
                        .flat_map(|(_, rules)| rules.iter().copied())
                        .collect();
                    let verdict = policy.decide_bound(*requested, *bound, *use_, &granted);
                    prop_assert!(verdict.allowed, "{use_:?} {requested} -> {bound}: {:?}\n{}", verdict, suggestion.to_toml(""));
                    if matches!(use_, SocketAddrUse::UdpReceive)
                        && let Decider::Rule(rule) = verdict.by
                        && rule.direction != super::Direction::Allow
                    {
                        replies.push(*bound);
                    }
                }
                Check::Reply(peer) => {
                    // The enforcer lets a reply go back to a peer admitted by a
                    // listen or accept rule, or by an allow rule covering the peer.
                    let allowed = replies.contains(peer)
                        || policy.decide(*peer, SocketAddrUse::UdpSend).allowed;
                    prop_assert!(allowed, "reply to {peer}\n{}", suggestion.to_toml(""));
                }
            }
        }
        // A connection the audit never saw: a port no step dialled, on a literal address.
        let unseen = SocketAddr::new(ip(0), 2500);
        prop_assert!(!policy.decide(unseen, SocketAddrUse::TcpConnect).allowed);
    }
}

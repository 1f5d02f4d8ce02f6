//! What the policy refuses never happens: the guest sees `access denied` in Go's words,
//! exits 1, the peer sees nothing, and sockbox names the refused use.

use crate::common::{
    Build, Process, TIMEOUT, assert_untouched, loopbacks, serve_on, sockbox, start, start_build,
    watched_listener,
};
use anyhow::Result;
use sockbox_host::Policy;
use sockbox_host::policy::{DecidedBy, Decision, Subject, UseKind};

/// A connect to a port no rule allows fails with `access denied`, and no connection reaches the listener.
#[test]
fn connect_outside_the_rules_is_denied() -> Result<()> {
    for host in loopbacks() {
        let listener = watched_listener(host)?;
        let addr = listener.local_addr()?;
        let other_port = if addr.port() == 65535 {
            1
        } else {
            addr.port() + 1
        };
        let policy = Policy::deny_all().allow(&format!("tcp://{host}:{other_port}"))?;
        let client = start(policy, &["dial", &addr.to_string()])?.wait(TIMEOUT)?;
        assert_eq!(client.status.code(), Some(1), "{client}");
        assert_eq!(
            client.stderr,
            format!("Error: dial tcp {addr}: access denied\n")
        );
        assert_eq!(client.stdout, "");
        assert_eq!(
            client.denials,
            [Decision {
                use_kind: UseKind::TcpConnect,
                subject: Subject::Addr(addr),
                allowed: false,
                would_deny: false,
                by: DecidedBy::DefaultDeny,
                host_addr: None,
            }]
        );
        assert_untouched(&listener)?;
    }
    Ok(())
}

/// With no rule at all the guest has no network: a dial is refused, recorded as the
/// connect it is (TCP is on for self connections; with `--no-self`, TCP itself is off
/// and nothing is recorded, since no address was named).
#[test]
fn no_rules_means_no_network() -> Result<()> {
    let listener = watched_listener("127.0.0.1")?;
    let addr = listener.local_addr()?;
    for build in [Build::P2, Build::P3] {
        for (policy, recorded) in [
            (
                Policy::deny_all(),
                vec![(UseKind::TcpConnect, Subject::Addr(addr))],
            ),
            (Policy::deny_all().without_self(), vec![]),
        ] {
            let client = start_build(build, policy, &["dial", &addr.to_string()])?.wait(TIMEOUT)?;
            assert_eq!(client.status.code(), Some(1), "{client}");
            assert_eq!(
                client.stderr,
                format!("Error: dial tcp {addr}: access denied\n")
            );
            let denials: Vec<_> = client
                .denials
                .iter()
                .map(|denial| (denial.use_kind, denial.subject.clone()))
                .collect();
            assert_eq!(denials, recorded, "{build:?}");
        }
    }
    assert_untouched(&listener)
}

/// Listening where no listen rule covers the address fails with `listen tcp …: access denied`
/// and announces nothing: another family, a port range without port 0, or only a connect rule.
#[test]
fn listen_outside_the_rules_is_denied() -> Result<()> {
    // Self connections off: a loopback port 0 would be a self listener, which only the
    // instance itself can reach (`self_connections.rs`).
    for policy in [
        serve_on("[::1]").without_self(),
        Policy::deny_all()
            .allow_listen("tcp://127.0.0.1:1-1023")?
            .without_self(),
        Policy::deny_all()
            .allow("tcp://127.0.0.1:*")?
            .without_self(),
    ] {
        let server = start(policy.clone(), &["listen", "127.0.0.1:0"])?.wait(TIMEOUT)?;
        assert_eq!(server.status.code(), Some(1), "{policy:?}: {server}");
        assert_eq!(
            server.stderr, "Error: listen tcp 127.0.0.1:0: access denied\n",
            "{policy:?}"
        );
        assert_eq!(server.stdout, "", "{policy:?}: nothing is announced");
    }
    Ok(())
}

/// `sockbox run` prints one line naming the denied use, and exits with the guest's status 1.
#[test]
fn cli_names_the_denied_use() -> Result<()> {
    let listener = watched_listener("127.0.0.1")?;
    let addr = listener.local_addr()?;
    let mut run = sockbox();
    run.args([
        "run",
        "--allow",
        "tcp://10.0.0.0/8:*",
        "--",
        "dial",
        &addr.to_string(),
    ]);
    let done = Process::run(run)?;
    assert_eq!(done.code()?, 1, "{done}");
    assert_eq!(
        done.stderr,
        format!(
            "sockbox: denied tcp connect to {addr} (no rule allows it)\n\
             Error: dial tcp {addr}: access denied\n"
        )
    );
    assert_untouched(&listener)
}

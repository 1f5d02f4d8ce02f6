//! `lookup NAME` through sockbox's resolver: addresses one per line, or Go's error.

use anyhow::{Result, ensure};
use sockbox_host::Policy;

use crate::common::{TIMEOUT, start};

/// `lookup localhost` prints its addresses, 127.0.0.1 among them, one per line.
#[test]
fn lookup_localhost() -> Result<()> {
    let policy = Policy::deny_all().allow("tcp://localhost:*")?;
    let done = start(policy, &["lookup", "localhost"])?.wait(TIMEOUT)?;
    ensure!(done.status.success(), "{done}");
    ensure!(
        done.stdout.lines().any(|line| line == "127.0.0.1"),
        "{done}"
    );
    for line in done.stdout.lines() {
        line.parse::<std::net::IpAddr>()?;
    }
    Ok(())
}

/// A name that cannot resolve — and a name no rule covers — is `no such host`, exit 1.
#[test]
pub(crate) fn unresolvable_and_refused_names() -> Result<()> {
    for (policy, name) in [
        (
            Policy::deny_all().allow("tcp://*:*")?,
            "no-such-host.invalid",
        ),
        (
            Policy::deny_all().allow("tcp://localhost:*")?,
            "example.org",
        ),
    ] {
        let done = start(policy, &["lookup", name])?.wait(TIMEOUT)?;
        assert_eq!(done.status.code(), Some(1), "{done}");
        assert_eq!(done.stdout, "");
        assert_eq!(done.stderr, format!("Error: lookup {name}: no such host\n"));
    }
    Ok(())
}

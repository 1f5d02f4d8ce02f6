//! A workload's settings from its OCI annotations: a pod cannot pass flags, so what
//! `sockbox run` takes as flags, the containerd shim takes as `sockbox.io/…`
//! annotations (Kubernetes passes pod annotations through when containerd's runtime
//! entry lists them in `pod_annotations`).
//!
//! No annotation means no network. Every `sockbox.io/` key must be one of [`KEYS`]; a
//! malformed one fails the whole workload, never leaving a partly applied policy.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use super::{AuditTo, Settings};
use crate::Limits;
use crate::policy::{Direction, Mode, Policy};
use crate::runner::{parse_max_sockets, parse_size};

/// The annotations' prefix.
pub const PREFIX: &str = "sockbox.io/";

/// Every annotation the shim reads, with the `sockbox run` flag it stands for.
pub const KEYS: [(&str, &str); 19] = [
    (
        "sockbox.io/policy",
        "--policy FILE (the file's TOML, inline)",
    ),
    ("sockbox.io/allow", "--allow RULE"),
    ("sockbox.io/allow-listen", "--allow-listen RULE"),
    ("sockbox.io/allow-accept", "--allow-accept RULE"),
    ("sockbox.io/deny", "--deny RULE"),
    ("sockbox.io/inherit-network", "--inherit-network"),
    ("sockbox.io/allow-special", "--allow-special"),
    ("sockbox.io/no-self", "--no-self"),
    ("sockbox.io/nat64-prefixes", "--nat64-prefix PREFIX"),
    ("sockbox.io/audit-only", "--audit-only"),
    ("sockbox.io/publish", "--publish HOST_PORT:GUEST_PORT"),
    (
        "sockbox.io/audit",
        "--audit FILE (here: `stderr`, the container's log)",
    ),
    ("sockbox.io/max-memory", "--max-memory SIZE"),
    ("sockbox.io/timeout", "--timeout DURATION"),
    ("sockbox.io/cpu-time", "--cpu-time DURATION"),
    ("sockbox.io/max-sockets", "--max-sockets N|unlimited"),
    ("sockbox.io/no-tcp-nodelay", "--no-tcp-nodelay"),
    ("sockbox.io/instances", "--instances N|auto"),
    (
        "sockbox.io/metrics",
        "--metrics ADDR (inside the pod's network)",
    ),
];

/// An annotation that could not be read: which, and why, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationError {
    key: String,
    why: String,
}

impl AnnotationError {
    fn new(key: &str, why: impl fmt::Display) -> Self {
        Self {
            key: key.to_owned(),
            why: why.to_string(),
        }
    }
}

impl fmt::Display for AnnotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "annotation {}: {}", self.key, self.why)
    }
}

impl std::error::Error for AnnotationError {}

/// Reads the settings from a container's annotations (other keys are ignored).
pub fn parse(annotations: &HashMap<String, String>) -> Result<Settings, AnnotationError> {
    let get = |key: &str| annotations.get(key).map(|value| value.trim());
    // Sorted, so the first error reported is the same every time.
    let mut ours: Vec<&String> = annotations
        .keys()
        .filter(|key| key.starts_with(PREFIX))
        .collect();
    ours.sort();
    if let Some(unknown) = ours
        .into_iter()
        .find(|key| !KEYS.iter().any(|(known, _)| known == key))
    {
        let known: Vec<&str> = KEYS.iter().map(|(key, _)| *key).collect();
        return Err(AnnotationError::new(
            unknown,
            format!(
                "not a sockbox annotation; expected one of {}",
                known.join(", ")
            ),
        ));
    }
    let mut policy = match get("sockbox.io/policy") {
        Some(text) => Policy::from_toml(text, "policy")
            .map_err(|err| AnnotationError::new("sockbox.io/policy", err))?,
        None => Policy::deny_all(),
    };
    if flag(get, "sockbox.io/inherit-network")? {
        policy = policy.with_inherit_network();
    }
    if flag(get, "sockbox.io/allow-special")? {
        policy = policy.with_special_allowed();
    }
    if flag(get, "sockbox.io/no-self")? {
        policy = policy.without_self();
    }
    for prefix in list(get("sockbox.io/nat64-prefixes")) {
        let prefix = prefix
            .parse()
            .map_err(|why| AnnotationError::new("sockbox.io/nat64-prefixes", why))?;
        policy.push_nat64_prefix(prefix);
    }
    if flag(get, "sockbox.io/audit-only")? {
        policy = policy.with_mode(Mode::Audit);
    }
    for (key, direction) in [
        ("sockbox.io/allow", Direction::Allow),
        ("sockbox.io/allow-listen", Direction::Listen),
        ("sockbox.io/allow-accept", Direction::Accept),
        ("sockbox.io/deny", Direction::Deny),
    ] {
        for rule in list(get(key)) {
            rule.parse()
                .and_then(|rule| policy.push(direction, rule))
                .map_err(|err| AnnotationError::new(key, err))?;
        }
    }
    for publish in list(get("sockbox.io/publish")) {
        publish
            .parse()
            .and_then(|publish| policy.push_publish(publish))
            .map_err(|err| AnnotationError::new("sockbox.io/publish", err))?;
    }
    let audit = match get("sockbox.io/audit") {
        None => None,
        Some("stderr") => Some(AuditTo::Stderr),
        Some(other) => {
            return Err(AnnotationError::new(
                "sockbox.io/audit",
                format!(
                    "`{other}` is not an audit destination: use `stderr` (the container's log)"
                ),
            ));
        }
    };
    let mut limits = Limits::default();
    if let Some(size) = get("sockbox.io/max-memory") {
        limits.max_memory = Some(
            parse_size(size).map_err(|why| AnnotationError::new("sockbox.io/max-memory", why))?,
        );
    }
    limits.timeout = duration(get, "sockbox.io/timeout")?;
    limits.cpu_time = duration(get, "sockbox.io/cpu-time")?;
    if let Some(max) = get("sockbox.io/max-sockets") {
        limits.max_sockets = Some(
            parse_max_sockets(max)
                .map_err(|why| AnnotationError::new("sockbox.io/max-sockets", why))?,
        );
    }
    let no_tcp_nodelay = flag(get, "sockbox.io/no-tcp-nodelay")?;
    let instances = match get("sockbox.io/instances") {
        Some(count) => super::parse_instances(count)
            .map_err(|why| AnnotationError::new("sockbox.io/instances", why))?,
        None => 1,
    };
    let metrics = get("sockbox.io/metrics")
        .map(|addr| {
            addr.parse().map_err(|_| {
                AnnotationError::new(
                    "sockbox.io/metrics",
                    format!("`{addr}` is not an address: write IP:PORT, e.g. 0.0.0.0:9464"),
                )
            })
        })
        .transpose()?;
    Ok(Settings {
        policy,
        limits,
        audit,
        no_tcp_nodelay,
        instances,
        metrics,
    })
}

/// A comma-separated list, each item trimmed, empty items skipped. Commas inside a
/// rule's `{…}` lists belong to the rule.
fn list(value: Option<&str>) -> Vec<&str> {
    let Some(value) = value else {
        return Vec::new();
    };
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (index, c) in value.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&value[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    items.push(&value[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

/// A `true`/`false` annotation (absent: false).
fn flag<'a>(get: impl Fn(&str) -> Option<&'a str>, key: &str) -> Result<bool, AnnotationError> {
    match get(key) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(AnnotationError::new(
            key,
            format!("`{other}` is not true or false"),
        )),
    }
}

/// A duration annotation: `30s`, `500ms`, `2m`.
fn duration<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    key: &str,
) -> Result<Option<Duration>, AnnotationError> {
    get(key)
        .map(|text| {
            humantime::parse_duration(text).map_err(|err| {
                AnnotationError::new(
                    key,
                    format!("`{text}` is not a duration ({err}): use 30s, 500ms, 2m"),
                )
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use crate::policy::SocketAddrUse;

    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn allowed(settings: &Settings, addr: &str, socket_use: SocketAddrUse) -> bool {
        let addr: SocketAddr = addr.parse().expect("an address");
        settings.policy.decide(addr, socket_use).allowed
    }

    #[test]
    fn no_annotation_means_no_network() {
        let settings = parse(&annotations(&[("io.kubernetes.cri.sandbox-id", "x")]))
            .expect("no sockbox annotation is valid");
        assert!(settings.policy.is_empty());
        assert_eq!(settings.limits, Limits::default());
        assert_eq!(settings.audit, None);
        assert!(!settings.no_tcp_nodelay);
        assert!(
            settings.policy.allows_self(),
            "a socket pair is not network"
        );
        assert!(allowed(&settings, "127.0.0.1:0", SocketAddrUse::TcpBind));
    }

    #[test]
    fn no_self_turns_self_connections_off() {
        let settings = parse(&annotations(&[("sockbox.io/no-self", "true")])).expect("valid");
        assert!(!settings.policy.allows_self());
        assert!(!allowed(&settings, "127.0.0.1:0", SocketAddrUse::TcpBind));
    }

    #[test]
    fn rules_limits_and_switches() {
        let settings = parse(&annotations(&[
            (
                "sockbox.io/allow",
                "tcp://{10.0.0.1,10.0.0.2}:443, udp://10.0.0.53:53",
            ),
            ("sockbox.io/allow-listen", "tcp://127.0.0.1:*"),
            ("sockbox.io/deny", "tcp://10.0.0.2:*"),
            ("sockbox.io/max-memory", "64MiB"),
            ("sockbox.io/timeout", "30s"),
            ("sockbox.io/cpu-time", "500ms"),
            ("sockbox.io/max-sockets", "100"),
            ("sockbox.io/audit", "stderr"),
            ("sockbox.io/audit-only", "false"),
            ("sockbox.io/publish", "0:80"),
            ("sockbox.io/no-tcp-nodelay", "true"),
        ]))
        .expect("valid");
        assert!(allowed(
            &settings,
            "10.0.0.1:443",
            SocketAddrUse::TcpConnect
        ));
        assert!(!allowed(
            &settings,
            "10.0.0.2:443",
            SocketAddrUse::TcpConnect
        ));
        assert!(allowed(&settings, "10.0.0.53:53", SocketAddrUse::UdpSend));
        assert!(allowed(&settings, "127.0.0.1:8080", SocketAddrUse::TcpBind));
        assert_eq!(settings.limits.max_memory, Some(64 << 20));
        assert_eq!(settings.limits.timeout, Some(Duration::from_secs(30)));
        assert_eq!(settings.limits.cpu_time, Some(Duration::from_millis(500)));
        assert_eq!(settings.limits.max_sockets, Some(100));
        assert_eq!(settings.audit, Some(AuditTo::Stderr));
        assert!(settings.no_tcp_nodelay);
        assert_eq!(settings.policy.mode(), Mode::Enforce);
        assert_eq!(settings.policy.published().len(), 1);
    }

    #[test]
    fn an_inline_policy_and_rules_added_to_it() {
        let settings = parse(&annotations(&[
            (
                "sockbox.io/policy",
                "allow = [\"tcp://10.0.0.0/8:443\"]\nmode = \"audit\"\n",
            ),
            ("sockbox.io/allow", "tcp://192.168.0.1:80"),
            ("sockbox.io/inherit-network", "true"),
        ]))
        .expect("valid");
        assert_eq!(settings.policy.mode(), Mode::Audit);
        assert!(settings.policy.inherits_network());
        assert_eq!(settings.policy.rules().count(), 2);
    }

    #[test]
    fn malformed_annotations_are_one_line_each() {
        for (pairs, error) in [
            (
                &[("sockbox.io/allow", "tcp://10.0.0.0/33:80")][..],
                "annotation sockbox.io/allow: invalid rule `tcp://10.0.0.0/33:80`: host prefix length `/33` is not between 0 and 32",
            ),
            (
                &[("sockbox.io/alow", "tcp://*:*")],
                "annotation sockbox.io/alow: not a sockbox annotation; expected one of sockbox.io/policy,",
            ),
            (
                &[("sockbox.io/policy", "alow = []")],
                "annotation sockbox.io/policy: policy:1: unknown field `alow`",
            ),
            (
                &[("sockbox.io/max-memory", "lots")],
                "annotation sockbox.io/max-memory: `lots` is not a size",
            ),
            (
                &[("sockbox.io/metrics", "9464")],
                "annotation sockbox.io/metrics: `9464` is not an address: write IP:PORT",
            ),
            (
                &[("sockbox.io/timeout", "soon")],
                "annotation sockbox.io/timeout: `soon` is not a duration",
            ),
            (
                &[("sockbox.io/max-sockets", "-1")],
                "annotation sockbox.io/max-sockets: `-1` is not a number of sockets",
            ),
            (
                &[("sockbox.io/inherit-network", "yes")],
                "annotation sockbox.io/inherit-network: `yes` is not true or false",
            ),
            (
                &[("sockbox.io/audit", "/var/log/a.jsonl")],
                "annotation sockbox.io/audit: `/var/log/a.jsonl` is not an audit destination",
            ),
            (
                &[("sockbox.io/publish", "80")],
                "annotation sockbox.io/publish: publish `80`: expected HOST_PORT:GUEST_PORT",
            ),
            (
                &[("sockbox.io/allow-accept", "tcp://example.com:*")],
                "annotation sockbox.io/allow-accept: invalid rule `tcp://example.com:*`: rule names a host by DNS name",
            ),
        ] {
            let err = parse(&annotations(pairs))
                .expect_err("malformed")
                .to_string();
            assert!(err.starts_with(error), "{pairs:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn lists_keep_braces_whole() {
        assert_eq!(
            list(Some(" tcp://{a,b}:{80,443} ,udp://c:53,, ")),
            ["tcp://{a,b}:{80,443}", "udp://c:53"]
        );
        assert!(list(None).is_empty());
    }
}

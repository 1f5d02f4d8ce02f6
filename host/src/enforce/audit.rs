//! Decisions recorded: each distinct denial once (handed to the embedder's sink), or
//! every decision as one JSON line in an audit file.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

use crate::policy::{DecidedBy, Decision, Subject, UseKind};

/// How many distinct denials a [`DenialLog`] keeps; past that it only counts them, so
/// a guest probing every port cannot grow the host's memory.
pub const MAX_DENIALS: usize = 1024;

/// The denials of one or more instances, each distinct one kept once, in order, up to
/// [`MAX_DENIALS`].
#[derive(Default)]
pub struct DenialLog {
    state: Mutex<Denials>,
    /// Uses that went ahead in audit mode but would have been denied, every one.
    would_deny: AtomicU64,
    sink: Option<DenialSink>,
}

/// Where an embedder wants each new distinct denial as it happens (the `sockbox` CLI
/// prints it as one `sockbox: denied …` line).
pub type DenialSink = Arc<dyn Fn(&Decision) + Send + Sync>;

impl fmt::Debug for DenialLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DenialLog")
            .field("state", &self.state)
            .field("sink", &self.sink.is_some())
            .finish()
    }
}

#[derive(Debug, Default)]
struct Denials {
    order: Vec<Decision>,
    seen: HashSet<(UseKind, Subject)>,
    /// Distinct denials past [`MAX_DENIALS`], counted but not kept.
    dropped: u64,
}

impl DenialLog {
    /// Returns a log that also hands each new distinct denial to `sink`.
    pub fn with_sink(sink: DenialSink) -> Self {
        Self {
            state: Mutex::default(),
            would_deny: AtomicU64::new(0),
            sink: Some(sink),
        }
    }

    /// Records a denial: keeps it and hands it to the sink if it is new, and emits it
    /// as a `tracing` debug event.
    pub fn record(&self, denial: &Decision) {
        if denial.would_deny {
            self.would_deny.fetch_add(1, Ordering::Relaxed);
        }
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (denial.use_kind, denial.subject.clone());
        if state.seen.contains(&key) {
            return;
        }
        if state.order.len() >= MAX_DENIALS {
            state.dropped += 1;
            if state.dropped == 1 {
                tracing::warn!(
                    max = MAX_DENIALS,
                    "more distinct denials than a log keeps; further ones are counted, not listed"
                );
            }
            return;
        }
        state.seen.insert(key);
        state.order.push(denial.clone());
        drop(state);
        if denial.would_deny {
            tracing::debug!(%denial, "would deny");
        } else {
            tracing::debug!(%denial, "denied");
        }
        if let Some(sink) = &self.sink {
            sink(denial);
        }
    }

    /// Returns the distinct denials kept so far (at most [`MAX_DENIALS`]).
    pub fn denials(&self) -> Vec<Decision> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .order
            .clone()
    }

    /// Returns how many uses went ahead in audit mode that enforcing would have
    /// denied: every one, not only the distinct ones kept.
    pub fn would_deny(&self) -> u64 {
        self.would_deny.load(Ordering::Relaxed)
    }

    /// Returns how many distinct denials came after the log was full.
    pub fn dropped(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .dropped
    }
}

/// An audit trail: every decision as one JSON line, appended to a file.
///
/// Each line has `time` (RFC 3339, UTC), `instance`, `use` (`tcp-connect`, `lookup`,
/// `lookup-answer`, …), `address` and/or `name`, `host_address` for a published port,
/// `verdict` (`allow`, `deny`, or `would-deny` in audit mode), and `rule`: the deciding
/// rule's text with its `direction`, or `default-deny`, `inherit-network`,
/// `max-sockets`, `self` (a self connection), `special:metadata` (and the preset's
/// other kinds). An address a lookup had granted and the instance forgot, to keep its
/// grants bounded, is a line of its own: `use` `grant-evicted`, `verdict` `evicted`,
/// `rule` `max-name-grants`.
#[derive(Debug)]
pub struct AuditLog {
    file: Mutex<File>,
    failed: AtomicBool,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    instance: &'a str,
    #[serde(rename = "use")]
    use_kind: UseKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    /// A published port's host side, where `address` is the guest's.
    #[serde(skip_serializing_if = "Option::is_none")]
    host_address: Option<String>,
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<&'a str>,
    rule: &'a str,
}

impl AuditLog {
    /// Creates (or truncates) the audit file at `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self::to_file(File::create(path)?))
    }

    /// Writes audit lines to `file`.
    pub fn to_file(file: File) -> Self {
        Self {
            file: Mutex::new(file),
            failed: AtomicBool::new(false),
        }
    }

    /// Appends one decision of the instance called `instance`. A write that fails is
    /// reported once, as a `tracing` warning; the decision itself stands.
    pub fn write(&self, instance: &str, decision: &Decision) {
        let (direction, rule) = match &decision.by {
            DecidedBy::Rule { direction, rule } => (Some(direction.key()), rule.as_str()),
            DecidedBy::InheritNetwork => (None, "inherit-network"),
            DecidedBy::DefaultDeny => (None, "default-deny"),
            DecidedBy::MaxSockets(_) => (None, "max-sockets"),
            DecidedBy::MaxNameGrants(_) => (None, "max-name-grants"),
            DecidedBy::Special(special) => (None, special.rule_name()),
            DecidedBy::SelfConnection => (None, "self"),
        };
        let (address, name) = match &decision.subject {
            Subject::Addr(addr) => (Some(addr.to_string()), None),
            Subject::Name(name) => (None, Some(name.as_str())),
            Subject::Answer { name, addr } => (Some(addr.to_string()), Some(name.as_str())),
        };
        let line = Line {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            instance,
            use_kind: decision.use_kind,
            address,
            name,
            host_address: decision.host_addr.map(|addr| addr.to_string()),
            verdict: match (decision.allowed, decision.would_deny) {
                _ if decision.use_kind == UseKind::GrantEvicted => "evicted",
                (_, true) => "would-deny",
                (true, false) => "allow",
                (false, false) => "deny",
            },
            direction,
            rule,
        };
        self.append(&line);
    }

    /// Appends a policy reload of the run's: `"use":"policy-reload"`, the file it read
    /// (`source`) and its `sha256`; `"verdict":"allow"` when it took effect, else
    /// `"deny"` with the reason as `error` (the old policy stays).
    pub fn write_reload(&self, source: &str, sha256: &str, error: Option<&str>) {
        #[derive(Serialize)]
        struct Reload<'a> {
            time: String,
            instance: &'static str,
            #[serde(rename = "use")]
            use_kind: &'static str,
            source: &'a str,
            sha256: &'a str,
            verdict: &'static str,
            rule: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<&'a str>,
        }
        self.append(&Reload {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            instance: "sockbox",
            use_kind: "policy-reload",
            source,
            sha256,
            verdict: if error.is_none() { "allow" } else { "deny" },
            rule: "policy-reload",
            error,
        });
    }

    /// Appends one JSON line; a write that fails is reported once.
    fn append(&self, line: &impl Serialize) {
        let result = serde_json::to_string(line)
            .map_err(std::io::Error::from)
            .and_then(|mut text| {
                text.push('\n');
                self.file
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .write_all(text.as_bytes())
            });
        if let Err(err) = result
            && !self.failed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(%err, "write to the audit file");
        }
    }
}

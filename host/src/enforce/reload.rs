//! The policy a run enforces, replaceable while it runs: every decision reads the
//! current one, so a reload takes effect at the next bind, connect, accept, datagram or
//! lookup. What a policy already let happen stays: an established connection is not
//! judged again, a name's granted addresses stay granted.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;

use super::AuditLog;
use crate::metrics::Metrics;
use crate::policy::{Policy, Publish};

/// A run's policy, shared by its instances and by whoever may replace it (the CLI on
/// `SIGHUP`, an embedder through [`Sandbox::policy_handle`](crate::Sandbox::policy_handle)).
/// Cheap to clone: clones are the same policy.
#[derive(Clone)]
pub struct PolicyHandle(Arc<Shared>);

struct Shared {
    current: ArcSwap<Policy>,
    /// The published ports as first asked for (host port 0 not yet picked): a reload
    /// must ask for the same, since they are bound for the run.
    published: Vec<Publish>,
    /// Where reloads are recorded, if the run has an audit trail.
    audit: std::sync::Mutex<Option<Arc<AuditLog>>>,
    /// Where reloads are counted, if anywhere.
    metrics: std::sync::Mutex<Option<Arc<Metrics>>>,
    reloads: AtomicU64,
    refused: AtomicU64,
    /// Whether someone holds the handle to reload it: then every transport is on,
    /// so a reload can allow one the first policy did not use.
    reloadable: AtomicBool,
}

impl fmt::Debug for PolicyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyHandle")
            .field("current", &self.current())
            .field("reloads", &self.reloads())
            .finish_non_exhaustive()
    }
}

/// Why a reload was refused: the old policy stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadRefused(String);

impl fmt::Display for ReloadRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReloadRefused {}

impl PolicyHandle {
    /// A handle on `policy`.
    pub fn new(policy: Policy) -> Self {
        Self(Arc::new(Shared {
            published: policy.published().to_vec(),
            current: ArcSwap::from_pointee(policy),
            audit: std::sync::Mutex::new(None),
            metrics: std::sync::Mutex::new(None),
            reloads: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            reloadable: AtomicBool::new(false),
        }))
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<Policy> {
        self.0.current.load_full()
    }

    /// Records reloads in `audit` from now on.
    pub(crate) fn audit_to(&self, audit: Option<Arc<AuditLog>>) {
        *self
            .0
            .audit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = audit;
    }

    /// Counts reloads in `metrics` from now on.
    pub(crate) fn count_in(&self, metrics: Option<Arc<Metrics>>) {
        *self
            .0
            .metrics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = metrics;
    }

    fn metrics(&self) -> Option<Arc<Metrics>> {
        self.0
            .metrics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Puts `policy` in force for every decision from now on, and records it in the
    /// run's audit (`"use":"policy-reload"`, with `source` and its `sha256`). Refused,
    /// keeping the old policy, if it publishes other ports than the run started with
    /// (they are bound for the run).
    pub fn reload(
        &self,
        mut policy: Policy,
        source: &str,
        sha256: &str,
    ) -> Result<(), ReloadRefused> {
        let current = self.current();
        if policy.published() != self.0.published.as_slice() {
            let refused = ReloadRefused(format!(
                "{source} publishes other ports than the run started with; a restart changes them"
            ));
            self.refuse(source, sha256, &refused);
            return Err(refused);
        }
        // Keep the host ports the run picked for port 0.
        policy.adopt_published(&current);
        self.0.current.store(Arc::new(policy));
        self.0.reloads.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = self.metrics() {
            metrics.reloaded(true);
        }
        tracing::info!(source, sha256, "policy reloaded");
        if let Some(audit) = self.audit() {
            audit.write_reload(source, sha256, None);
        }
        Ok(())
    }

    /// Records a reload that did not happen (a file that does not parse, say): the old
    /// policy stays.
    pub fn refuse(&self, source: &str, sha256: &str, why: &dyn fmt::Display) {
        self.0.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = self.metrics() {
            metrics.reloaded(false);
        }
        if let Some(audit) = self.audit() {
            audit.write_reload(source, sha256, Some(&why.to_string()));
        }
    }

    /// How many reloads took effect.
    pub fn reloads(&self) -> u64 {
        self.0.reloads.load(Ordering::Relaxed)
    }

    /// How many reloads were refused.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }

    /// Marks the policy as one a reload may replace (its handle was handed out).
    pub(crate) fn mark_reloadable(&self) {
        self.0.reloadable.store(true, Ordering::Relaxed);
    }

    /// Whether a reload may replace the policy: stores made from now on let the guest
    /// make sockets of every transport, for the policy in force to decide on.
    pub fn is_reloadable(&self) -> bool {
        self.0.reloadable.load(Ordering::Relaxed)
    }

    /// Replaces the policy without recording a reload: the run's own adjustment (the
    /// host ports it picked).
    pub(crate) fn set(&self, policy: Policy) {
        self.0.current.store(Arc::new(policy));
    }

    fn audit(&self) -> Option<Arc<AuditLog>> {
        self.0
            .audit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

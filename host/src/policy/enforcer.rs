//! The one place verdicts take effect: wasmtime-wasi's socket check and sockbox's
//! resolver ask an [`Enforcer`], which decides, records, and answers yes or no.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::{
    AuditLog, Decision, DenialLog, NameGrants, Policy, SocketAddrUse, Subject, UseKind, Verdict,
};

/// A policy at work for one guest instance: its name grants, denial log and audit trail.
#[derive(Debug)]
pub struct Enforcer {
    instance: String,
    policy: Arc<Policy>,
    grants: NameGrants,
    denials: Arc<DenialLog>,
    audit: Option<Arc<AuditLog>>,
}

impl Enforcer {
    /// Enforces `policy` for the instance called `instance`, recording denials in
    /// `denials` and, if given, every decision in `audit`.
    pub fn new(
        instance: impl Into<String>,
        policy: Arc<Policy>,
        denials: Arc<DenialLog>,
        audit: Option<Arc<AuditLog>>,
    ) -> Self {
        Self {
            instance: instance.into(),
            policy,
            grants: NameGrants::new(),
            denials,
            audit,
        }
    }

    /// Returns the policy enforced.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Decides a socket use wasmtime-wasi reports. Allocates only to record a decision
    /// (a denial, or anything when auditing).
    pub fn check(&self, addr: SocketAddr, socket_use: SocketAddrUse) -> bool {
        let verdict = self
            .policy
            .decide_with(addr, socket_use, Some(&self.grants));
        if !verdict.allowed || self.audit.is_some() {
            self.record(socket_use.into(), Subject::Addr(addr), verdict);
        }
        verdict.allowed
    }

    /// Decides a lookup of `name` (already normalized: lowercase, punycode).
    pub fn check_lookup(&self, name: &str) -> bool {
        let verdict = self.policy.decide_lookup(name);
        self.record(UseKind::Lookup, Subject::Name(name.to_owned()), verdict);
        verdict.allowed
    }

    /// Records that an allowed lookup of `name` returned `addrs`.
    pub fn grant(&self, name: &str, addrs: &[IpAddr]) {
        self.grants.record(&self.policy, name, addrs);
    }

    fn record(&self, use_kind: UseKind, subject: Subject, verdict: Verdict) {
        if verdict.allowed && self.audit.is_none() {
            return;
        }
        let decision = Decision {
            use_kind,
            subject,
            allowed: verdict.allowed,
            by: self.policy.decided_by(verdict.by),
        };
        if let Some(audit) = &self.audit {
            audit.write(&self.instance, &decision);
        }
        if !decision.allowed {
            self.denials.record(&decision);
        }
    }
}

//! The one place verdicts take effect: wasmtime-wasi's socket check and sockbox's
//! resolver ask an [`Enforcer`], which decides, records, and answers yes or no.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use super::{AuditLog, DenialLog, NameGrants};
use crate::policy::{
    DecidedBy, Decider, Decision, Direction, Policy, SocketAddrUse, Subject, UseKind, Verdict,
};

/// How many UDP peers an instance remembers it may reply to; past that, one is forgotten
/// for each new one.
const MAX_REPLY_PEERS: usize = 4096;

/// A policy at work for one guest instance: its name grants, denial log and audit trail.
#[derive(Debug)]
pub struct Enforcer {
    instance: String,
    policy: Arc<Policy>,
    grants: NameGrants,
    /// UDP peers received from under a listen or accept rule, which may be replied to.
    replies: RwLock<HashMap<SocketAddr, Decider>>,
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
            replies: RwLock::default(),
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
    ///
    /// A UDP server may reply: a datagram received under a `listen` or `accept` rule
    /// lets the instance send back to its sender (decided by the same rule), unless a
    /// `deny` rule covers the sender.
    pub fn check(&self, addr: SocketAddr, socket_use: SocketAddrUse) -> bool {
        self.check_bound(addr, addr, socket_use)
    }

    /// Decides a bind again on the address it really got (`addr`, where the guest
    /// asked for `requested`), as [`Policy::decide_bound`] does: a bind to port 0 is
    /// first checked before the system picks the port.
    pub fn check_bound(
        &self,
        requested: SocketAddr,
        addr: SocketAddr,
        socket_use: SocketAddrUse,
    ) -> bool {
        // The grants' lock is taken only when some rule names a host.
        let mut verdict = if self.policy.has_name_rules() {
            let granted = self.grants.read();
            self.policy
                .decide_bound(requested, addr, socket_use, &granted)
        } else {
            self.policy.decide_bound(requested, addr, socket_use, &[])
        };
        let peer = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        match (socket_use, verdict.by) {
            (SocketAddrUse::UdpSend, Decider::DefaultDeny) => {
                let replies = self
                    .replies
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(&by) = replies.get(&peer) {
                    verdict = Verdict { allowed: true, by };
                }
            }
            (SocketAddrUse::UdpReceive, Decider::Rule(rule))
                if verdict.allowed && rule.direction != Direction::Allow =>
            {
                self.remember_reply_peer(peer, verdict.by);
            }
            _ => {}
        }
        tracing::debug!(
            instance = %self.instance,
            r#use = ?socket_use,
            %addr,
            allowed = verdict.allowed,
            "decided"
        );
        if !verdict.allowed || self.audit.is_some() {
            self.record(socket_use.into(), Subject::Addr(addr), verdict);
        }
        verdict.allowed
    }

    fn remember_reply_peer(&self, peer: SocketAddr, by: Decider) {
        let read = |enforcer: &Self| {
            enforcer
                .replies
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .contains_key(&peer)
        };
        if read(self) {
            return;
        }
        let mut replies = self
            .replies
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if replies.len() >= MAX_REPLY_PEERS
            && let Some(&forgotten) = replies.keys().next()
        {
            replies.remove(&forgotten);
        }
        replies.insert(peer, by);
    }

    /// Decides a lookup of `name` (already normalized: lowercase, punycode).
    pub fn check_lookup(&self, name: &str) -> bool {
        let verdict = self.policy.decide_lookup(name);
        tracing::debug!(instance = %self.instance, name, allowed = verdict.allowed, "decided lookup");
        self.record(UseKind::Lookup, Subject::Name(name.to_owned()), verdict);
        verdict.allowed
    }

    /// Records that an allowed lookup of `name` returned `addrs`.
    pub fn grant(&self, name: &str, addrs: &[IpAddr]) {
        self.grants.record(&self.policy, name, addrs);
    }

    /// Records that a connection from `peer` arrived while the instance held its
    /// `max` sockets, and was closed by the host instead of being handed to the guest.
    pub fn refuse_over_cap(&self, peer: SocketAddr, max: usize) {
        self.write(Decision {
            use_kind: UseKind::TcpAccept,
            subject: Subject::Addr(peer),
            allowed: false,
            by: DecidedBy::MaxSockets(max),
        });
    }

    fn record(&self, use_kind: UseKind, subject: Subject, verdict: Verdict) {
        if verdict.allowed && self.audit.is_none() {
            return;
        }
        self.write(Decision {
            use_kind,
            subject,
            allowed: verdict.allowed,
            by: self.policy.decided_by(verdict.by),
        });
    }

    fn write(&self, decision: Decision) {
        if let Some(audit) = &self.audit {
            audit.write(&self.instance, &decision);
        }
        if !decision.allowed {
            self.denials.record(&decision);
        }
    }
}

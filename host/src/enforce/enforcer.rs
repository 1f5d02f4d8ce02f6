//! Where verdicts are decided and recorded: wasmtime-wasi's socket check and sockbox's
//! resolver ask an [`Enforcer`], which decides, records, and answers yes or no; the
//! WASI layer turns a no into the guest's error (`wasi/errors.rs`). What a decision
//! needs beyond the rules is kept beside it: name grants (`names.rs`), published ports
//! (`ports.rs`), UDP reply peers (`replies.rs`) and self-connection sockets (`own.rs`).
//! (Just over 400 lines: every kind of use, decided and recorded in one type.)

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use super::PolicyHandle;
use super::own::OwnSockets;
use super::ports::{Ports, PublishSink, Published};
use super::replies::ReplyPeers;
use super::{AuditLog, DenialLog, NameGrants};
use crate::metrics::Metrics;
use crate::policy::{
    DecidedBy, Decider, Decision, Direction, Mode, Policy, RuleRef, SocketAddrUse, Subject,
    Transport, UseKind, Verdict, is_self_bind,
};

/// A policy at work for one guest instance: its name grants, denial log and audit trail.
#[derive(Debug)]
pub struct Enforcer {
    instance: String,
    policy: PolicyHandle,
    grants: NameGrants,
    /// UDP peers received from under a listen or accept rule, which may be replied to.
    replies: ReplyPeers,
    denials: Arc<DenialLog>,
    audit: Option<Arc<AuditLog>>,
    /// Its published ports.
    ports: Ports,
    on_publish: Option<PublishHook>,
    /// Its own self-connection sockets.
    own: OwnSockets,
    /// The policy its name grants are derived under (a reload derives them again).
    grants_under: Mutex<Arc<Policy>>,
    /// Where decisions are counted, if anywhere.
    metrics: Option<Arc<Metrics>>,
}

struct PublishHook(PublishSink);

impl fmt::Debug for PublishHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublishHook(..)")
    }
}

impl Enforcer {
    /// Enforces `policy` (the one in force at each decision) for the instance called
    /// `instance`, recording denials in `denials` and, if given, every decision in
    /// `audit`.
    pub fn new(
        instance: impl Into<String>,
        policy: PolicyHandle,
        denials: Arc<DenialLog>,
        audit: Option<Arc<AuditLog>>,
    ) -> Self {
        let policy_now = policy.current();
        Self {
            instance: instance.into(),
            policy,
            grants: NameGrants::new(),
            replies: ReplyPeers::default(),
            denials,
            audit,
            ports: Ports::default(),
            on_publish: None,
            own: OwnSockets::default(),
            grants_under: Mutex::new(policy_now),
            metrics: None,
        }
    }

    /// Returns where its decisions are counted, if anywhere.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// Counts every decision in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Hands each port published to `sink` as the guest binds it.
    pub fn with_publish_sink(mut self, sink: PublishSink) -> Self {
        self.on_publish = Some(PublishHook(sink));
        self
    }

    /// Returns the policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.current()
    }

    /// Whether a reload may replace the policy ([`PolicyHandle::is_reloadable`]).
    pub fn reloadable(&self) -> bool {
        self.policy.is_reloadable()
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
        self.check_bound_under(&self.policy.current(), requested, addr, socket_use)
    }

    /// [`Enforcer::check_bound`] under `policy`: one policy for the whole decision,
    /// whatever a reload does meanwhile.
    fn check_bound_under(
        &self,
        policy: &Arc<Policy>,
        requested: SocketAddr,
        addr: SocketAddr,
        socket_use: SocketAddrUse,
    ) -> bool {
        if !policy.published().is_empty() {
            if self.ports.take_pending(socket_use, addr) {
                return true;
            }
            if let Some(guest) = self.guest_view(policy, socket_use, addr) {
                return self.check_published(policy, guest, addr, socket_use);
            }
        }
        let own = policy.allows_self() && self.own.claims(addr, socket_use);
        let mut verdict = if own {
            self.decide_own(policy, addr, socket_use)
        } else {
            self.decide(policy, requested, addr, socket_use)
        };
        let peer = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        match (socket_use, verdict.by) {
            // A reply goes back to a peer that reached the instance first, special
            // (a link-local neighbour) or not.
            (SocketAddrUse::UdpSend, Decider::DefaultDeny | Decider::Special(_)) => {
                if let Some(by) = self.replies.allowed_by(peer) {
                    verdict = Verdict { allowed: true, by };
                }
            }
            (SocketAddrUse::UdpReceive, Decider::Rule(rule))
                if verdict.allowed && rule.direction != Direction::Allow =>
            {
                self.replies.remember(peer, verdict.by);
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
        let allowed = self.take_effect(
            policy,
            socket_use.into(),
            Subject::Addr(addr),
            verdict,
            None,
        );
        if own && allowed && matches!(socket_use, SocketAddrUse::TcpListen) {
            self.own.listening(addr);
        }
        allowed
    }

    /// Decides a bind of the socket whose handle is `socket` again on the address it
    /// really got, as [`Enforcer::check_bound`] does, and remembers a self bind's
    /// address as the instance's own.
    pub fn check_bind(
        &self,
        requested: SocketAddr,
        bound: SocketAddr,
        socket_use: SocketAddrUse,
        socket: u32,
    ) -> bool {
        let policy = self.policy.current();
        let allowed = self.check_bound_under(&policy, requested, bound, socket_use);
        if allowed && policy.allows_self() && is_self_bind(requested, socket_use) {
            self.own.bound(bound, socket);
        }
        allowed
    }

    /// Reports whether an unbound socket's connect to `target` would be refused at its
    /// implicit bind (the unspecified address of `target`'s family, port 0) while
    /// denials take effect: no rule allows it (the policy alone decides it).
    pub fn refuses_implicit_bind(&self, target: SocketAddr) -> bool {
        let policy = self.policy.current();
        let unspecified: IpAddr = if target.is_ipv6() {
            Ipv6Addr::UNSPECIFIED.into()
        } else {
            Ipv4Addr::UNSPECIFIED.into()
        };
        policy.mode() == Mode::Enforce
            && !policy
                .decide(SocketAddr::new(unspecified, 0), SocketAddrUse::TcpBind)
                .allowed
    }

    /// The handle of the socket listening on `addr`, if it is one of the instance's
    /// own self-connection listeners (see [`Policy::decide_own`]). The caller checks
    /// that the handle still names a socket listening on `addr`, and if not,
    /// [forgets it](Enforcer::forget_own_listener).
    pub fn own_listener(&self, addr: SocketAddr) -> Option<u32> {
        if !self.policy.current().allows_self() {
            return None;
        }
        self.own.listener(addr)
    }

    /// Forgets the listener on `addr` as one of the instance's own.
    pub fn forget_own_listener(&self, addr: SocketAddr) {
        self.own.forget_listener(addr);
    }

    /// Records that a socket of the instance's own, bound on `local`, is connecting
    /// to one of its own listeners: that listener may accept it, once.
    pub fn expect_own_peer(&self, local: SocketAddr) {
        self.own.expect_peer(local);
    }

    /// Decides a use on a published port by the guest's view, `guest`, recording the
    /// host's address beside it.
    fn check_published(
        &self,
        policy: &Arc<Policy>,
        guest: SocketAddr,
        host: SocketAddr,
        socket_use: SocketAddrUse,
    ) -> bool {
        let verdict = self.decide(policy, guest, guest, socket_use);
        self.take_effect(
            policy,
            socket_use.into(),
            Subject::Addr(guest),
            verdict,
            Some(host),
        )
    }

    /// The policy's verdict on a use of `bound` (asked for as `requested`), with what
    /// this instance's lookups granted.
    fn decide(
        &self,
        policy: &Arc<Policy>,
        requested: SocketAddr,
        bound: SocketAddr,
        socket_use: SocketAddrUse,
    ) -> Verdict {
        self.with_grants(policy, bound, |granted| {
            policy.decide_bound(requested, bound, socket_use, granted)
        })
    }

    /// The policy's verdict on a use of one of the instance's own self-connection
    /// sockets, with what this instance's lookups granted.
    fn decide_own(
        &self,
        policy: &Arc<Policy>,
        addr: SocketAddr,
        socket_use: SocketAddrUse,
    ) -> Verdict {
        self.with_grants(policy, addr, |granted| {
            policy.decide_own(addr, socket_use, granted)
        })
    }

    /// Calls `decide` with the name rules this instance's lookups granted `addr`'s
    /// address to. The grants' lock is taken only when some rule names a host.
    fn with_grants(
        &self,
        policy: &Arc<Policy>,
        addr: SocketAddr,
        decide: impl FnOnce(&[RuleRef]) -> Verdict,
    ) -> Verdict {
        if policy.has_name_rules() {
            self.grants_follow(policy);
            let granted = self.grants.read();
            decide(granted.rules_for(addr.ip().to_canonical()))
        } else {
            decide(&[])
        }
    }

    /// Derives the name grants again if `policy` is not the one they were derived
    /// under: a grant is a rule's index, and a reload renumbers the rules.
    fn grants_follow(&self, policy: &Arc<Policy>) {
        let mut under = self
            .grants_under
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !Arc::ptr_eq(&under, policy) {
            self.grants.rederive(policy);
            *under = Arc::clone(policy);
        }
    }

    /// Makes `verdict` take effect: records it, and answers whether the use goes ahead
    /// (a denial does too, in audit mode, recorded as `would-deny`).
    fn take_effect(
        &self,
        policy: &Policy,
        use_kind: UseKind,
        subject: Subject,
        verdict: Verdict,
        host_addr: Option<SocketAddr>,
    ) -> bool {
        let would_deny = !verdict.allowed && policy.mode() == Mode::Audit;
        if !verdict.allowed || self.audit.is_some() || self.metrics.is_some() {
            self.write(Decision {
                use_kind,
                subject,
                allowed: verdict.allowed || would_deny,
                would_deny,
                by: policy.decided_by(verdict.by),
                host_addr,
            });
        }
        verdict.allowed || would_deny
    }

    /// For a listen on a port published on the host (wasmtime-wasi checks a listen on
    /// the socket's bound address, the host's): the guest's view of `addr`. Binds are
    /// decided on the guest's view before they are made ([`Enforcer::begin_bind`]).
    fn guest_view(
        &self,
        policy: &Policy,
        socket_use: SocketAddrUse,
        addr: SocketAddr,
    ) -> Option<SocketAddr> {
        let SocketAddrUse::TcpListen = socket_use else {
            return None;
        };
        let port = self.guest_port_in(policy, Transport::Tcp, addr.port())?;
        Some(SocketAddr::new(addr.ip(), port))
    }

    /// The guest's port for the host's `host_port`, if the guest's bind published it.
    pub fn guest_port(&self, transport: Transport, host_port: u16) -> Option<u16> {
        self.guest_port_in(&self.policy.current(), transport, host_port)
    }

    fn guest_port_in(&self, policy: &Policy, transport: Transport, host_port: u16) -> Option<u16> {
        if policy.published().is_empty() {
            return None;
        }
        self.ports.guest_port(transport, host_port)
    }

    /// Begins a bind the guest asked for on `guest`: if its port is published, decides
    /// the guest's view and returns the host address to bind instead (`Ok(None)`: not
    /// published, bind as asked; `Err(())`: refused).
    #[expect(clippy::result_unit_err, reason = "refused is all there is to say")]
    pub fn begin_bind(
        &self,
        socket_use: SocketAddrUse,
        guest: SocketAddr,
    ) -> Result<Option<SocketAddr>, ()> {
        let transport = match socket_use {
            SocketAddrUse::TcpBind => Transport::Tcp,
            SocketAddrUse::UdpBind => Transport::Udp,
            _ => return Ok(None),
        };
        let policy = self.policy.current();
        let Some(publish) = policy.publication(transport, guest.port()) else {
            return Ok(None);
        };
        let host = SocketAddr::new(guest.ip(), publish.host_port);
        let verdict = self.decide(&policy, guest, guest, socket_use);
        if !verdict.allowed && policy.mode() != Mode::Audit {
            self.take_effect(
                &policy,
                socket_use.into(),
                Subject::Addr(guest),
                verdict,
                None,
            );
            return Err(());
        }
        self.ports.begin(socket_use, host);
        Ok(Some(host))
    }

    /// Ends a published bind [`Enforcer::begin_bind`] began: `bound` is the host's
    /// address it got (`None`: the bind failed). Records the decision with both
    /// addresses and tells the publish sink.
    pub fn end_bind(
        &self,
        socket_use: SocketAddrUse,
        guest: SocketAddr,
        bound: Option<SocketAddr>,
    ) {
        let transport = match socket_use {
            SocketAddrUse::UdpBind => Transport::Udp,
            _ => Transport::Tcp,
        };
        self.ports
            .end(transport, guest.port(), bound.map(|host| host.port()));
        let Some(host) = bound else {
            return;
        };
        self.check_published(&self.policy.current(), guest, host, socket_use);
        let published = Published {
            transport,
            guest,
            host,
        };
        tracing::info!(instance = %self.instance, %published, "published");
        if let Some(PublishHook(sink)) = &self.on_publish {
            sink(&published);
        }
    }

    /// Decides a lookup of `name` (already normalized: lowercase, punycode).
    pub fn check_lookup(&self, name: &str) -> bool {
        let policy = self.policy.current();
        let verdict = policy.decide_lookup(name);
        tracing::debug!(instance = %self.instance, name, allowed = verdict.allowed, "decided lookup");
        self.take_effect(
            &policy,
            UseKind::Lookup,
            Subject::Name(name.to_owned()),
            verdict,
            None,
        )
    }

    /// Filters the addresses an allowed lookup of `name` returned: those the policy
    /// refuses ([`Policy::decide_answer`]) are dropped and recorded (`lookup-answer`),
    /// before the guest sees any. In audit mode they are kept, recorded `would-deny`.
    pub fn filter_answers(&self, name: &str, addrs: Vec<IpAddr>) -> Vec<IpAddr> {
        let policy = self.policy.current();
        addrs
            .into_iter()
            .filter(|&addr| {
                let verdict = policy.decide_answer(name, addr);
                let subject = Subject::Answer {
                    name: name.to_owned(),
                    addr,
                };
                self.take_effect(&policy, UseKind::LookupAnswer, subject, verdict, None)
            })
            .collect()
    }

    /// Records that an allowed lookup of `name` returned `addrs`, auditing each older
    /// address forgotten to make room ([`MAX_NAME_GRANTS`](super::MAX_NAME_GRANTS)).
    pub fn grant(&self, name: &str, addrs: &[IpAddr]) {
        let policy = self.policy.current();
        self.grants_follow(&policy);
        for evicted in self.grants.record(&policy, name, addrs) {
            self.write(Decision {
                use_kind: UseKind::GrantEvicted,
                subject: Subject::Answer {
                    name: evicted.name,
                    addr: evicted.addr,
                },
                allowed: true,
                would_deny: false,
                by: DecidedBy::MaxNameGrants(super::MAX_NAME_GRANTS),
                host_addr: None,
            });
        }
    }

    /// Records that a connection from `peer` arrived while the instance held its
    /// `max` sockets, and was closed by the host instead of being handed to the guest.
    pub fn refuse_over_cap(&self, peer: SocketAddr, max: usize) {
        self.write(Decision {
            use_kind: UseKind::TcpAccept,
            subject: Subject::Addr(peer),
            allowed: false,
            would_deny: false,
            by: DecidedBy::MaxSockets(max),
            host_addr: None,
        });
    }

    fn write(&self, decision: Decision) {
        if let Some(metrics) = &self.metrics {
            metrics.decided(&decision);
        }
        if let Some(audit) = &self.audit {
            audit.write(&self.instance, &decision);
        }
        if !decision.allowed || decision.would_deny {
            self.denials.record(&decision);
        }
    }
}

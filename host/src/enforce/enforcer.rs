//! Where verdicts are decided and recorded: wasmtime-wasi's socket check and sockbox's
//! resolver ask an [`Enforcer`], which decides, records, and answers yes or no; the
//! WASI layer turns a no into the guest's error (`wasi/errors.rs`). What a decision
//! needs beyond the rules is kept beside it: name grants (`names.rs`), published ports
//! (`ports.rs`), UDP reply peers (`replies.rs`) and self-connection sockets (`own.rs`).
//! (Just over 400 lines: every kind of use, decided and recorded in one type.)

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use super::own::OwnSockets;
use super::ports::{Ports, PublishSink, Published};
use super::replies::ReplyPeers;
use super::{AuditLog, DenialLog, NameGrants};
use crate::policy::{
    DecidedBy, Decider, Decision, Direction, Mode, Policy, RuleRef, SocketAddrUse, Subject,
    Transport, UseKind, Verdict, is_self_bind,
};

/// A policy at work for one guest instance: its name grants, denial log and audit trail.
#[derive(Debug)]
pub struct Enforcer {
    instance: String,
    policy: Arc<Policy>,
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
    /// Whether an unbound socket's implicit bind is refused, for IPv4 and for IPv6
    /// ([`Enforcer::refuses_implicit_bind`]).
    implicit_bind_refused: [bool; 2],
}

struct PublishHook(PublishSink);

impl fmt::Debug for PublishHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublishHook(..)")
    }
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
        let refused = |unspecified: IpAddr| {
            policy.mode() == Mode::Enforce
                && !policy
                    .decide(SocketAddr::new(unspecified, 0), SocketAddrUse::TcpBind)
                    .allowed
        };
        let implicit_bind_refused = [
            refused(Ipv4Addr::UNSPECIFIED.into()),
            refused(Ipv6Addr::UNSPECIFIED.into()),
        ];
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
            implicit_bind_refused,
        }
    }

    /// Hands each port published to `sink` as the guest binds it.
    pub fn with_publish_sink(mut self, sink: PublishSink) -> Self {
        self.on_publish = Some(PublishHook(sink));
        self
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
        if !self.policy.published().is_empty() {
            if self.ports.take_pending(socket_use, addr) {
                return true;
            }
            if let Some(guest) = self.guest_view(socket_use, addr) {
                return self.check_published(guest, addr, socket_use);
            }
        }
        let own = self.policy.allows_self() && self.own.claims(addr, socket_use);
        let mut verdict = if own {
            self.decide_own(addr, socket_use)
        } else {
            self.decide(requested, addr, socket_use)
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
        let allowed = self.take_effect(socket_use.into(), Subject::Addr(addr), verdict, None);
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
        let allowed = self.check_bound(requested, bound, socket_use);
        if allowed && self.policy.allows_self() && is_self_bind(requested, socket_use) {
            self.own.bound(bound, socket);
        }
        allowed
    }

    /// Reports whether an unbound socket's connect to `target` would be refused at its
    /// implicit bind (the unspecified address of `target`'s family, port 0) while
    /// denials take effect: no rule allows it. Decided once, when the enforcer is made
    /// (the policy alone decides it), not at each connect.
    pub fn refuses_implicit_bind(&self, target: SocketAddr) -> bool {
        self.implicit_bind_refused[usize::from(target.is_ipv6())]
    }

    /// The handle of the socket listening on `addr`, if it is one of the instance's
    /// own self-connection listeners (see [`Policy::decide_own`]). The caller checks
    /// that the handle still names a socket listening on `addr`, and if not,
    /// [forgets it](Enforcer::forget_own_listener).
    pub fn own_listener(&self, addr: SocketAddr) -> Option<u32> {
        if !self.policy.allows_self() {
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
        guest: SocketAddr,
        host: SocketAddr,
        socket_use: SocketAddrUse,
    ) -> bool {
        let verdict = self.decide(guest, guest, socket_use);
        self.take_effect(socket_use.into(), Subject::Addr(guest), verdict, Some(host))
    }

    /// The policy's verdict on a use of `bound` (asked for as `requested`), with what
    /// this instance's lookups granted.
    fn decide(
        &self,
        requested: SocketAddr,
        bound: SocketAddr,
        socket_use: SocketAddrUse,
    ) -> Verdict {
        self.with_grants(bound, |granted| {
            self.policy
                .decide_bound(requested, bound, socket_use, granted)
        })
    }

    /// The policy's verdict on a use of one of the instance's own self-connection
    /// sockets, with what this instance's lookups granted.
    fn decide_own(&self, addr: SocketAddr, socket_use: SocketAddrUse) -> Verdict {
        self.with_grants(addr, |granted| {
            self.policy.decide_own(addr, socket_use, granted)
        })
    }

    /// Calls `decide` with the name rules this instance's lookups granted `addr`'s
    /// address to. The grants' lock is taken only when some rule names a host.
    fn with_grants(&self, addr: SocketAddr, decide: impl FnOnce(&[RuleRef]) -> Verdict) -> Verdict {
        if self.policy.has_name_rules() {
            let granted = self.grants.read();
            decide(granted.rules_for(addr.ip().to_canonical()))
        } else {
            decide(&[])
        }
    }

    /// Makes `verdict` take effect: records it, and answers whether the use goes ahead
    /// (a denial does too, in audit mode, recorded as `would-deny`).
    fn take_effect(
        &self,
        use_kind: UseKind,
        subject: Subject,
        verdict: Verdict,
        host_addr: Option<SocketAddr>,
    ) -> bool {
        let would_deny = !verdict.allowed && self.policy.mode() == Mode::Audit;
        if !verdict.allowed || self.audit.is_some() {
            self.write(Decision {
                use_kind,
                subject,
                allowed: verdict.allowed || would_deny,
                would_deny,
                by: self.policy.decided_by(verdict.by),
                host_addr,
            });
        }
        verdict.allowed || would_deny
    }

    /// For a listen on a port published on the host (wasmtime-wasi checks a listen on
    /// the socket's bound address, the host's): the guest's view of `addr`. Binds are
    /// decided on the guest's view before they are made ([`Enforcer::begin_bind`]).
    fn guest_view(&self, socket_use: SocketAddrUse, addr: SocketAddr) -> Option<SocketAddr> {
        let SocketAddrUse::TcpListen = socket_use else {
            return None;
        };
        let port = self.guest_port(Transport::Tcp, addr.port())?;
        Some(SocketAddr::new(addr.ip(), port))
    }

    /// The guest's port for the host's `host_port`, if the guest's bind published it.
    pub fn guest_port(&self, transport: Transport, host_port: u16) -> Option<u16> {
        if self.policy.published().is_empty() {
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
        let Some(publish) = self.policy.publication(transport, guest.port()) else {
            return Ok(None);
        };
        let host = SocketAddr::new(guest.ip(), publish.host_port);
        let verdict = self.decide(guest, guest, socket_use);
        if !verdict.allowed && self.policy.mode() != Mode::Audit {
            self.take_effect(socket_use.into(), Subject::Addr(guest), verdict, None);
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
        self.check_published(guest, host, socket_use);
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
        let verdict = self.policy.decide_lookup(name);
        tracing::debug!(instance = %self.instance, name, allowed = verdict.allowed, "decided lookup");
        self.take_effect(
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
        addrs
            .into_iter()
            .filter(|&addr| {
                let verdict = self.policy.decide_answer(name, addr);
                let subject = Subject::Answer {
                    name: name.to_owned(),
                    addr,
                };
                self.take_effect(UseKind::LookupAnswer, subject, verdict, None)
            })
            .collect()
    }

    /// Records that an allowed lookup of `name` returned `addrs`, auditing each older
    /// address forgotten to make room ([`MAX_NAME_GRANTS`](super::MAX_NAME_GRANTS)).
    pub fn grant(&self, name: &str, addrs: &[IpAddr]) {
        for evicted in self.grants.record(&self.policy, name, addrs) {
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
        if let Some(audit) = &self.audit {
            audit.write(&self.instance, &decision);
        }
        if !decision.allowed || decision.would_deny {
            self.denials.record(&decision);
        }
    }
}

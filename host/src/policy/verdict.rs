//! A policy's answers: which [`Direction`] a rule grants, which rule ([`RuleRef`]) or
//! default ([`Decider`]) decided a use, and the [`Verdict`].

use super::Special;

/// Which way a rule grants (or, for `Deny`, refuses) network use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Outbound: TCP connect, UDP send.
    Allow,
    /// Inbound: bind and listen, UDP bind for receiving.
    Listen,
    /// Which peers a listener may accept.
    Accept,
    /// Refused, whatever else allows it.
    Deny,
}

impl Direction {
    /// Every direction, in the order rules are listed.
    pub const ALL: [Self; 4] = [Self::Allow, Self::Listen, Self::Accept, Self::Deny];

    /// Returns the policy file key for this direction: `allow`, `listen`, `accept`, `deny`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Listen => "listen",
            Self::Accept => "accept",
            Self::Deny => "deny",
        }
    }

    /// Returns the `sockbox run` flag for this direction: `--allow`, `--allow-listen`, …
    pub fn flag(self) -> &'static str {
        match self {
            Self::Allow => "--allow",
            Self::Listen => "--allow-listen",
            Self::Accept => "--allow-accept",
            Self::Deny => "--deny",
        }
    }

    pub(super) fn slot(self) -> usize {
        self as usize
    }
}

/// A rule of a policy: its direction and its position among that direction's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleRef {
    /// The direction the rule was given for.
    pub direction: Direction,
    /// Its index among that direction's rules, in the order they were added.
    pub index: usize,
}

/// What decided a use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decider {
    /// This rule.
    Rule(RuleRef),
    /// The policy inherits the host's network: everything not denied is allowed.
    InheritNetwork,
    /// No rule allows it.
    DefaultDeny,
    /// The special-address preset: the target is special and no rule names it.
    Special(Special),
    /// A self connection: the instance binding a loopback address on port 0, or
    /// listening on, connecting to or accepting from such a socket of its own, where no
    /// rule allows it ([`Policy::decide_own`](super::Policy::decide_own)).
    SelfConnection,
}

/// Whether a policy's denials take effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// A denied use is refused (`access-denied`).
    #[default]
    Enforce,
    /// Audit only: every use is decided and recorded as in `Enforce`, but a would-be
    /// denial goes ahead, recorded as `would-deny`. For trying a policy on a live
    /// workload before enforcing it.
    Audit,
}

impl Mode {
    /// The policy file's word for it: `enforce` or `audit`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Audit => "audit",
        }
    }
}

/// A policy's answer for one use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verdict {
    /// Whether the use may happen.
    pub allowed: bool,
    /// What decided it.
    pub by: Decider,
}

impl Verdict {
    pub(super) fn allow(by: Decider) -> Self {
        Self { allowed: true, by }
    }

    pub(super) fn deny(by: Decider) -> Self {
        Self { allowed: false, by }
    }
}

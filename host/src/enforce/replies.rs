//! The UDP peers a server may reply to: a datagram received under a `listen` or
//! `accept` rule lets the instance send back to its sender, decided by the same rule.
//! Bounded ([`MAX_REPLY_PEERS`]): past it, one peer is forgotten for each new one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::RwLock;

use crate::policy::Decider;

/// How many UDP peers an instance remembers it may reply to; past that, one is forgotten
/// for each new one.
const MAX_REPLY_PEERS: usize = 4096;

/// One instance's reply peers, each with what allowed its datagram in.
#[derive(Debug, Default)]
pub(super) struct ReplyPeers(RwLock<HashMap<SocketAddr, Decider>>);

impl ReplyPeers {
    /// What allowed a datagram in from `peer`, if one came (and is remembered).
    pub(super) fn allowed_by(&self, peer: SocketAddr) -> Option<Decider> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&peer)
            .copied()
    }

    /// Remembers that `by` allowed a datagram in from `peer`.
    pub(super) fn remember(&self, peer: SocketAddr, by: Decider) {
        if self.allowed_by(peer).is_some() {
            return;
        }
        let mut replies = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if replies.len() >= MAX_REPLY_PEERS
            && let Some(&forgotten) = replies.keys().next()
        {
            replies.remove(&forgotten);
        }
        replies.insert(peer, by);
    }
}

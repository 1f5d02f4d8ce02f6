//! A policy at work for one instance: the state a decision needs beyond the rules
//! (the addresses name lookups granted, the UDP peers a server may reply to) and where
//! decisions are recorded (a bounded denial log handed to the embedder's sink, an
//! audit trail). [`crate::policy`] decides; this module remembers and reports —
//! through sinks the embedder chooses and `tracing`, never by printing.

mod audit;
mod enforcer;
mod names;
mod own;
mod ports;
mod reload;
mod replies;
#[cfg(test)]
mod tests;

pub use audit::{AuditLog, DenialLog, DenialSink, MAX_DENIALS};
pub use enforcer::Enforcer;
#[cfg(test)]
pub(crate) use names::covering;
pub use names::{Evicted, Grants, MAX_NAME_GRANTS, NameGrants};
pub use own::MAX_OWN;
pub use ports::{PublishSink, Published};
pub use reload::{PolicyHandle, ReloadRefused};

use std::time::Duration;

use wasi::clocks::monotonic_clock::{self, Instant};

/// A point on the monotonic clock after which blocking operations fail with
/// `i/o timeout`, as Go's `SetDeadline` takes one.
///
/// A timed-out operation leaves its connection usable: set a later deadline (or none)
/// and go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    /// Returns the deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        Self(monotonic_clock::now().saturating_add(nanos))
    }

    pub(crate) fn instant(self) -> Instant {
        self.0
    }
}

/// The instant of an optional deadline, as the raw helpers take it.
pub(crate) fn instant(deadline: Option<Deadline>) -> Option<Instant> {
    deadline.map(Deadline::instant)
}

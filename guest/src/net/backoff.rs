//! Backing off from temporary failures, as Go's accept loops do.

use std::time::Duration;

use wasi::clocks::monotonic_clock;
use wasi::io::poll::Pollable;

/// The first wait after a temporary failure.
const FIRST: Duration = Duration::from_millis(5);
/// The longest wait, however many failures in a row.
const MAX: Duration = Duration::from_secs(1);

/// How long to wait before trying again after a temporary failure (see
/// [`Error::is_temporary`](super::Error::is_temporary)): 5 ms, doubling with each
/// failure in a row, at most 1 s; a success starts it over.
#[derive(Debug, Default)]
pub struct Backoff {
    delay: Option<Duration>,
}

impl Backoff {
    /// Returns a backoff that has seen no failure.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one more failure and returns how long to wait before trying again.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.delay.map_or(FIRST, |delay| (delay * 2).min(MAX));
        self.delay = Some(delay);
        delay
    }

    /// Forgets the failures so far, after a success.
    pub fn reset(&mut self) {
        self.delay = None;
    }

    /// Counts one more failure and returns a pollable that is ready when it is time to
    /// try again, for event loops that wait on other things meanwhile.
    pub fn timer(&mut self) -> (Pollable, Duration) {
        let delay = self.next_delay();
        (timer(delay), delay)
    }

    /// Blocks for `delay`.
    pub fn sleep(delay: Duration) {
        timer(delay).block();
    }
}

/// A pollable ready once `delay` has passed.
fn timer(delay: Duration) -> Pollable {
    let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
    monotonic_clock::subscribe_duration(nanos)
}

//! The CPU-time limit: the CPU time of the thread running an instance, host calls
//! included, counted over every poll of the instance's work.
//!
//! An instance's work is a future; whichever thread polls it runs the guest's wasm and
//! every host call the guest makes in that poll. [`Metered`] reads that thread's CPU
//! clock (`CLOCK_THREAD_CPUTIME_ID`) before and after each poll and adds the difference
//! to the instance's [`CpuClock`], so time the thread spends on other tasks between
//! polls, and time the guest spends blocked, are not counted, and a busy host neither
//! charges the guest for its own work nor stops it early.
//!
//! The clock is checked at every epoch tick while the guest runs wasm (the deadline
//! callback adds the poll's time so far) and at the end of every poll, which comes at
//! the latest one tick after a host call returns (the callback yields every tick). A
//! host call cannot be stopped halfway, so an instance stops at most one tick plus its
//! longest host call past its limit.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use super::limits::{Limit, LimitExceeded};

/// The CPU time the calling thread has used so far, in nanoseconds.
fn thread_cpu_nanos() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// One instance's CPU time and its limit, shared by its store (the epoch callback)
/// and the future running its work.
pub(crate) struct CpuClock {
    limit: Duration,
    /// Nanoseconds used in the polls that have ended.
    used: AtomicU64,
    /// The polling thread's CPU clock when the current poll began; 0 between polls.
    poll_began: AtomicU64,
}

impl CpuClock {
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
            poll_began: AtomicU64::new(0),
        }
    }

    /// The CPU time used so far, the current poll's included (when called from inside
    /// it, on its thread).
    pub(crate) fn used(&self) -> Duration {
        let mut nanos = self.used.load(Ordering::Relaxed);
        let began = self.poll_began.load(Ordering::Relaxed);
        if began != 0 {
            nanos = nanos.saturating_add(thread_cpu_nanos().saturating_sub(began));
        }
        Duration::from_nanos(nanos)
    }

    /// Fails with the CPU-time limit once the instance has used more than it allows.
    pub(crate) fn check(&self) -> wasmtime::Result<()> {
        if self.used() > self.limit {
            return Err(LimitExceeded(Limit::CpuTime(self.limit)).into());
        }
        Ok(())
    }
}

impl fmt::Debug for CpuClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpuClock")
            .field("limit", &self.limit)
            .field(
                "used",
                &Duration::from_nanos(self.used.load(Ordering::Relaxed)),
            )
            .finish_non_exhaustive()
    }
}

/// An instance's work, charged to its [`CpuClock`] poll by poll; it fails with the
/// CPU-time limit at the end of a poll that leaves the clock past it.
pub(crate) struct Metered<'a, F> {
    clock: &'a CpuClock,
    work: Pin<Box<F>>,
}

impl<'a, F> Metered<'a, F> {
    pub(crate) fn new(clock: &'a CpuClock, work: F) -> Self {
        Self {
            clock,
            work: Box::pin(work),
        }
    }
}

impl<T, F: Future<Output = wasmtime::Result<T>>> Future for Metered<'_, F> {
    type Output = wasmtime::Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let clock = self.clock;
        let began = thread_cpu_nanos().max(1);
        clock.poll_began.store(began, Ordering::Relaxed);
        let polled = self.work.as_mut().poll(cx);
        let spent = thread_cpu_nanos().saturating_sub(began);
        clock.poll_began.store(0, Ordering::Relaxed);
        clock.used.fetch_add(spent, Ordering::Relaxed);
        match polled {
            Poll::Pending => match clock.check() {
                Ok(()) => Poll::Pending,
                Err(err) => Poll::Ready(Err(err)),
            },
            ready => ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work that burns CPU inside one poll is charged with it, and the poll that
    /// leaves the clock past its limit ends the work with the CPU-time limit.
    #[test]
    fn a_poll_is_charged_its_thread_time() {
        let clock = CpuClock::new(Duration::from_millis(20));
        let burn = std::future::poll_fn(|cx| {
            let began = std::time::Instant::now();
            while began.elapsed() < Duration::from_millis(30) {
                std::hint::black_box(thread_cpu_nanos());
            }
            cx.waker().wake_by_ref();
            Poll::<wasmtime::Result<()>>::Pending
        });
        let result = block_on(Metered::new(&clock, burn));
        let err = result.expect_err("the limit stops the work");
        assert_eq!(
            err.downcast_ref::<LimitExceeded>(),
            Some(&LimitExceeded(Limit::CpuTime(Duration::from_millis(20))))
        );
        assert!(clock.used() >= Duration::from_millis(20), "{clock:?}");
    }

    /// Time between polls — the thread on other work, the guest blocked — is not the
    /// instance's.
    #[test]
    fn time_between_polls_is_free() {
        let clock = CpuClock::new(Duration::from_secs(1));
        let mut polls = 0;
        let idle = std::future::poll_fn(|cx| {
            polls += 1;
            if polls == 3 {
                return Poll::Ready(Ok::<_, wasmtime::Error>(()));
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        });
        let mut work = std::pin::pin!(Metered::new(&clock, idle));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while work.as_mut().poll(&mut cx).is_pending() {
            // The thread busy with something else between two polls.
            let began = thread_cpu_nanos();
            while thread_cpu_nanos() - began < 30_000_000 {}
        }
        assert!(clock.used() < Duration::from_millis(20), "{clock:?}");
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
    }
}

//! sockbox's own `wasi:io/poll` for WASI 0.2 (`host/src/wasi/poll.rs`), which skips
//! a watched pollable until its waker fires: every way a guest can leave that
//! registration stale still gets its readiness reported.

use anyhow::Result;
use sockbox_host::Policy;

use crate::common::{HARNESS, TIMEOUT};

/// Each scenario of `tests/guests/p2-poll`: a read that found nothing, `ready` on the
/// pollable, two pollables on one stream, an accept that found nothing, a shutdown, a
/// peer's close, a write finished in the background, and one busy connection among
/// 200 idle ones (100 rounds, only the busy one reported each time).
#[test]
pub(crate) fn every_edge_of_the_poll_reports_readiness() -> Result<()> {
    let component = HARNESS.component(include_bytes!(env!("P2_POLL_WASM")))?;
    let run = HARNESS
        .start(
            &component,
            Policy::inherit_network(),
            std::iter::empty::<&str>(),
        )?
        .wait(TIMEOUT)?;
    run.assert_success();
    let passed: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        passed,
        [
            "ok read-that-finds-nothing",
            "ok ready-on-the-pollable",
            "ok two-pollables-one-stream",
            "ok accept-that-finds-nothing",
            "ok shutdown-makes-ready",
            "ok peer-close-makes-ready",
            "ok write-then-room",
            "ok busy-among-idle",
        ],
        "{run}"
    );
    Ok(())
}

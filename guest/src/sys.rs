//! Raw helpers over the `wasi:sockets` and `wasi:io` bindings: the seed's `syscall`.
//!
//! Everything here is a thin, blocking shape over a non-blocking WASI call: try the
//! call, and while it answers `would-block`, wait on the socket's pollable.

use wasi::clocks::monotonic_clock::{self, Instant};
use wasi::io::poll::{self, Pollable};
use wasi::sockets::instance_network::instance_network;
use wasi::sockets::network::{ErrorCode, Network};

/// Returns the network this instance was granted.
pub(crate) fn network() -> Network {
    instance_network()
}

/// Repeats `attempt` until it stops answering `would-block`, waiting on `ready` between
/// tries; answers `timeout` once `deadline` passes.
pub(crate) fn retry<T>(
    ready: &Pollable,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Result<T, ErrorCode>,
) -> Result<T, ErrorCode> {
    loop {
        match attempt() {
            Err(ErrorCode::WouldBlock) if !wait(ready, deadline) => {
                return Err(ErrorCode::Timeout);
            }
            Err(ErrorCode::WouldBlock) => {}
            done => return done,
        }
    }
}

/// Waits until `ready` is ready or `deadline` passes; returns `false` if it passed first.
pub(crate) fn wait(ready: &Pollable, deadline: Option<Instant>) -> bool {
    let Some(deadline) = deadline else {
        ready.block();
        return true;
    };
    let timer = monotonic_clock::subscribe_instant(deadline);
    // `poll` lists the indexes of the pollables that are ready.
    poll::poll(&[ready, &timer]).contains(&0) || ready.ready()
}

crate::wasi_address_conversions!(pub(crate) wasi::sockets::network);

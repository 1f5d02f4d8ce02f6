//! The guest's output lines, written straight to `wasi:cli`'s stdout and stderr.

use std::io;
use std::net::SocketAddr;

use wasi::cli::{stderr, stdout};
use wasi::io::poll::Pollable;
use wasi::io::streams::OutputStream;

use crate::net::{self, Backoff};

/// Prints `bytes` on stdout and waits until they are out.
pub(crate) fn out(bytes: &[u8]) -> io::Result<()> {
    print_to(&stdout::get_stdout(), bytes)
}

/// Prints one line on stderr; a failure to do so has nowhere to be reported.
pub(crate) fn err_line(line: &str) {
    let _ = print_to(&stderr::get_stderr(), format!("{line}\n").as_bytes());
}

/// Reports a temporary failure as `Error: …; retrying in 5ms` and returns the timer
/// a server's loop rests on before it tries again (`backoff` says how long).
pub(crate) fn rest_after(err: &net::Error, backoff: &mut Backoff) -> Pollable {
    let (timer, delay) = backoff.timer();
    err_line(&format!("Error: {err}; retrying in {delay:?}"));
    timer
}

/// Prints the contract line `listening on ADDR`, before the first accept.
pub(crate) fn announce(addr: SocketAddr) -> io::Result<()> {
    out(format!("listening on {addr}\n").as_bytes())
}

/// Writes `bytes` to a `wasi:cli` stream and waits until they are out.
fn print_to(stream: &OutputStream, bytes: &[u8]) -> io::Result<()> {
    // `blocking-write-and-flush` takes at most 4096 bytes a call.
    for chunk in bytes.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|err| io::Error::other(format!("write output: {err:?}")))?;
    }
    Ok(())
}

//! Where a guest's stdout and stderr go: the host's own, nowhere, a [`Capture`], or
//! the [`Lines`] of a run of several instances.

mod lines;

pub use lines::Lines;

use std::io::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Where one of a guest's output streams goes.
#[derive(Debug, Clone, Default)]
pub enum Stdio {
    /// The host process's own stream. Its writes are blocking: into a full pipe that
    /// nobody reads, they block the thread running the instance, and with it a
    /// current-thread runtime's timers (`sockbox run` holds `--timeout` with a
    /// watchdog thread); capture instead where that matters.
    Inherit,
    /// Discarded.
    #[default]
    Null,
    /// Kept in memory, readable while the guest runs.
    Capture(Capture),
    /// Whole lines to the host's own stream, shared by the instances of one run
    /// ([`Lines`]).
    Lines(Lines),
}

impl Stdio {
    /// Returns a new, empty capture.
    pub fn capture() -> Self {
        Self::Capture(Capture::new())
    }

    /// Returns what was captured so far; empty unless this is a capture.
    pub fn text(&self) -> String {
        match self {
            Self::Capture(capture) => capture.text(),
            Self::Inherit | Self::Null | Self::Lines(_) => String::new(),
        }
    }
}

/// A guest output stream kept in memory; clones share it.
///
/// Readers can wait for a line to appear while the guest is still running, and
/// [`Capture::tee`] additionally copies each complete line to the host's stdout
/// behind a prefix.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    grew: Condvar,
    tee: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    bytes: Vec<u8>,
    /// Where the first line not yet copied to the host's stdout starts.
    teed: usize,
    closed: bool,
}

impl Capture {
    /// Returns an empty capture.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns a capture that also prints each complete line to stdout as `{prefix}{line}`.
    pub fn tee(prefix: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                tee: Some(prefix.into()),
                ..Inner::default()
            }),
        }
    }

    /// Returns a new, empty capture that tees as this one does.
    pub fn fresh(&self) -> Self {
        Self {
            inner: Arc::new(Inner {
                tee: self.inner.tee.clone(),
                ..Inner::default()
            }),
        }
    }

    /// Returns everything written so far.
    pub fn bytes(&self) -> Vec<u8> {
        self.state().bytes.clone()
    }

    /// Returns everything written so far as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.state().bytes).into_owned()
    }

    /// Reports whether the guest's stream is finished (the guest has exited).
    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Waits until a line starting with `prefix` is complete, the stream is closed, or
    /// `timeout` passes; returns the rest of that line.
    pub fn wait_for_line(&self, prefix: &str, timeout: Duration) -> Option<String> {
        self.wait_for(timeout, |out| {
            let text = String::from_utf8_lossy(out);
            let complete = text.rfind('\n').map_or("", |end| &text[..end]);
            complete
                .lines()
                .find_map(|line| line.strip_prefix(prefix))
                .map(str::to_owned)
        })
    }

    /// Waits until `find` returns something for the output so far, the stream is closed,
    /// or `timeout` passes; returns what `find` found, if anything.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut find: impl FnMut(&[u8]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            if let Some(found) = find(&state.bytes) {
                return Some(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if state.closed || left.is_zero() {
                return None;
            }
            state = self
                .inner
                .grew
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Marks the stream finished: waiters stop waiting, and a last partial line is teed.
    pub(crate) fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        if state.teed < state.bytes.len() {
            state.bytes.push(b'\n');
            self.tee_lines(&mut state);
            state.bytes.pop();
        }
        drop(state);
        self.inner.grew.notify_all();
    }

    fn append(&self, buf: &[u8]) {
        let mut state = self.state();
        state.bytes.extend_from_slice(buf);
        self.tee_lines(&mut state);
        drop(state);
        self.inner.grew.notify_all();
    }

    fn tee_lines(&self, state: &mut State) {
        let Some(prefix) = &self.inner.tee else {
            return;
        };
        let Some(end) = state.bytes.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        if end < state.teed {
            return;
        }
        let mut out = std::io::stdout().lock();
        for line in state.bytes[state.teed..end].split(|b| *b == b'\n') {
            // The host's stdout going away must not take the guest down with it.
            let _ = out
                .write_all(prefix.as_bytes())
                .and_then(|()| out.write_all(line))
                .and_then(|()| out.write_all(b"\n"));
        }
        let _ = out.flush();
        state.teed = end + 1;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

//! The echo servers, async: a task per TCP connection, and a UDP loop that answers
//! each datagram as it comes.
//!
//! In [`Mode::Forward`] a connection's receive stream is handed back to the host as
//! its send stream: the host moves the bytes and the guest never sees them (the WASI
//! 0.3 counterpart of the 0.2 build's splice). [`Mode::Copy`] reads them into the
//! guest and writes them back, for handlers that must see the bytes.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use sockbox_guest::net::{Backoff, Error};
use wasip3::wit_bindgen::yield_async;

use crate::net::{self, Conn, Listener, PacketConn};
use crate::stdio::err_line;

/// The most a copy step reads.
const CHUNK: usize = 64 * 1024;

/// How the bytes get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The host forwards the receive stream to the send stream.
    Forward,
    /// The guest reads the bytes and writes them back.
    Copy,
}

/// How many connection tasks have finished, and the server task to wake when one does.
#[derive(Default)]
struct Finished {
    count: Cell<u64>,
    waiting: RefCell<Option<Waker>>,
}

impl Finished {
    fn one_more(&self) {
        self.count.set(self.count.get() + 1);
        if let Some(waker) = self.waiting.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Waits until `count` tasks have finished.
    async fn reach(&self, count: u64) {
        poll_fn(|cx| {
            if self.count.get() >= count {
                return Poll::Ready(());
            }
            *self.waiting.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

/// Echoes connections on `listener`, each in its own task, until `count` of them have
/// finished (or forever), and returns how many did. A connection's own failure is
/// reported on stderr and counts as finished; only the listener failing ends the loop.
pub(crate) async fn serve(
    mut listener: Listener,
    count: Option<u64>,
    mode: Mode,
) -> Result<u64, Error> {
    let finished = Rc::new(Finished::default());
    let mut accepted = 0u64;
    let mut backoff = Backoff::new();
    while count.is_none_or(|count| accepted < count) {
        let conn = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) if err.is_temporary() => {
                let delay = backoff.next_delay();
                err_line(&format!("Error: {err}; retrying in {delay:?}")).await;
                net::sleep(delay).await;
                continue;
            }
            Err(err) => return Err(err),
        };
        backoff.reset();
        accepted += 1;
        let finished = Rc::clone(&finished);
        wasip3::spawn(async move {
            if let Err(err) = echo(conn, mode).await {
                err_line(&format!("Error: {err}")).await;
            }
            finished.one_more();
        });
        // A task spawned from this one is first polled when the executor next runs;
        // yielding once makes that now, not at some unrelated later event.
        yield_async().await;
    }
    finished.reach(accepted).await;
    Ok(accepted)
}

/// Sends back every byte `conn`'s peer sends until it closes its side, then closes.
async fn echo(mut conn: Conn, mode: Mode) -> Result<(), Error> {
    if mode == Mode::Forward {
        return conn.forward_echo().await;
    }
    let mut buf = Vec::with_capacity(CHUNK);
    loop {
        buf = conn.read(buf, CHUNK).await?;
        if buf.is_empty() {
            return conn.close_write().await;
        }
        buf = conn.write(buf).await?;
    }
}

/// Sends every datagram on `conn` back to its sender until `count` have been answered
/// (or forever). One datagram's failure to go out is reported and counts as answered;
/// a peer refusing an earlier reply is reported and the server goes on.
pub(crate) async fn serve_udp(conn: &PacketConn, count: Option<u64>) -> Result<u64, Error> {
    let mut answered = 0u64;
    let mut backoff = Backoff::new();
    while count.is_none_or(|count| answered < count) {
        let (datagram, peer) = match conn.recv_from().await {
            Ok(received) => {
                backoff.reset();
                received
            }
            Err(err) if err.is_temporary() => {
                let delay = backoff.next_delay();
                err_line(&format!("Error: {err}; retrying in {delay:?}")).await;
                net::sleep(delay).await;
                continue;
            }
            Err(err) if err.is_peer_failure() => {
                err_line(&format!("Error: {err}")).await;
                continue;
            }
            Err(err) => return Err(err),
        };
        if let Err(err) = conn.send_to(datagram, Some(peer)).await {
            err_line(&format!("Error: {err}")).await;
        }
        answered += 1;
    }
    Ok(answered)
}

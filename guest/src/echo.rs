//! The echo server: one event loop over `wasi:io/poll` serves every connection at
//! once, the way Go's netpoller serves a goroutine per connection.
//!
//! Each turn polls the listener (while more connections are wanted) and, for each
//! connection, the one pollable it waits on: input to echo, or room to send it. A
//! connection that stops reading waits for room on its own; the others go on.
//!
//! In [`Mode::Splice`] the host moves each connection's bytes from its input stream to
//! its output stream (`wasi:io/streams` `splice`), as Go's `io.Copy` uses splice(2):
//! they never enter guest memory. [`Mode::Copy`] reads them into the guest and writes
//! them back, for handlers that must see the bytes.

use wasi::io::poll::{Pollable, poll};

use crate::net::{self, Backoff, Conn, Listener, Spliced};
use crate::stdio;

/// The most bytes read, or spliced, in one step.
const CHUNK: usize = 64 * 1024;

/// The least a step asks for. wasmtime-wasi zeroes a buffer of the size asked for on
/// every read, so asking 64 KiB for a 64-byte message costs more than the message:
/// each connection asks for what its last steps got, between these bounds.
const MIN_CHUNK: usize = 4 * 1024;

/// Steps one connection may take per turn before the others get theirs.
const STEPS_PER_TURN: usize = 16;

/// How the bytes get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The host splices input to output; the guest never sees the bytes.
    Splice,
    /// The guest reads the bytes and writes them back.
    Copy,
}

/// What a connection waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Bytes (or end of file) from the peer.
    Input,
    /// Room to send what it has.
    Room,
    /// Its last bytes to be sent, before it shuts down its sending side.
    Closing,
}

/// One connection being echoed.
struct Client {
    conn: Conn,
    wait: Wait,
    /// Copy mode: bytes read and not yet written back, from `sent` on.
    pending: Vec<u8>,
    sent: usize,
    /// Whether the current turn has sent anything yet.
    moved: bool,
    /// How much the next step asks for: doubled when a step gets all it asked for,
    /// halved when it gets less than a quarter.
    chunk: usize,
}

/// What a step left a connection as.
enum Turn {
    /// Waiting again: poll for [`Client::pollable`].
    Waiting,
    /// Echoed and shut down: drop it.
    Finished,
}

impl Client {
    fn new(conn: Conn) -> Self {
        Self {
            conn,
            wait: Wait::Input,
            pending: Vec::new(),
            sent: 0,
            moved: false,
            chunk: MIN_CHUNK,
        }
    }

    /// The pollable that says when to step this connection again.
    fn pollable(&self) -> &Pollable {
        match self.wait {
            Wait::Input => self.conn.readable(),
            Wait::Room | Wait::Closing => self.conn.writable(),
        }
    }

    /// Moves the connection on as far as it can go without waiting.
    fn step(&mut self, mode: Mode, buf: &mut [u8]) -> Result<Turn, net::Error> {
        self.moved = false;
        for _ in 0..STEPS_PER_TURN {
            if self.wait == Wait::Closing {
                return Ok(if self.conn.try_close_write()? {
                    Turn::Finished
                } else {
                    Turn::Waiting
                });
            }
            let progressed = match mode {
                Mode::Splice => self.splice()?,
                Mode::Copy => self.copy(buf)?,
            };
            if !progressed {
                return Ok(Turn::Waiting);
            }
        }
        // Its turn is over; what it waits on is ready at once if it has more to do.
        self.wait = if self.sent < self.pending.len() {
            Wait::Room
        } else {
            Wait::Input
        };
        Ok(Turn::Waiting)
    }

    /// One splice; reports whether it moved on.
    fn splice(&mut self) -> Result<bool, net::Error> {
        match self.conn.try_splice_echo(self.chunk as u64)? {
            Spliced::Moved(n) => {
                self.moved = true;
                if self.adapt(usize::try_from(n).unwrap_or(CHUNK)) {
                    self.wait = Wait::Input;
                    return Ok(false);
                }
                Ok(true)
            }
            Spliced::NeedInput => {
                self.wait = Wait::Input;
                Ok(false)
            }
            Spliced::NeedRoom => {
                self.wait = self.after_no_room();
                Ok(false)
            }
            Spliced::Done => {
                self.close()?;
                Ok(true)
            }
        }
    }

    /// One write of what is pending, or one read; reports whether it moved on.
    fn copy(&mut self, buf: &mut [u8]) -> Result<bool, net::Error> {
        if self.sent < self.pending.len() {
            let n = self.conn.try_write(&self.pending[self.sent..])?;
            if n == 0 {
                self.wait = Wait::Room;
                return Ok(false);
            }
            self.sent += n;
            self.moved = true;
            return Ok(true);
        }
        match self.conn.try_read(&mut buf[..self.chunk])? {
            None => {
                self.wait = Wait::Input;
                Ok(false)
            }
            Some(0) => {
                self.close()?;
                Ok(true)
            }
            Some(n) => {
                let drained = self.adapt(n);
                // Write straight from the read buffer; keep only what did not fit.
                let written = self.conn.try_write(&buf[..n])?;
                self.moved = written > 0;
                self.pending.clear();
                self.pending.extend_from_slice(&buf[written..n]);
                self.sent = 0;
                if drained && self.pending.is_empty() {
                    self.wait = Wait::Input;
                    return Ok(false);
                }
                Ok(true)
            }
        }
    }

    /// Sizes the next request after one that got `got` bytes, and says whether that
    /// emptied the connection's input: it got less than it asked for. Then the
    /// connection waits for input instead of reading again at once, which would only
    /// find nothing — a read syscall and a host call per message saved, and the
    /// connection's next message has usually arrived by the next poll (1,000
    /// connections: 74,000–77,000 round trips/s became 90,000–94,000).
    fn adapt(&mut self, got: usize) -> bool {
        let asked = self.chunk;
        if got >= asked {
            self.chunk = (asked * 2).min(CHUNK);
        } else if got < asked / 4 {
            self.chunk = (asked / 2).max(MIN_CHUNK);
        }
        got < asked
    }

    /// What to wait for when the host has no room to send. Right after this turn sent
    /// something, no room means the host is still sending it (wasmtime-wasi finishes a
    /// write the socket did not take at once on a background task, and grants no room
    /// until it is done): wait for the peer's next bytes instead, by which time it
    /// usually is — one poll per message, not two. Woken by input and still without
    /// room, wait for room.
    fn after_no_room(&self) -> Wait {
        if self.moved { Wait::Input } else { Wait::Room }
    }

    /// The peer is done sending: send what is left, then shut down.
    fn close(&mut self) -> Result<(), net::Error> {
        self.wait = Wait::Closing;
        self.conn.start_flush()
    }
}

/// Echoes connections on `listener`, all at once, until `count` of them have finished
/// (or forever), and returns how many did. A connection's own failure is reported on
/// stderr and counts as finished; only the listener failing ends the loop.
pub(crate) fn serve(
    listener: &Listener,
    count: Option<u64>,
    mode: Mode,
) -> Result<u64, net::Error> {
    let mut clients: Vec<Client> = Vec::new();
    let mut buf = vec![0; CHUNK];
    let (mut accepted, mut finished) = (0u64, 0u64);
    let mut ready: Vec<u32> = Vec::new();
    let mut done: Vec<usize> = Vec::new();
    // After a temporary accept failure (no descriptors), the listener rests until this
    // timer fires, while the connections it has go on being served.
    let mut backoff = Backoff::new();
    let mut resting: Option<Pollable> = None;
    while count.is_none_or(|count| finished < count) {
        let accepting = count.is_none_or(|count| accepted < count);
        {
            let mut pollables: Vec<&Pollable> = Vec::with_capacity(clients.len() + 1);
            pollables.extend(clients.iter().map(Client::pollable));
            if accepting {
                pollables.push(resting.as_ref().unwrap_or(listener.acceptable()));
            }
            ready.clear();
            ready.extend(poll(&pollables));
        }
        // The listener's pollable came after every connection's.
        let listener_index = clients.len();
        let mut listener_ready = false;
        // Step the ready connections; drop the finished ones after, highest index first
        // (`swap_remove` then moves only entries already stepped).
        done.clear();
        for &index in &ready {
            let index = index as usize;
            if index == listener_index {
                listener_ready = true;
                continue;
            }
            match clients[index].step(mode, &mut buf) {
                Ok(Turn::Waiting) => {}
                Ok(Turn::Finished) => done.push(index),
                Err(err) => {
                    stdio::err_line(&format!("Error: {err}"));
                    done.push(index);
                }
            }
        }
        done.sort_unstable_by(|a, b| b.cmp(a));
        for &index in &done {
            clients.swap_remove(index);
            finished += 1;
        }
        if listener_ready {
            resting = None;
            while count.is_none_or(|count| accepted < count) {
                match listener.try_accept() {
                    Ok(Some(conn)) => {
                        clients.push(Client::new(conn));
                        accepted += 1;
                        backoff.reset();
                    }
                    Ok(None) => break,
                    Err(err) if err.is_temporary() => {
                        let (timer, delay) = backoff.timer();
                        stdio::err_line(&format!("Error: {err}; retrying in {delay:?}"));
                        resting = Some(timer);
                        break;
                    }
                    Err(err) => return Err(err),
                }
            }
        }
    }
    Ok(finished)
}

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

use slab::Slab;
use wasi::io::poll::Pollable;

use crate::net::{self, Backoff, Conn, Listener, Poller, Spliced};
use crate::stdio;

/// The most bytes read, or spliced, in one step.
const CHUNK: usize = 64 * 1024;

/// The least a step asks for. wasmtime-wasi zeroes a buffer of the size asked for on
/// every read, so asking 64 KiB for a 64-byte message costs more than the message:
/// each connection asks for what its last steps got, between these bounds.
const MIN_CHUNK: usize = 4 * 1024;

/// Steps one connection may take per turn before the others get theirs.
const STEPS_PER_TURN: usize = 16;

/// At most this many connections that just moved are asked again, one by one, before
/// a full poll.
const HOT_MAX: usize = 4;

/// Turns served from the connections that just moved before a full poll must come,
/// so the others are never kept waiting for long.
const HOT_TURNS: usize = 16;

/// Below this many connections a full poll costs about what asking one does, and the
/// connections that just moved are not asked first.
const HOT_FROM: usize = 16;

/// How the bytes get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The host splices input to output; the guest never sees the bytes.
    Splice,
    /// The guest reads the bytes and writes them back.
    Copy,
}

/// Where a connection is, and what it waits for there.
#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Waiting for bytes (or end of file) from the peer.
    Reading,
    /// Waiting for room to send. In copy mode `pending[sent..]` is what was read and not
    /// yet written back; in splice mode the host holds the bytes and `pending` is empty.
    Sending { pending: Vec<u8>, sent: usize },
    /// The peer is done sending: waiting for the last bytes to go, then shutting down.
    Closing,
}

/// One connection being echoed.
struct Client {
    conn: Conn,
    state: State,
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
            state: State::Reading,
            moved: false,
            chunk: MIN_CHUNK,
        }
    }

    /// The pollable that says when to step this connection again.
    fn pollable(&self) -> &Pollable {
        match self.state {
            State::Reading => self.conn.readable(),
            State::Sending { .. } | State::Closing => self.conn.writable(),
        }
    }

    /// Moves the connection on as far as it can go without waiting.
    fn step(&mut self, mode: Mode, buf: &mut [u8]) -> Result<Turn, net::Error> {
        self.moved = false;
        for _ in 0..STEPS_PER_TURN {
            if self.state == State::Closing {
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
        // Its turn is over with more to do: what its state waits on is ready at once.
        Ok(Turn::Waiting)
    }

    /// One splice; reports whether it moved on.
    fn splice(&mut self) -> Result<bool, net::Error> {
        match self.conn.try_splice_echo(self.chunk as u64)? {
            Spliced::Moved(n) => {
                self.moved = true;
                self.state = State::Reading;
                Ok(!self.adapt(usize::try_from(n).unwrap_or(CHUNK)))
            }
            Spliced::NeedInput => {
                self.state = State::Reading;
                Ok(false)
            }
            Spliced::NeedRoom => {
                self.state = self.after_no_room(Vec::new(), 0);
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
        if let State::Sending { pending, sent } = &mut self.state {
            let n = self.conn.try_write(&pending[*sent..])?;
            if n == 0 {
                return Ok(false);
            }
            *sent += n;
            self.moved = true;
            if *sent == pending.len() {
                self.state = State::Reading;
            }
            return Ok(true);
        }
        match self.conn.try_read(&mut buf[..self.chunk])? {
            None => {
                self.state = State::Reading;
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
                if written == n {
                    self.moved = true;
                    return Ok(!drained);
                }
                self.moved |= written > 0;
                self.state = State::Sending {
                    pending: buf[written..n].to_vec(),
                    sent: 0,
                };
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
    fn after_no_room(&self, pending: Vec<u8>, sent: usize) -> State {
        if self.moved {
            State::Reading
        } else {
            State::Sending { pending, sent }
        }
    }

    /// The peer is done sending: send what is left, then shut down.
    fn close(&mut self) -> Result<(), net::Error> {
        self.state = State::Closing;
        self.conn.start_flush()
    }
}

/// What a ready token names.
#[derive(Debug, Clone, Copy)]
enum Token {
    /// The listener has a connection waiting (or its rest after a failure is over).
    Listener,
    /// The connection with this key in the server's slab.
    Client(usize),
}

/// Echoes connections on `listener`, all at once, until `count` of them have finished
/// (or forever), and returns how many did. A connection's own failure is reported on
/// stderr and counts as finished; only the listener failing ends the loop.
pub(crate) fn serve(
    listener: &Listener,
    count: Option<u64>,
    mode: Mode,
) -> Result<u64, net::Error> {
    let mut clients: Slab<Client> = Slab::new();
    let mut poller = Poller::new();
    let mut buf = vec![0; CHUNK];
    let (mut accepted, mut finished) = (0u64, 0u64);
    // After a temporary accept failure (no descriptors), the listener rests until this
    // timer fires, while the connections it has go on being served.
    let mut backoff = Backoff::new();
    let mut resting: Option<Pollable> = None;
    // The connections the last turn moved, and how many turns in a row were theirs.
    let mut hot: Vec<usize> = Vec::new();
    let mut hot_turns = 0;
    let mut stepped: Vec<usize> = Vec::new();
    while count.is_none_or(|count| finished < count) {
        // A full poll lifts every connection's pollable, each time: with many idle
        // connections that is most of a message's cost. A connection that just moved
        // often has its next bytes already (its peer answers at once), so those few are
        // asked first, one pollable each, and a full poll comes only when none is
        // ready, or after HOT_TURNS turns.
        if !hot.is_empty()
            && hot.len() <= HOT_MAX
            && hot_turns < HOT_TURNS
            && clients.len() >= HOT_FROM
        {
            hot.retain(|&key| clients.get(key).is_some_and(|c| c.pollable().ready()));
            if !hot.is_empty() {
                hot_turns += 1;
                stepped.clear();
                for &key in &hot {
                    finished += step_client(&mut clients, key, mode, &mut buf, &mut stepped);
                }
                std::mem::swap(&mut hot, &mut stepped);
                continue;
            }
        }
        hot_turns = 0;
        hot.clear();
        let mut round = poller.round();
        for (key, client) in &clients {
            round.register(client.pollable(), Token::Client(key));
        }
        if count.is_none_or(|count| accepted < count) {
            round.register(
                resting.as_ref().unwrap_or(listener.acceptable()),
                Token::Listener,
            );
        }
        let mut listener_ready = false;
        for &token in round.wait() {
            let key = match token {
                Token::Listener => {
                    listener_ready = true;
                    continue;
                }
                Token::Client(key) => key,
            };
            finished += step_client(&mut clients, key, mode, &mut buf, &mut hot);
        }
        if listener_ready {
            resting = None;
            while count.is_none_or(|count| accepted < count) {
                match listener.try_accept() {
                    Ok(Some(conn)) => {
                        clients.insert(Client::new(conn));
                        accepted += 1;
                        backoff.reset();
                    }
                    Ok(None) => break,
                    Err(err) if err.is_temporary() => {
                        resting = Some(stdio::rest_after(&err, &mut backoff));
                        break;
                    }
                    Err(err) => return Err(err),
                }
            }
        }
    }
    Ok(finished)
}

/// Steps connection `key`; returns 1 when it finished (and is gone), else 0. A
/// connection that moved bytes is added to `moved`.
fn step_client(
    clients: &mut Slab<Client>,
    key: usize,
    mode: Mode,
    buf: &mut [u8],
    moved: &mut Vec<usize>,
) -> u64 {
    let client = &mut clients[key];
    let turn = client.step(mode, buf);
    if let Err(err) = &turn {
        stdio::err_line(&format!("Error: {err}"));
    }
    if matches!(turn, Ok(Turn::Waiting)) {
        if client.moved {
            moved.push(key);
        }
        return 0;
    }
    clients.remove(key);
    1
}

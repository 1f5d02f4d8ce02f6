//! [`Poller`]: one `wasi:io/poll` call over many pollables, answered in tokens.

use wasi::io::poll::{Pollable, poll};

/// Waits on many pollables at once and says which are ready by the token each was
/// registered with — the one event loop under the echo servers, as Go's netpoller is
/// under its goroutines.
///
/// WASI 0.2's `poll` takes the whole list on every call, so a loop registers afresh
/// each round what each of its parts waits on now (a connection's input, or room to
/// send; a listener; a timer) and steps the parts whose tokens come back. The poller
/// keeps the token lists between rounds, so a round allocates only its list of borrowed
/// pollables.
///
/// ```no_run
/// use sockbox_guest::net::{self, Poller};
///
/// #[derive(Clone, Copy)]
/// enum Token { Listener, Conn(usize) }
///
/// let listener = net::listen("127.0.0.1:0")?;
/// let mut conns: Vec<net::Conn> = Vec::new();
/// let mut poller = Poller::new();
/// loop {
///     let mut round = poller.round();
///     round.register(listener.acceptable(), Token::Listener);
///     for (i, conn) in conns.iter().enumerate() {
///         round.register(conn.readable(), Token::Conn(i));
///     }
///     for &token in round.wait() {
///         match token {
///             Token::Listener => conns.extend(listener.try_accept()?),
///             Token::Conn(i) => { let _ = conns[i].try_read(&mut [0; 512])?; }
///         }
///     }
/// }
/// # Ok::<(), net::Error>(())
/// ```
#[derive(Debug)]
pub struct Poller<T> {
    /// This round's tokens, in the order their pollables were registered.
    tokens: Vec<T>,
    /// The tokens of the pollables the last wait found ready.
    ready: Vec<T>,
}

impl<T: Copy> Poller<T> {
    /// Returns a poller with nothing registered.
    pub fn new() -> Self {
        Self {
            tokens: Vec::new(),
            ready: Vec::new(),
        }
    }

    /// Starts a round: [`Round::register`] what to wait on, then [`Round::wait`].
    pub fn round(&mut self) -> Round<'_, '_, T> {
        self.tokens.clear();
        let pollables = Vec::with_capacity(self.tokens.capacity());
        Round {
            poller: self,
            pollables,
        }
    }
}

impl<T: Copy> Default for Poller<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// One round of a [`Poller`]: the pollables registered for it, borrowed until the wait.
#[derive(Debug)]
pub struct Round<'p, 'a, T> {
    poller: &'p mut Poller<T>,
    pollables: Vec<&'a Pollable>,
}

impl<'p, 'a, T: Copy> Round<'p, 'a, T> {
    /// Waits on `pollable` this round; [`Round::wait`] answers `token` when it is ready.
    pub fn register(&mut self, pollable: &'a Pollable, token: T) {
        self.pollables.push(pollable);
        self.poller.tokens.push(token);
    }

    /// How many pollables are registered.
    pub fn len(&self) -> usize {
        self.pollables.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.pollables.is_empty()
    }

    /// Blocks until at least one registered pollable is ready and returns the tokens of
    /// all that are, in registration order. With nothing registered it returns at once,
    /// with no tokens (the host would trap on an empty `poll`).
    pub fn wait(self) -> &'p [T] {
        let Round { poller, pollables } = self;
        poller.ready.clear();
        if !pollables.is_empty() {
            // The host answers in its own order (wasmtime's: as they became ready).
            let mut indexes = poll(&pollables);
            indexes.sort_unstable();
            let tokens = &poller.tokens;
            poller
                .ready
                .extend(indexes.into_iter().map(|index| tokens[index as usize]));
        }
        &poller.ready
    }
}

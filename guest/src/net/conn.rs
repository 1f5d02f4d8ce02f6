use std::io::{self, Read, Write};
use std::net::SocketAddr;

use wasi::io::poll::Pollable;
use wasi::io::streams::{InputStream, OutputStream, StreamError};
use wasi::sockets::network::ErrorCode;
use wasi::sockets::tcp::{ShutdownType, TcpSocket};
use wasi::sockets::tcp_create_socket::create_tcp_socket;

use super::addr::{EmptyHost, resolve};
use super::deadline::{self, Deadline};
use super::options::TcpOptions;
use super::{Error, Reason};
use crate::sys;

/// Largest read asked of the host at once.
const MAX_READ: usize = 64 * 1024;

/// Opens a TCP connection to `addr` (`1.2.3.4:80`, `[::1]:80` or `name:80`).
///
/// A name's addresses are tried in order; if every one fails, the last error is returned.
pub fn dial(addr: &str) -> Result<Conn, Error> {
    dial_until(addr, None)
}

/// Like [`dial`], giving up with `i/o timeout` once `timeout` has passed (for all of a
/// name's addresses together).
pub fn dial_timeout(addr: &str, timeout: std::time::Duration) -> Result<Conn, Error> {
    dial_until(addr, Some(Deadline::after(timeout)))
}

fn dial_until(addr: &str, deadline: Option<Deadline>) -> Result<Conn, Error> {
    let mut last = None;
    for remote in resolve("dial", "tcp", addr, EmptyHost::Loopback)? {
        match connect(remote, deadline) {
            Ok(conn) => return Ok(conn),
            Err(reason) => last = Some(Error::new("dial", "tcp", Some(remote.to_string()), reason)),
        }
    }
    Err(last.unwrap_or_else(|| Error::new("dial", "tcp", None, Reason::NoSuchHost)))
}

fn connect(remote: SocketAddr, deadline: Option<Deadline>) -> Result<Conn, Reason> {
    let socket = create_tcp_socket(sys::family(&remote)).map_err(Reason::from_code)?;
    socket
        .start_connect(&sys::network(), sys::to_wasi(remote))
        .map_err(Reason::from_code)?;
    let connected = socket.subscribe();
    let (input, output) = sys::retry(&connected, deadline::instant(deadline), || {
        socket.finish_connect()
    })
    .map_err(Reason::from_code)?;
    drop(connected);
    Conn::new(socket, input, output).map_err(Reason::from_code)
}

/// What [`Conn::try_splice_echo`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spliced {
    /// It moved this many bytes.
    Moved(u64),
    /// Nothing has arrived: wait for [`Conn::readable`].
    NeedInput,
    /// The host has no room to send: wait for [`Conn::writable`].
    NeedRoom,
    /// The peer closed its sending side and everything it sent has been moved.
    Done,
}

/// A TCP connection: `Read` and `Write` block until the host has bytes or room;
/// `try_read`, `try_write` and `try_splice_echo` never block, and [`Conn::readable`]
/// and [`Conn::writable`] say when to try again (for event loops over
/// `wasi:io/poll`).
///
/// Dropping a `Conn` waits for the bytes already written to reach the OS, then closes it.
#[derive(Debug)]
pub struct Conn {
    // Children before their parents: fields drop in this order.
    readable: Pollable,
    writable: Pollable,
    input: InputStream,
    output: OutputStream,
    socket: TcpSocket,
    local: SocketAddr,
    peer: SocketAddr,
    unflushed: bool,
    read_deadline: Option<Deadline>,
    write_deadline: Option<Deadline>,
}

impl Conn {
    pub(crate) fn new(
        socket: TcpSocket,
        input: InputStream,
        output: OutputStream,
    ) -> Result<Self, ErrorCode> {
        let local = sys::from_wasi(socket.local_address()?);
        let peer = sys::from_wasi(socket.remote_address()?);
        Ok(Self {
            readable: input.subscribe(),
            writable: output.subscribe(),
            input,
            output,
            socket,
            local,
            peer,
            unflushed: false,
            read_deadline: None,
            write_deadline: None,
        })
    }

    /// Returns the socket's options: keep-alive, hop limit, buffer sizes.
    pub fn options(&self) -> TcpOptions<'_> {
        TcpOptions(&self.socket)
    }

    /// Returns the local address of the connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Returns the remote address of the connection.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Makes reads fail with `i/o timeout` once `deadline` passes (`None`: wait forever).
    pub fn set_read_deadline(&mut self, deadline: Option<Deadline>) {
        self.read_deadline = deadline;
    }

    /// Makes writes fail with `i/o timeout` once `deadline` passes while the host has
    /// no room (`None`: wait forever).
    pub fn set_write_deadline(&mut self, deadline: Option<Deadline>) {
        self.write_deadline = deadline;
    }

    /// Sets both the read and the write deadline.
    pub fn set_deadline(&mut self, deadline: Option<Deadline>) {
        self.read_deadline = deadline;
        self.write_deadline = deadline;
    }

    /// Reads what has already arrived, without waiting: `Ok(None)` when nothing has
    /// (wait for [`Conn::readable`]), `Ok(Some(0))` at end of file.
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        let want = buf.len().min(MAX_READ) as u64;
        match self.input.read(want) {
            Ok(chunk) if chunk.is_empty() && want > 0 => Ok(None),
            Ok(chunk) => {
                buf[..chunk.len()].copy_from_slice(&chunk);
                Ok(Some(chunk.len()))
            }
            Err(err) => match Reason::from_stream(err) {
                None => Ok(Some(0)),
                Some(reason) => Err(self.error("read", reason)),
            },
        }
    }

    /// Writes as much of `buf` as the host has room for, without waiting; `Ok(0)` when
    /// it has none (wait for [`Conn::writable`]).
    pub fn try_write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        let permit = self
            .output
            .check_write()
            .map_err(|err| self.stream_error("write", err))?;
        let n = buf.len().min(usize::try_from(permit).unwrap_or(usize::MAX));
        if n > 0 {
            self.output
                .write(&buf[..n])
                .map_err(|err| self.stream_error("write", err))?;
            self.unflushed = true;
        }
        Ok(n)
    }

    /// Sends back to the peer, without waiting, up to `max` of the bytes that have
    /// arrived: the host moves them from the connection's input to its output
    /// (`wasi:io/streams` `splice`), and they never enter guest memory.
    pub fn try_splice_echo(&mut self, max: u64) -> Result<Spliced, Error> {
        match self.output.splice(&self.input, max) {
            // `splice` moves nothing both when the output has no room and when no input
            // has arrived; only then is it worth a second host call to ask which.
            Ok(0) => {
                let room = self
                    .output
                    .check_write()
                    .map_err(|err| self.stream_error("write", err))?;
                Ok(if room == 0 {
                    Spliced::NeedRoom
                } else {
                    Spliced::NeedInput
                })
            }
            Ok(n) => {
                self.unflushed = true;
                Ok(Spliced::Moved(n))
            }
            // `splice` reports the input's end, or either side's failure, as its error.
            Err(err) => match Reason::from_stream(err) {
                None => Ok(Spliced::Done),
                Some(reason) => Err(self.error("readfrom", reason)),
            },
        }
    }

    /// Returns the pollable that is ready when [`Conn::try_read`] has something to
    /// return (bytes, end of file or an error).
    pub fn readable(&self) -> &Pollable {
        &self.readable
    }

    /// Returns the pollable that is ready when [`Conn::try_write`] has room.
    pub fn writable(&self) -> &Pollable {
        &self.writable
    }

    /// Starts sending what was written without waiting for it; [`Conn::writable`] is
    /// ready once it is out, and [`Conn::try_close_write`] may then shut down.
    pub fn start_flush(&mut self) -> Result<(), Error> {
        if self.unflushed {
            self.output
                .flush()
                .map_err(|err| self.stream_error("write", err))?;
        }
        Ok(())
    }

    /// Shuts down the writing side if everything written is out, without waiting:
    /// `Ok(false)` when bytes are still on their way (call [`Conn::start_flush`], wait
    /// for [`Conn::writable`], and try again).
    pub fn try_close_write(&mut self) -> Result<bool, Error> {
        if self.unflushed {
            // While written bytes are still on their way, `check-write` gives 0.
            let room = self
                .output
                .check_write()
                .map_err(|err| self.stream_error("write", err))?;
            if room == 0 {
                return Ok(false);
            }
            self.unflushed = false;
        }
        self.socket
            .shutdown(ShutdownType::Send)
            .map_err(|code| self.error("close", Reason::from_code(code)))?;
        Ok(true)
    }

    /// Shuts down the writing side: the peer reads end-of-file once it has everything written.
    pub fn close_write(&mut self) -> Result<(), Error> {
        self.flush_output()?;
        self.socket
            .shutdown(ShutdownType::Send)
            .map_err(|code| self.error("close", Reason::from_code(code)))
    }

    /// Waits for everything written to reach the OS, then closes the connection.
    pub fn close(mut self) -> Result<(), Error> {
        self.flush_output()
    }

    fn flush_output(&mut self) -> Result<(), Error> {
        if !self.unflushed {
            return Ok(());
        }
        self.unflushed = false;
        self.output
            .blocking_flush()
            .map_err(|err| self.stream_error("write", err))
    }

    fn error(&self, op: &'static str, reason: Reason) -> Error {
        Error::on_conn(op, self.local, self.peer, reason)
    }

    fn stream_error(&self, op: &'static str, err: StreamError) -> Error {
        self.error(op, Reason::from_stream(err).unwrap_or(Reason::BrokenPipe))
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(n) = self.try_read(buf)? {
                return Ok(n);
            }
            if !sys::wait(&self.readable, deadline::instant(self.read_deadline)) {
                return Err(self.error("read", Reason::Timeout).into());
            }
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.try_write(buf)? {
                0 => {
                    if !sys::wait(&self.writable, deadline::instant(self.write_deadline)) {
                        return Err(self.error("write", Reason::Timeout).into());
                    }
                }
                n => return Ok(n),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(self.flush_output()?)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Writes run on the host in the background; closing under one would cut it short.
        let _ = self.flush_output();
    }
}

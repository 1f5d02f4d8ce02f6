//! Go's `net`, async, over `wasi:sockets@0.3.0`: the same shapes and error words as
//! `sockbox_guest::net` (whose [`Error`] and [`Reason`] it uses), with `async`
//! operations instead of pollables.
//!
//! A TCP connection's bytes are two streams: [`Conn::read`] reads the host's receive
//! stream, [`Conn::write`] writes a stream the host sends from, and
//! [`Conn::close_write`] ends that stream (the peer reads end of file). Or the host
//! moves them itself: [`Conn::forward_echo`] hands the receive stream straight back as
//! the send stream.

use std::future::{Future, poll_fn};
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use sockbox_guest::net::{EmptyHost, Error, Reason, Target, target};
use wasip3::clocks::monotonic_clock;
use wasip3::sockets::ip_name_lookup;
use wasip3::sockets::types::{ErrorCode, TcpSocket, UdpSocket};
use wasip3::wit_bindgen::rt::async_support::{
    FutureReader, StreamReader, StreamResult, StreamWriter,
};
use wasip3::wit_stream;

/// What sockbox's host names the `new-socket-limit` it reports as `other` (WASI 0.3.0
/// has no code of its own for it).
const NEW_SOCKET_LIMIT: &str = "new-socket-limit";

/// Maps a `wasi:sockets@0.3.0` error code to Go's words: the one map of this build's
/// codes (the 0.2 build's is `sockbox_guest::net::Reason::from_code`; both end in the
/// same [`Reason`]s, so both builds word errors alike).
pub fn reason(code: ErrorCode) -> Reason {
    match code {
        ErrorCode::AccessDenied => Reason::AccessDenied,
        ErrorCode::NotSupported => Reason::NotSupported,
        ErrorCode::InvalidArgument => Reason::InvalidArgument,
        ErrorCode::OutOfMemory => Reason::OutOfMemory,
        ErrorCode::Timeout => Reason::Timeout,
        ErrorCode::InvalidState => Reason::InvalidState,
        ErrorCode::AddressNotBindable => Reason::AddressNotAvailable,
        ErrorCode::AddressInUse => Reason::AddressInUse,
        ErrorCode::RemoteUnreachable => Reason::Unreachable,
        ErrorCode::ConnectionRefused => Reason::ConnectionRefused,
        ErrorCode::ConnectionBroken => Reason::BrokenPipe,
        ErrorCode::ConnectionReset => Reason::ConnectionReset,
        ErrorCode::ConnectionAborted => Reason::ConnectionAborted,
        ErrorCode::DatagramTooLarge => Reason::MessageTooLong,
        ErrorCode::Other(Some(name)) if name == NEW_SOCKET_LIMIT => Reason::TooManySockets,
        // The host's own text may carry its internals: never passed on.
        ErrorCode::Other(_) => Reason::Other("unknown error".into()),
    }
}

/// Looks up `name` through `wasi:sockets/ip-name-lookup@0.3.0`.
pub async fn lookup_host(name: &str) -> Result<Vec<IpAddr>, Reason> {
    use ip_name_lookup::ErrorCode as E;
    let failed = |cause| Reason::Lookup {
        name: name.to_owned(),
        cause: Box::new(cause),
    };
    let ips = ip_name_lookup::resolve_addresses(name.to_owned())
        .await
        .map_err(|code| {
            failed(match code {
                E::AccessDenied => Reason::AccessDenied,
                E::InvalidArgument => Reason::InvalidArgument,
                E::NameUnresolvable => Reason::NoSuchHost,
                E::TemporaryResolverFailure => Reason::TemporaryResolverFailure,
                E::PermanentResolverFailure => Reason::ResolverFailure,
                E::Other(_) => Reason::Other("unknown error".into()),
            })
        })?;
    if ips.is_empty() {
        return Err(failed(Reason::NoSuchHost));
    }
    Ok(ips.into_iter().map(ip_from_wasi).collect())
}

/// Resolves `addr` to the socket addresses to try, in order.
async fn resolve(
    op: &'static str,
    net: &'static str,
    addr: &str,
    empty: EmptyHost,
) -> Result<Vec<SocketAddr>, Error> {
    match target(op, net, addr, empty)? {
        Target::Addr(addr) => Ok(vec![addr]),
        Target::Name { host, port } => {
            let ips = lookup_host(host)
                .await
                .map_err(|reason| Error::new(op, net, None, reason))?;
            Ok(ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect())
        }
    }
}

/// Runs `work` for at most `timeout` (`None`: as long as it takes); `None` if the time
/// ran out first (`work` is then dropped, which cancels what it waited on).
pub async fn within<T>(timeout: Option<Duration>, work: impl Future<Output = T>) -> Option<T> {
    let Some(timeout) = timeout else {
        return Some(work.await);
    };
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let mut work = pin!(work);
    let mut timer = pin!(monotonic_clock::wait_for(nanos));
    poll_fn(|cx| {
        if let Poll::Ready(done) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(done));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// Sleeps for `delay`.
pub async fn sleep(delay: Duration) {
    monotonic_clock::wait_for(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX)).await;
}

/// Connects to `addr` (`1.2.3.4:80`, `[::1]:80`, `name:80`), trying each of a name's
/// addresses in turn, the whole attempt bounded by `timeout` if given.
pub async fn dial(addr: &str, timeout: Option<Duration>) -> Result<Conn, Error> {
    let targets = resolve("dial", "tcp", addr, EmptyHost::Loopback).await?;
    let attempt = async {
        let mut last = None;
        for remote in targets {
            let fail = |reason| Error::new("dial", "tcp", Some(remote.to_string()), reason);
            let socket = TcpSocket::create(family(&remote)).map_err(|code| fail(reason(code)))?;
            match socket.connect(to_wasi(remote)).await {
                Ok(()) => return Conn::new(socket).map_err(|code| fail(reason(code))),
                Err(code) => last = Some(fail(reason(code))),
            }
        }
        Err(last.unwrap_or_else(|| Error::new("dial", "tcp", None, Reason::NoSuchHost)))
    };
    within(timeout, attempt).await.unwrap_or_else(|| {
        Err(Error::new(
            "dial",
            "tcp",
            Some(addr.to_owned()),
            Reason::Timeout,
        ))
    })
}

/// A TCP listener: Go's `net.Listener`.
#[derive(Debug)]
pub struct Listener {
    /// The listening socket; dropped after the stream of its connections.
    _socket: TcpSocket,
    incoming: StreamReader<TcpSocket>,
    local: SocketAddr,
}

/// Listens on `addr` (`127.0.0.1:0`, `[::1]:8080`, `:8080`); port 0 picks a free port,
/// which [`Listener::local_addr`] tells.
pub async fn listen(addr: &str) -> Result<Listener, Error> {
    let local = resolve("listen", "tcp", addr, EmptyHost::Unspecified).await?[0];
    let fail = |code| Error::new("listen", "tcp", Some(local.to_string()), reason(code));
    let socket = TcpSocket::create(family(&local)).map_err(fail)?;
    socket.bind(to_wasi(local)).map_err(fail)?;
    let incoming = socket.listen().map_err(fail)?;
    let local = from_wasi(socket.get_local_address().map_err(fail)?);
    Ok(Listener {
        _socket: socket,
        incoming,
        local,
    })
}

impl Listener {
    /// Waits for the next connection.
    pub async fn accept(&mut self) -> Result<Conn, Error> {
        let fail = |reason| Error::new("accept", "tcp", Some(self.local.to_string()), reason);
        let socket = self
            .incoming
            .next()
            .await
            .ok_or_else(|| fail(Reason::Other("the listener was closed".into())))?;
        Conn::new(socket).map_err(|code| fail(reason(code)))
    }

    /// Returns the address it listens on, with the real port when 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// How the host ended a stream: all moved, or the failure that stopped it.
type Outcome = FutureReader<Result<(), ErrorCode>>;

/// A TCP connection: Go's `net.Conn`.
#[derive(Debug)]
pub struct Conn {
    socket: TcpSocket,
    /// The bytes from the peer, until [`Conn::forward_echo`] hands them back.
    input: Option<(StreamReader<u8>, Outcome)>,
    /// The bytes to the peer, until [`Conn::close_write`]; the host's result of
    /// sending them.
    output: Option<StreamWriter<u8>>,
    sent: Option<Outcome>,
    local: SocketAddr,
    peer: SocketAddr,
}

impl Conn {
    fn new(socket: TcpSocket) -> Result<Self, ErrorCode> {
        let local = from_wasi(socket.get_local_address()?);
        let peer = from_wasi(socket.get_remote_address()?);
        let input = socket.receive();
        Ok(Self {
            socket,
            input: Some(input),
            output: None,
            sent: None,
            local,
            peer,
        })
    }

    /// Returns the local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Returns the peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// An error on this connection, as Go words one: `read tcp LOCAL->PEER: …`.
    fn error(&self, op: &'static str, reason: Reason) -> Error {
        Error::on_conn(op, self.local, self.peer, reason)
    }

    /// Reads what has arrived, up to `max` bytes, into `buf` (cleared first); 0 bytes
    /// read means the peer closed its side.
    pub async fn read(&mut self, buf: Vec<u8>, max: usize) -> Result<Vec<u8>, Error> {
        let Some((input, _)) = &mut self.input else {
            return Err(self.error("read", Reason::InvalidState));
        };
        let mut buf = buf;
        buf.clear();
        buf.reserve(max);
        let (result, buf) = input.read(buf).await;
        match result {
            StreamResult::Complete(_) => Ok(buf),
            StreamResult::Dropped | StreamResult::Cancelled => {
                // The stream ended: at end of file the result is `ok`, after a failure
                // it names the failure.
                let Some((_, done)) = self.input.take() else {
                    return Ok(buf);
                };
                match done.await {
                    Ok(()) => Ok(buf),
                    Err(code) => Err(self.error("read", reason(code))),
                }
            }
        }
    }

    /// Writes all of `bytes`; returns the buffer, emptied, for reuse.
    pub async fn write(&mut self, bytes: Vec<u8>) -> Result<Vec<u8>, Error> {
        if self.output.is_none() {
            if self.sent.is_some() {
                return Err(self.error("write", Reason::BrokenPipe));
            }
            let (writer, reader) = wit_stream::new::<u8>();
            self.sent = Some(self.socket.send(reader));
            self.output = Some(writer);
        }
        let Some(output) = &mut self.output else {
            return Err(self.error("write", Reason::InvalidState));
        };
        let mut rest = output.write_all(bytes).await;
        if rest.is_empty() {
            return Ok(rest);
        }
        // The host stopped taking bytes: its result says why.
        self.output = None;
        let code = match self.sent.take() {
            Some(sent) => sent.await.err(),
            None => None,
        };
        rest.clear();
        Err(self.error("write", code.map_or(Reason::BrokenPipe, reason)))
    }

    /// Shuts down the sending side once everything written is sent: the peer reads end
    /// of file. Reading goes on.
    pub async fn close_write(&mut self) -> Result<(), Error> {
        if self.output.is_none() && self.sent.is_none() {
            // Nothing was written: send an empty stream, so the host shuts down.
            let (writer, reader) = wit_stream::new::<u8>();
            self.sent = Some(self.socket.send(reader));
            drop(writer);
        }
        self.output = None;
        match self.sent.take() {
            Some(sent) => sent.await.map_err(|code| self.error("write", reason(code))),
            None => Ok(()),
        }
    }

    /// Sends every byte the peer sends straight back, inside the host (the receive
    /// stream is the send stream: the bytes never enter the guest), until the peer
    /// closes its side; then shuts down this side.
    pub async fn forward_echo(mut self) -> Result<(), Error> {
        let Some((input, received)) = self.input.take() else {
            return Err(self.error("read", Reason::InvalidState));
        };
        let sent = self.socket.send(input);
        let (received, sent) = (received.await, sent.await);
        // Go's `io.Copy` into a TCP connection says `readfrom`, for either side.
        received.map_err(|code| self.error("readfrom", reason(code)))?;
        sent.map_err(|code| self.error("readfrom", reason(code)))
    }
}

/// A UDP socket that sends to and receives from any peer: Go's `net.PacketConn`.
#[derive(Debug)]
pub struct PacketConn {
    socket: UdpSocket,
    local: SocketAddr,
}

/// Announces on the local UDP address `addr`; port 0 picks a free port.
pub async fn listen_packet(addr: &str) -> Result<PacketConn, Error> {
    let local = resolve("listen", "udp", addr, EmptyHost::Unspecified).await?[0];
    let fail = |code| Error::new("listen", "udp", Some(local.to_string()), reason(code));
    let socket = UdpSocket::create(family(&local)).map_err(fail)?;
    socket.bind(to_wasi(local)).map_err(fail)?;
    let local = from_wasi(socket.get_local_address().map_err(fail)?);
    Ok(PacketConn { socket, local })
}

/// A UDP socket connected to one peer: Go's `net.Dial("udp", …)`.
pub async fn dial_udp(addr: &str) -> Result<PacketConn, Error> {
    let remote = resolve("dial", "udp", addr, EmptyHost::Loopback).await?[0];
    let fail = |code| Error::new("dial", "udp", Some(remote.to_string()), reason(code));
    let socket = UdpSocket::create(family(&remote)).map_err(fail)?;
    socket.connect(to_wasi(remote)).map_err(fail)?;
    let local = from_wasi(socket.get_local_address().map_err(fail)?);
    Ok(PacketConn { socket, local })
}

impl PacketConn {
    /// Returns the address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends `datagram` to `to`, or to the connected peer.
    pub async fn send_to(&self, datagram: Vec<u8>, to: Option<SocketAddr>) -> Result<(), Error> {
        self.socket
            .send(datagram, to.map(to_wasi))
            .await
            .map_err(|code| {
                let addr = to.map_or_else(|| self.local.to_string(), |to| to.to_string());
                Error::new("write", "udp", Some(addr), reason(code))
            })
    }

    /// Receives one datagram and its sender.
    pub async fn recv_from(&self) -> Result<(Vec<u8>, SocketAddr), Error> {
        let (datagram, from) = self.socket.receive().await.map_err(|code| {
            Error::new("read", "udp", Some(self.local.to_string()), reason(code))
        })?;
        Ok((datagram, from_wasi(from)))
    }
}

sockbox_guest::wasi_address_conversions!(wasip3::sockets::types);

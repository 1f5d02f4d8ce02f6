use std::net::SocketAddr;

use wasi::io::poll::Pollable;
use wasi::sockets::network::ErrorCode;
use wasi::sockets::udp::{
    IncomingDatagramStream, OutgoingDatagram, OutgoingDatagramStream, UdpSocket,
};
use wasi::sockets::udp_create_socket::create_udp_socket;

use super::addr::{EmptyHost, resolve};
use super::deadline::{self, Deadline};
use super::options::UdpOptions;
use super::{Error, Reason};
use crate::sys;

/// Announces on the local UDP address `addr` (`127.0.0.1:0`, `[::1]:5353`, `:5353`).
///
/// Port 0 picks a free port; [`PacketConn::local_addr`] tells which.
pub fn listen_packet(addr: &str) -> Result<PacketConn, Error> {
    let local = resolve("listen", "udp", addr, EmptyHost::Unspecified)?[0];
    let fail = |code| {
        Error::new(
            "listen",
            "udp",
            Some(local.to_string()),
            Reason::from_code(code),
        )
    };
    let datagrams = Datagrams::bind(local, None).map_err(fail)?;
    Ok(PacketConn { datagrams })
}

/// A UDP socket that sends to and receives from any peer: Go's `net.PacketConn`.
///
/// Datagram boundaries are kept: each [`PacketConn::recv_from`] returns one datagram.
#[derive(Debug)]
pub struct PacketConn {
    datagrams: Datagrams,
}

impl PacketConn {
    /// Sends `buf` as one datagram to `addr`.
    pub fn send_to(&self, buf: &[u8], addr: SocketAddr) -> Result<usize, Error> {
        self.datagrams
            .send(buf, Some(addr))
            .map_err(|reason| Error::new("write", "udp", Some(addr.to_string()), reason))
    }

    /// Receives one datagram into `buf` and returns its length and sender. A datagram
    /// longer than `buf` is cut to fit, as Go cuts it.
    pub fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), Error> {
        self.datagrams.recv(buf).map_err(|reason| {
            Error::new("read", "udp", Some(self.local_addr().to_string()), reason)
        })
    }

    /// Sends `buf` as one datagram to `addr` if the host takes one now, and says whether
    /// it did; `false`: try again when [`PacketConn::writable`] is ready.
    pub fn try_send_to(&self, buf: &[u8], addr: SocketAddr) -> Result<bool, Error> {
        self.datagrams
            .try_send(buf, Some(addr))
            .map_err(|reason| Error::new("write", "udp", Some(addr.to_string()), reason))
    }

    /// Receives one datagram into `buf` if one has arrived: its length (cut to `buf`)
    /// and sender; `None`: try again when [`PacketConn::readable`] is ready.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> Result<Option<(usize, SocketAddr)>, Error> {
        self.datagrams.try_recv(buf).map_err(|reason| {
            Error::new("read", "udp", Some(self.local_addr().to_string()), reason)
        })
    }

    /// Ready when a datagram has arrived: when to call [`PacketConn::try_recv_from`].
    pub fn readable(&self) -> &Pollable {
        self.datagrams.readable()
    }

    /// Ready when the host takes a datagram: when to call [`PacketConn::try_send_to`].
    pub fn writable(&self) -> &Pollable {
        self.datagrams.writable()
    }

    /// Returns the socket's options: hop limit, buffer sizes.
    pub fn options(&self) -> UdpOptions<'_> {
        UdpOptions(&self.datagrams.socket)
    }

    /// Returns the address the socket is bound to, with the real port when 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.datagrams.local
    }

    /// Makes receives fail with `i/o timeout` once `deadline` passes (`None`: wait
    /// forever). The socket stays usable: set a later deadline and go on.
    pub fn set_read_deadline(&mut self, deadline: Option<Deadline>) {
        self.datagrams.read_deadline = deadline;
    }

    /// Makes sends fail with `i/o timeout` once `deadline` passes while the host has no
    /// room (`None`: wait forever).
    pub fn set_write_deadline(&mut self, deadline: Option<Deadline>) {
        self.datagrams.write_deadline = deadline;
    }

    /// Sets both the read and the write deadline.
    pub fn set_deadline(&mut self, deadline: Option<Deadline>) {
        self.set_read_deadline(deadline);
        self.set_write_deadline(deadline);
    }
}

/// A bound UDP socket and its two datagram streams: what [`PacketConn`] and
/// [`UdpConn`](super::UdpConn) share.
#[derive(Debug)]
pub(crate) struct Datagrams {
    // Children before their parents: fields drop in this order.
    readable: Pollable,
    writable: Pollable,
    incoming: IncomingDatagramStream,
    outgoing: OutgoingDatagramStream,
    pub(crate) socket: UdpSocket,
    pub(crate) local: SocketAddr,
    /// When receives and sends give up with `i/o timeout`.
    pub(crate) read_deadline: Option<Deadline>,
    pub(crate) write_deadline: Option<Deadline>,
}

impl Datagrams {
    /// Binds a socket to `local` and opens its streams, connected to `remote` if given.
    pub(crate) fn bind(local: SocketAddr, remote: Option<SocketAddr>) -> Result<Self, ErrorCode> {
        let socket = create_udp_socket(sys::family(&local))?;
        socket.start_bind(&sys::network(), sys::to_wasi(local))?;
        let bound = socket.subscribe();
        sys::retry(&bound, None, || socket.finish_bind())?;
        drop(bound);
        let (incoming, outgoing) = socket.stream(remote.map(sys::to_wasi))?;
        let local = sys::from_wasi(socket.local_address()?);
        Ok(Self {
            readable: incoming.subscribe(),
            writable: outgoing.subscribe(),
            incoming,
            outgoing,
            socket,
            local,
            read_deadline: None,
            write_deadline: None,
        })
    }

    /// Returns the connected peer, if the streams were opened with one.
    pub(crate) fn peer(&self) -> Option<SocketAddr> {
        self.socket.remote_address().ok().map(sys::from_wasi)
    }

    /// Sends `buf` as one datagram, to `to` or to the connected peer.
    pub(crate) fn send(&self, buf: &[u8], to: Option<SocketAddr>) -> Result<usize, Reason> {
        let deadline = deadline::instant(self.write_deadline);
        loop {
            if self.try_send(buf, to)? {
                return Ok(buf.len());
            }
            if !sys::wait(&self.writable, deadline) {
                return Err(Reason::Timeout);
            }
        }
    }

    /// Sends `buf` as one datagram if the host takes one now; `false`: wait for
    /// [`Datagrams::writable`].
    pub(crate) fn try_send(&self, buf: &[u8], to: Option<SocketAddr>) -> Result<bool, Reason> {
        // `check-send` says how many datagrams the host takes now; 0 means wait.
        if self.outgoing.check_send().map_err(Reason::from_code)? == 0 {
            return Ok(false);
        }
        let datagram = OutgoingDatagram {
            data: buf.to_vec(),
            remote_address: to.map(sys::to_wasi),
        };
        match self.outgoing.send(&[datagram]).map_err(Reason::from_code)? {
            1 => Ok(true),
            _ => Err(Reason::Other("the host took no datagram".into())),
        }
    }

    /// Receives one datagram into `buf`; returns its length (cut to `buf`) and sender.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), Reason> {
        let deadline = deadline::instant(self.read_deadline);
        loop {
            if let Some(received) = self.try_recv(buf)? {
                return Ok(received);
            }
            if !sys::wait(&self.readable, deadline) {
                return Err(Reason::Timeout);
            }
        }
    }

    /// Receives one datagram into `buf` if one has arrived; `None`: wait for
    /// [`Datagrams::readable`].
    pub(crate) fn try_recv(&self, buf: &mut [u8]) -> Result<Option<(usize, SocketAddr)>, Reason> {
        let mut datagrams = self.incoming.receive(1).map_err(Reason::from_code)?;
        Ok(datagrams.pop().map(|datagram| {
            let n = datagram.data.len().min(buf.len());
            buf[..n].copy_from_slice(&datagram.data[..n]);
            (n, sys::from_wasi(datagram.remote_address))
        }))
    }

    /// Ready when a datagram has arrived (or the socket failed).
    pub(crate) fn readable(&self) -> &Pollable {
        &self.readable
    }

    /// Ready when the host takes a datagram to send.
    pub(crate) fn writable(&self) -> &Pollable {
        &self.writable
    }
}

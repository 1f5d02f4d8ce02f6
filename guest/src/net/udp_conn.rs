use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::addr::{EmptyHost, resolve};
use super::deadline::Deadline;
use super::options::UdpOptions;
use super::packet_conn::Datagrams;
use super::{Error, Reason};

/// Opens a UDP socket connected to `addr` (`1.2.3.4:53`, `[::1]:53` or `name:53`): it
/// sends only there and receives only from there. A name's first address is used.
pub fn dial_udp(addr: &str) -> Result<UdpConn, Error> {
    let remote = resolve("dial", "udp", addr, EmptyHost::Loopback)?[0];
    let unspecified: IpAddr = match remote {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let datagrams =
        Datagrams::bind(SocketAddr::new(unspecified, 0), Some(remote)).map_err(|code| {
            Error::new(
                "dial",
                "udp",
                Some(remote.to_string()),
                Reason::from_code(code),
            )
        })?;
    Ok(UdpConn { datagrams, remote })
}

/// A connected UDP socket: Go's `net.UDPConn` from `net.Dial("udp", …)`.
#[derive(Debug)]
pub struct UdpConn {
    datagrams: Datagrams,
    remote: SocketAddr,
}

impl UdpConn {
    /// Sends `buf` as one datagram to the peer.
    pub fn send(&self, buf: &[u8]) -> Result<usize, Error> {
        self.datagrams
            .send(buf, None)
            .map_err(|reason| self.error("write", reason))
    }

    /// Receives one datagram from the peer into `buf` (cut to fit) and returns its length.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize, Error> {
        self.datagrams
            .recv(buf)
            .map(|(n, _)| n)
            .map_err(|reason| self.error("read", reason))
    }

    /// Returns the socket's options: hop limit, buffer sizes.
    pub fn options(&self) -> UdpOptions<'_> {
        UdpOptions(&self.datagrams.socket)
    }

    /// Returns the local address, with the port the host chose.
    pub fn local_addr(&self) -> SocketAddr {
        self.datagrams.local
    }

    /// Returns the peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.datagrams.peer().unwrap_or(self.remote)
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

    fn error(&self, op: &'static str, reason: Reason) -> Error {
        Error::new(op, "udp", Some(self.remote.to_string()), reason)
    }
}

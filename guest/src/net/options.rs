use std::time::Duration;

use wasi::sockets::network::ErrorCode;
use wasi::sockets::tcp::TcpSocket;
use wasi::sockets::udp::UdpSocket;

use super::{Error, Reason};

/// The options `wasi:sockets` offers on a TCP socket, from [`Conn::options`] or
/// [`Listener::options`]: Go's `SetKeepAlive`, `SetKeepAlivePeriod`, `SetReadBuffer`, …
///
/// [`Conn::options`]: super::Conn::options
/// [`Listener::options`]: super::Listener::options
#[derive(Debug, Clone, Copy)]
pub struct TcpOptions<'a>(pub(crate) &'a TcpSocket);

/// The options `wasi:sockets` offers on a UDP socket, from [`PacketConn::options`] or
/// [`UdpConn::options`].
///
/// [`PacketConn::options`]: super::PacketConn::options
/// [`UdpConn::options`]: super::UdpConn::options
#[derive(Debug, Clone, Copy)]
pub struct UdpOptions<'a>(pub(crate) &'a UdpSocket);

fn get<T>(network: &'static str, got: Result<T, ErrorCode>) -> Result<T, Error> {
    got.map_err(|code| Error::new("get", network, None, Reason::from_code(code)))
}

fn set(network: &'static str, done: Result<(), ErrorCode>) -> Result<(), Error> {
    done.map_err(|code| Error::new("set", network, None, Reason::from_code(code)))
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl TcpOptions<'_> {
    /// Reports whether keep-alive probes are sent.
    pub fn keep_alive(&self) -> Result<bool, Error> {
        get("tcp", self.0.keep_alive_enabled())
    }

    /// Turns keep-alive probes on or off.
    pub fn set_keep_alive(&self, enabled: bool) -> Result<(), Error> {
        set("tcp", self.0.set_keep_alive_enabled(enabled))
    }

    /// Returns how long the connection idles before the first probe.
    pub fn keep_alive_idle(&self) -> Result<Duration, Error> {
        get("tcp", self.0.keep_alive_idle_time()).map(Duration::from_nanos)
    }

    /// Sets how long the connection idles before the first probe (at least 1 s).
    pub fn set_keep_alive_idle(&self, idle: Duration) -> Result<(), Error> {
        set("tcp", self.0.set_keep_alive_idle_time(nanos(idle)))
    }

    /// Returns the time between probes.
    pub fn keep_alive_interval(&self) -> Result<Duration, Error> {
        get("tcp", self.0.keep_alive_interval()).map(Duration::from_nanos)
    }

    /// Sets the time between probes (at least 1 s).
    pub fn set_keep_alive_interval(&self, interval: Duration) -> Result<(), Error> {
        set("tcp", self.0.set_keep_alive_interval(nanos(interval)))
    }

    /// Returns how many unanswered probes end the connection.
    pub fn keep_alive_count(&self) -> Result<u32, Error> {
        get("tcp", self.0.keep_alive_count())
    }

    /// Sets how many unanswered probes end the connection.
    pub fn set_keep_alive_count(&self, count: u32) -> Result<(), Error> {
        set("tcp", self.0.set_keep_alive_count(count))
    }

    /// Returns the hop limit (TTL) of outgoing packets.
    pub fn hop_limit(&self) -> Result<u8, Error> {
        get("tcp", self.0.hop_limit())
    }

    /// Sets the hop limit (TTL) of outgoing packets.
    pub fn set_hop_limit(&self, hops: u8) -> Result<(), Error> {
        set("tcp", self.0.set_hop_limit(hops))
    }

    /// Returns the receive buffer size, in bytes.
    pub fn read_buffer(&self) -> Result<u64, Error> {
        get("tcp", self.0.receive_buffer_size())
    }

    /// Asks for a receive buffer of `bytes` (the OS may round it).
    pub fn set_read_buffer(&self, bytes: u64) -> Result<(), Error> {
        set("tcp", self.0.set_receive_buffer_size(bytes))
    }

    /// Returns the send buffer size, in bytes.
    pub fn write_buffer(&self) -> Result<u64, Error> {
        get("tcp", self.0.send_buffer_size())
    }

    /// Asks for a send buffer of `bytes` (the OS may round it).
    pub fn set_write_buffer(&self, bytes: u64) -> Result<(), Error> {
        set("tcp", self.0.set_send_buffer_size(bytes))
    }

    /// Sets how many connections may wait to be accepted (a listener's backlog).
    pub fn set_backlog(&self, connections: u64) -> Result<(), Error> {
        set("tcp", self.0.set_listen_backlog_size(connections))
    }
}

impl UdpOptions<'_> {
    /// Returns the hop limit (TTL) of outgoing datagrams.
    pub fn hop_limit(&self) -> Result<u8, Error> {
        get("udp", self.0.unicast_hop_limit())
    }

    /// Sets the hop limit (TTL) of outgoing datagrams.
    pub fn set_hop_limit(&self, hops: u8) -> Result<(), Error> {
        set("udp", self.0.set_unicast_hop_limit(hops))
    }

    /// Returns the receive buffer size, in bytes.
    pub fn read_buffer(&self) -> Result<u64, Error> {
        get("udp", self.0.receive_buffer_size())
    }

    /// Asks for a receive buffer of `bytes` (the OS may round it).
    pub fn set_read_buffer(&self, bytes: u64) -> Result<(), Error> {
        set("udp", self.0.set_receive_buffer_size(bytes))
    }

    /// Returns the send buffer size, in bytes.
    pub fn write_buffer(&self) -> Result<u64, Error> {
        get("udp", self.0.send_buffer_size())
    }

    /// Asks for a send buffer of `bytes` (the OS may round it).
    pub fn set_write_buffer(&self, bytes: u64) -> Result<(), Error> {
        set("udp", self.0.set_send_buffer_size(bytes))
    }
}

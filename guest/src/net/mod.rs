//! A small library shaped like Go's `net`, over `wasi:sockets`.
//!
//! [`dial`] opens a [`Conn`], [`listen`] opens a [`Listener`] whose [`Listener::accept`]
//! hands out more of them; a [`Conn`] is `std::io::Read + Write`, half-closes with
//! [`Conn::close_write`] and closes when dropped. Every blocking call has a
//! non-blocking twin ([`Listener::try_accept`], [`Conn::try_read`],
//! [`Conn::try_write`], [`Conn::try_splice_echo`]) and a pollable saying when to try
//! again, so one guest can serve many connections from one `wasi:io/poll` loop. For UDP, [`listen_packet`] opens a
//! [`PacketConn`] that sends to and receives from any peer, and [`dial_udp`] a
//! [`UdpConn`] connected to one. Every failure is an [`Error`] that
//! prints as Go prints it: `dial tcp 10.0.0.1:80: access denied`.

mod addr;
mod backoff;
mod conn;
mod deadline;
mod error;
mod listener;
mod lookup;
mod options;
mod packet_conn;
mod poller;
#[cfg(test)]
mod tests;
mod udp_conn;

pub use addr::{EmptyHost, Target, split_host_port, target};
pub use backoff::Backoff;
pub use conn::{Conn, Spliced, dial, dial_timeout};
pub use deadline::Deadline;
pub use error::{Error, Reason};
pub use listener::{Listener, listen};
pub use lookup::lookup_host;
pub use options::{TcpOptions, UdpOptions};
pub use packet_conn::{PacketConn, listen_packet};
pub use poller::{Poller, Round};
pub use udp_conn::{UdpConn, dial_udp};

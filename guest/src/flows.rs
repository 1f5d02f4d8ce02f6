//! The `sockbox:net/flows` export: `dial` and `serve` as typed functions.
//!
//! [`net_error`] is the one place a [`net::Error`] becomes the WIT `net-error`.

use std::io::{self, Read, Write};

use crate::bindings::exports::sockbox::net::flows::NetError;
use crate::echo;
use crate::net::{self, Reason};
use crate::stdio;

/// The most `dial` returns of a reply.
const MAX_REPLY: u64 = 16 * 1024 * 1024;

/// Connects, sends `payload`, half-closes and returns the whole reply.
pub(crate) fn dial(addr: &str, payload: &[u8]) -> Result<Vec<u8>, NetError> {
    let mut conn = net::dial(addr).map_err(|err| net_error(&err))?;
    let mut reply = Vec::new();
    let exchanged = conn
        .write_all(payload)
        .and_then(|()| Ok(conn.close_write()?))
        .and_then(|()| (&mut conn).take(MAX_REPLY).read_to_end(&mut reply));
    exchanged.map_err(|err| io_net_error(&err))?;
    conn.close().map_err(|err| net_error(&err))?;
    Ok(reply)
}

/// Listens on `addr`, announces it, and echoes `max_conns` connections.
pub(crate) fn serve(addr: &str, max_conns: u32) -> Result<u32, NetError> {
    let listener = net::listen(addr).map_err(|err| net_error(&err))?;
    stdio::announce(listener.local_addr()).map_err(|err| io_net_error(&err))?;
    let served = echo::serve(&listener, Some(u64::from(max_conns)), echo::Mode::Splice)
        .map_err(|err| net_error(&err))?;
    Ok(u32::try_from(served).unwrap_or(u32::MAX))
}

/// Maps an I/O error from a `Conn` (which carries a [`net::Error`]) to `net-error`.
fn io_net_error(err: &io::Error) -> NetError {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<net::Error>())
    {
        Some(err) => net_error(err),
        None => NetError::Other(err.to_string()),
    }
}

/// Maps a guest network error to the WIT `net-error`: the one place that does so.
fn net_error(err: &net::Error) -> NetError {
    match err.reason() {
        Reason::AccessDenied => NetError::AccessDenied,
        Reason::ConnectionRefused => NetError::ConnectionRefused,
        Reason::ConnectionReset => NetError::ConnectionReset,
        Reason::ConnectionAborted => NetError::ConnectionAborted,
        Reason::AddressInUse => NetError::AddressInUse,
        Reason::AddressNotAvailable => NetError::AddressNotBindable,
        Reason::Unreachable => NetError::RemoteUnreachable,
        Reason::Timeout => NetError::Timeout,
        Reason::NoSuchHost => NetError::NameUnresolvable,
        Reason::TemporaryResolverFailure => NetError::TemporaryResolverFailure,
        Reason::ResolverFailure => NetError::PermanentResolverFailure,
        Reason::NotSupported => NetError::NotSupported,
        Reason::InvalidArgument => NetError::InvalidArgument,
        Reason::InvalidState => NetError::InvalidState,
        Reason::TooManySockets => NetError::NewSocketLimit,
        Reason::OutOfMemory => NetError::OutOfMemory,
        Reason::MessageTooLong => NetError::DatagramTooLarge,
        Reason::Address { .. } => NetError::InvalidAddress(err.to_string()),
        Reason::Lookup { cause, .. } => match **cause {
            Reason::NoSuchHost => NetError::NameUnresolvable,
            Reason::TemporaryResolverFailure => NetError::TemporaryResolverFailure,
            Reason::ResolverFailure => NetError::PermanentResolverFailure,
            _ => NetError::Other(err.to_string()),
        },
        Reason::BrokenPipe | Reason::Other(_) => NetError::Other(err.to_string()),
    }
}

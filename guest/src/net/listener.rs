use std::net::SocketAddr;

use wasi::io::poll::Pollable;
use wasi::sockets::network::ErrorCode;
use wasi::sockets::tcp::TcpSocket;
use wasi::sockets::tcp_create_socket::create_tcp_socket;

use super::addr::{EmptyHost, resolve};
use super::deadline::{self, Deadline};
use super::options::TcpOptions;
use super::{Conn, Error, Reason};
use crate::sys;

/// Announces on the local address `addr` (`127.0.0.1:0`, `[::1]:8080`, `:8080`, `localhost:0`).
///
/// Port 0 picks a free port; [`Listener::local_addr`] tells which.
pub fn listen(addr: &str) -> Result<Listener, Error> {
    let local = resolve("listen", "tcp", addr, EmptyHost::Unspecified)?[0];
    bind_and_listen(local).map_err(|code| {
        Error::new(
            "listen",
            "tcp",
            Some(local.to_string()),
            Reason::from_code(code),
        )
    })
}

fn bind_and_listen(local: SocketAddr) -> Result<Listener, ErrorCode> {
    let socket = create_tcp_socket(sys::family(&local))?;
    let network = sys::network();
    socket.start_bind(&network, sys::to_wasi(local))?;
    let ready = socket.subscribe();
    sys::retry(&ready, None, || socket.finish_bind())?;
    socket.start_listen()?;
    sys::retry(&ready, None, || socket.finish_listen())?;
    let local = sys::from_wasi(socket.local_address()?);
    Ok(Listener {
        ready,
        socket,
        local,
        deadline: None,
    })
}

/// A TCP listener.
#[derive(Debug)]
pub struct Listener {
    // The pollable is the socket's child, so it drops first.
    ready: Pollable,
    socket: TcpSocket,
    local: SocketAddr,
    deadline: Option<Deadline>,
}

impl Listener {
    /// Waits for the next connection and returns it.
    ///
    /// A connection its peer reset before it could be accepted is skipped, as Go skips it.
    pub fn accept(&self) -> Result<Conn, Error> {
        loop {
            let (socket, input, output) =
                sys::retry(&self.ready, deadline::instant(self.deadline), || {
                    self.socket.accept()
                })
                .map_err(|code| {
                    let reason = Reason::from_code(code);
                    Error::new("accept", "tcp", Some(self.local.to_string()), reason)
                })?;
            // Only a connection that is already gone has no addresses to ask for.
            if let Ok(conn) = Conn::new(socket, input, output) {
                return Ok(conn);
            }
        }
    }

    /// Accepts a connection that is already waiting, without waiting: `Ok(None)` when
    /// none is (wait for [`Listener::acceptable`]). Skips connections reset before
    /// they could be accepted, like [`Listener::accept`].
    pub fn try_accept(&self) -> Result<Option<Conn>, Error> {
        loop {
            match self.socket.accept() {
                Ok((socket, input, output)) => {
                    if let Ok(conn) = Conn::new(socket, input, output) {
                        return Ok(Some(conn));
                    }
                }
                Err(ErrorCode::WouldBlock) => return Ok(None),
                Err(code) => {
                    let reason = Reason::from_code(code);
                    return Err(Error::new(
                        "accept",
                        "tcp",
                        Some(self.local.to_string()),
                        reason,
                    ));
                }
            }
        }
    }

    /// Returns the pollable that is ready when [`Listener::try_accept`] has a
    /// connection (or an error) to return.
    pub fn acceptable(&self) -> &Pollable {
        &self.ready
    }

    /// Makes [`Listener::accept`] fail with `i/o timeout` once `deadline` passes
    /// (`None`: wait forever).
    pub fn set_deadline(&mut self, deadline: Option<Deadline>) {
        self.deadline = deadline;
    }

    /// Returns the socket's options: backlog, buffer sizes, keep-alive for accepted
    /// connections, hop limit.
    pub fn options(&self) -> TcpOptions<'_> {
        TcpOptions(&self.socket)
    }

    /// Returns the address the listener is bound to, with the real port when 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

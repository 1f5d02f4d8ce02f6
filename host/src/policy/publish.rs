//! Published ports: `HOST_PORT:GUEST_PORT[/tcp|/udp]`, as Docker's `-p` writes them.
//!
//! The guest binds GUEST_PORT as it wishes; the host binds HOST_PORT instead (0: a port
//! the system picks), and the guest still sees GUEST_PORT as its socket's local port.
//! So several instances can each listen on guest port 80, and a guest can listen below
//! 1024 without the host being privileged. The policy judges the guest's view.

use std::fmt;
use std::str::FromStr;

use super::Transport;

/// One published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Publish {
    /// The transport it publishes (`tcp` unless `/udp` is written).
    pub transport: Transport,
    /// The host's port; 0 asks the system for one when the guest binds.
    pub host_port: u16,
    /// The port the guest binds and sees.
    pub guest_port: u16,
}

/// A `--publish` that could not be read: what was written, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishError {
    text: String,
    why: String,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "publish `{}`: {}", self.text, self.why)
    }
}

impl std::error::Error for PublishError {}

impl PublishError {
    pub(super) fn new(publish: &Publish, why: String) -> Self {
        Self {
            text: publish.to_string(),
            why,
        }
    }
}

impl FromStr for Publish {
    type Err = PublishError;

    fn from_str(text: &str) -> Result<Self, PublishError> {
        let fail = |why: &str| PublishError {
            text: text.to_owned(),
            why: why.to_owned(),
        };
        let (ports, transport) = match text.rsplit_once('/') {
            Some((ports, "tcp")) => (ports, Transport::Tcp),
            Some((ports, "udp")) => (ports, Transport::Udp),
            Some(_) => return Err(fail("the transport after `/` must be tcp or udp")),
            None => (text, Transport::Tcp),
        };
        let Some((host, guest)) = ports.split_once(':') else {
            return Err(fail(
                "expected HOST_PORT:GUEST_PORT, for example 8080:80 or 0:80/udp",
            ));
        };
        let port = |text: &str, which: &str| {
            text.parse::<u16>()
                .map_err(|_| fail(&format!("`{text}` is not a {which} port (0-65535)")))
        };
        let host_port = port(host, "host")?;
        let guest_port = port(guest, "guest")?;
        if guest_port == 0 {
            return Err(fail(
                "the guest port cannot be 0: a bind to port 0 asks for any port, which is not published",
            ));
        }
        Ok(Self {
            transport,
            host_port,
            guest_port,
        })
    }
}

impl fmt::Display for Publish {
    /// `8080:80` for TCP, `0:53/udp` for UDP: as it is written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host_port, self.guest_port)?;
        match self.transport {
            Transport::Tcp => Ok(()),
            Transport::Udp => f.write_str("/udp"),
        }
    }
}

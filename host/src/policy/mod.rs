//! Network policy: which socket uses a guest may make.
//!
//! A [`Policy`] holds outbound rules (`--allow`: TCP connect) and inbound rules
//! (`--allow-listen`: bind, listen, and accepting peers once listening). A rule is
//! `SCHEME://HOST:PORTS` — today SCHEME is `tcp`, HOST an IPv4 address, `[IPv6]` or a
//! CIDR (`10.0.0.0/8`, `[fd00::]/8`), PORTS `N`, `A-B` or `*`. Nothing is allowed
//! unless a rule allows it.
//!
//! wasmtime-wasi asks [`Policy::allows`] about every socket use it reports; how each
//! [`SocketAddrUse`] is judged:
//!
//! | use | judged by |
//! |---|---|
//! | `TcpConnect` | an `--allow` rule matching the remote address |
//! | `TcpBind` to the unspecified address, port 0 | allowed when any `--allow` rule exists: it is the implicit bind before a connect, which is then judged itself |
//! | `TcpBind` (explicit) | an `--allow-listen` rule matching the local address |
//! | `TcpListen` | an `--allow-listen` rule matching the bound address |
//! | `TcpAccept` | allowed when any `--allow-listen` rule exists |
//! | `Udp*` | denied: no UDP rules yet |
//!
//! An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is judged as the IPv4 address it
//! carries. Port 0 ("any port") is matched only by `*`; the unspecified address only
//! by a host pattern that contains it (`0.0.0.0/0`, `0.0.0.0`).

mod denial;
mod rule;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

pub use denial::{Denial, DenialLog, UseKind};
pub use rule::{Rule, RuleError};
pub use wasmtime_wasi::sockets::SocketAddrUse;

/// A set of rules deciding every socket use of one guest instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    inherit: bool,
    connect: Vec<Rule>,
    listen: Vec<Rule>,
}

impl Policy {
    /// Returns a policy that allows nothing.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Returns a policy that allows every use, like `wasmtime run -S inherit-network`.
    pub fn inherit_network() -> Self {
        Self {
            inherit: true,
            ..Self::default()
        }
    }

    /// Adds an outbound rule: the guest may connect to what it matches.
    pub fn allow(mut self, rule: &str) -> Result<Self, RuleError> {
        self.connect.push(rule.parse()?);
        Ok(self)
    }

    /// Adds an inbound rule: the guest may bind and listen on what it matches, and accept peers.
    pub fn allow_listen(mut self, rule: &str) -> Result<Self, RuleError> {
        self.listen.push(rule.parse()?);
        Ok(self)
    }

    /// Reports whether the policy allows anything at all.
    pub fn is_empty(&self) -> bool {
        !self.inherit && self.connect.is_empty() && self.listen.is_empty()
    }

    /// Reports whether any TCP use could be allowed, so TCP is enabled in the sandbox.
    pub fn uses_tcp(&self) -> bool {
        !self.is_empty()
    }

    /// Reports whether any UDP use could be allowed, so UDP is enabled in the sandbox.
    pub fn uses_udp(&self) -> bool {
        self.inherit
    }

    /// Reports whether name lookups are allowed: when any rule is given.
    pub fn allows_name_lookup(&self) -> bool {
        !self.is_empty()
    }

    /// Decides one socket use.
    pub fn allows(&self, addr: SocketAddr, socket_use: SocketAddrUse) -> bool {
        if self.inherit {
            return true;
        }
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let any = |rules: &[Rule]| rules.iter().any(|rule| rule.matches(addr));
        match socket_use {
            SocketAddrUse::TcpConnect => any(&self.connect),
            SocketAddrUse::TcpBind if addr.ip().is_unspecified() && addr.port() == 0 => {
                !self.connect.is_empty() || any(&self.listen)
            }
            SocketAddrUse::TcpBind | SocketAddrUse::TcpListen => any(&self.listen),
            SocketAddrUse::TcpAccept => !self.listen.is_empty(),
            SocketAddrUse::UdpBind | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => false,
        }
    }
}

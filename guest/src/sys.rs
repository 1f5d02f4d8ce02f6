//! Raw helpers over the `wasi:sockets` and `wasi:io` bindings: the seed's `syscall`.
//!
//! Everything here is a thin, blocking shape over a non-blocking WASI call: try the
//! call, and while it answers `would-block`, wait on the socket's pollable.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use wasi::clocks::monotonic_clock::{self, Instant};
use wasi::io::poll::{self, Pollable};
use wasi::sockets::instance_network::instance_network;
use wasi::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
    Network,
};

/// Returns the network this instance was granted.
pub(crate) fn network() -> Network {
    instance_network()
}

/// Repeats `attempt` until it stops answering `would-block`, waiting on `ready` between
/// tries; answers `timeout` once `deadline` passes.
pub(crate) fn retry<T>(
    ready: &Pollable,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Result<T, ErrorCode>,
) -> Result<T, ErrorCode> {
    loop {
        match attempt() {
            Err(ErrorCode::WouldBlock) if !wait(ready, deadline) => {
                return Err(ErrorCode::Timeout);
            }
            Err(ErrorCode::WouldBlock) => {}
            done => return done,
        }
    }
}

/// Waits until `ready` is ready or `deadline` passes; returns `false` if it passed first.
pub(crate) fn wait(ready: &Pollable, deadline: Option<Instant>) -> bool {
    let Some(deadline) = deadline else {
        ready.block();
        return true;
    };
    let timer = monotonic_clock::subscribe_instant(deadline);
    // `poll` lists the indexes of the pollables that are ready.
    poll::poll(&[ready, &timer]).contains(&0) || ready.ready()
}

/// Returns the address family of `addr`.
pub(crate) fn family(addr: &SocketAddr) -> IpAddressFamily {
    match addr {
        SocketAddr::V4(_) => IpAddressFamily::Ipv4,
        SocketAddr::V6(_) => IpAddressFamily::Ipv6,
    }
}

/// Converts a std socket address to its WASI form.
pub(crate) fn to_wasi(addr: SocketAddr) -> IpSocketAddress {
    match addr {
        SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port: v4.port(),
                address: (a, b, c, d),
            })
        }
        SocketAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port: v6.port(),
                flow_info: v6.flowinfo(),
                address: (a, b, c, d, e, f, g, h),
                scope_id: v6.scope_id(),
            })
        }
    }
}

/// Converts a WASI socket address to its std form.
pub(crate) fn from_wasi(addr: IpSocketAddress) -> SocketAddr {
    match addr {
        IpSocketAddress::Ipv4(v4) => {
            let (a, b, c, d) = v4.address;
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), v4.port))
        }
        IpSocketAddress::Ipv6(v6) => {
            let (a, b, c, d, e, f, g, h) = v6.address;
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::new(a, b, c, d, e, f, g, h),
                v6.port,
                v6.flow_info,
                v6.scope_id,
            ))
        }
    }
}

/// Converts a WASI IP address to its std form.
pub(crate) fn ip_from_wasi(ip: IpAddress) -> std::net::IpAddr {
    match ip {
        IpAddress::Ipv4((a, b, c, d)) => Ipv4Addr::new(a, b, c, d).into(),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => Ipv6Addr::new(a, b, c, d, e, f, g, h).into(),
    }
}

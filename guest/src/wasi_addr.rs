//! The conversions between `std::net` addresses and `wasi:sockets` ones, written once
//! for WASI 0.2 (the `wasi` crate's `sockets::network`) and 0.3 (the `wasip3` crate's
//! `sockets::types`), whose address types have one shape in two crates.

/// Defines `family`, `to_wasi`, `from_wasi` and `ip_from_wasi` with visibility `$vis`
/// over the `IpAddress`, `IpAddressFamily`, `IpSocketAddress`, `Ipv4SocketAddress`
/// and `Ipv6SocketAddress` of module `$types`.
#[doc(hidden)]
#[macro_export]
macro_rules! wasi_address_conversions {
    ($vis:vis $($types:ident)::+) => {
        use $($types)::+::{
            IpAddress as WasiIpAddress, IpAddressFamily as WasiFamily,
            IpSocketAddress as WasiSocketAddress, Ipv4SocketAddress as WasiV4,
            Ipv6SocketAddress as WasiV6,
        };

        /// Returns the address family of `addr`.
        $vis fn family(addr: &::std::net::SocketAddr) -> WasiFamily {
            match addr {
                ::std::net::SocketAddr::V4(_) => WasiFamily::Ipv4,
                ::std::net::SocketAddr::V6(_) => WasiFamily::Ipv6,
            }
        }

        /// Converts a std socket address to its WASI form.
        $vis fn to_wasi(addr: ::std::net::SocketAddr) -> WasiSocketAddress {
            match addr {
                ::std::net::SocketAddr::V4(v4) => {
                    let [a, b, c, d] = v4.ip().octets();
                    WasiSocketAddress::Ipv4(WasiV4 {
                        port: v4.port(),
                        address: (a, b, c, d),
                    })
                }
                ::std::net::SocketAddr::V6(v6) => {
                    let [a, b, c, d, e, f, g, h] = v6.ip().segments();
                    WasiSocketAddress::Ipv6(WasiV6 {
                        port: v6.port(),
                        flow_info: v6.flowinfo(),
                        address: (a, b, c, d, e, f, g, h),
                        scope_id: v6.scope_id(),
                    })
                }
            }
        }

        /// Converts a WASI socket address to its std form.
        $vis fn from_wasi(addr: WasiSocketAddress) -> ::std::net::SocketAddr {
            match addr {
                WasiSocketAddress::Ipv4(v4) => {
                    let (a, b, c, d) = v4.address;
                    ::std::net::SocketAddr::new(::std::net::Ipv4Addr::new(a, b, c, d).into(), v4.port)
                }
                WasiSocketAddress::Ipv6(v6) => {
                    let (a, b, c, d, e, f, g, h) = v6.address;
                    ::std::net::SocketAddr::V6(::std::net::SocketAddrV6::new(
                        ::std::net::Ipv6Addr::new(a, b, c, d, e, f, g, h),
                        v6.port,
                        v6.flow_info,
                        v6.scope_id,
                    ))
                }
            }
        }

        /// Converts a WASI IP address to its std form.
        $vis fn ip_from_wasi(ip: WasiIpAddress) -> ::std::net::IpAddr {
            match ip {
                WasiIpAddress::Ipv4((a, b, c, d)) => ::std::net::Ipv4Addr::new(a, b, c, d).into(),
                WasiIpAddress::Ipv6((a, b, c, d, e, f, g, h)) => {
                    ::std::net::Ipv6Addr::new(a, b, c, d, e, f, g, h).into()
                }
            }
        }
    };
}

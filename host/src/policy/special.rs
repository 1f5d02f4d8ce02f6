//! Special addresses: places a sandboxed guest should not reach even when a wide rule
//! (`*`, `0.0.0.0/0`) or `--inherit-network` lets it reach everything else — cloud
//! metadata endpoints, link-local, multicast, limited broadcast, and the unspecified
//! address as a target (which Linux takes as "this host").
//!
//! An address is special in every spelling that reaches the same IPv4 address: itself,
//! IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (the well-known
//! prefix `64:ff9b::/96`) or 6to4 (`2002:AABB:CCDD::/48`). A special address is allowed
//! only by a rule that names it, or a network inside its range, explicitly (see
//! [`Special::explicit`]); `--allow-special` turns the preset off.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Serialize;

/// Why an address is special: its range, most specific first (a metadata endpoint is
/// also link-local, and is called a metadata endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Special {
    /// A cloud metadata endpoint: 169.254.169.254 (AWS, GCP, Azure, …), fd00:ec2::254
    /// (AWS over IPv6), 100.100.100.200 (Alibaba Cloud).
    Metadata,
    /// Link-local: 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// Multicast: 224.0.0.0/4, ff00::/8.
    Multicast,
    /// The limited broadcast address, 255.255.255.255.
    Broadcast,
    /// The unspecified address (`0.0.0.0`, `::`) as a target: Linux connects it to the
    /// host itself.
    Unspecified,
}

const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(100, 100, 100, 200),
];
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

const fn v4(addr: Ipv4Addr, len: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(addr, len))
}

const fn v6(addr: Ipv6Addr, len: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new_assert(addr, len))
}

const METADATA: [IpNet; 3] = [
    v4(METADATA_V4[0], 32),
    v4(METADATA_V4[1], 32),
    v6(METADATA_V6, 128),
];
const LINK_LOCAL: [IpNet; 2] = [
    v4(Ipv4Addr::new(169, 254, 0, 0), 16),
    v6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
];
const MULTICAST: [IpNet; 2] = [
    v4(Ipv4Addr::new(224, 0, 0, 0), 4),
    v6(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
];
const BROADCAST: [IpNet; 1] = [v4(Ipv4Addr::BROADCAST, 32)];
const UNSPECIFIED: [IpNet; 2] = [
    v4(Ipv4Addr::UNSPECIFIED, 32),
    v6(Ipv6Addr::UNSPECIFIED, 128),
];

impl Special {
    /// Every kind, most specific first.
    pub const ALL: [Self; 5] = [
        Self::Metadata,
        Self::LinkLocal,
        Self::Multicast,
        Self::Broadcast,
        Self::Unspecified,
    ];

    /// The preset's name for this kind, as `policy explain` and the audit give it:
    /// `special:metadata`, `special:link-local`, …
    pub fn rule_name(self) -> &'static str {
        match self {
            Self::Metadata => "special:metadata",
            Self::LinkLocal => "special:link-local",
            Self::Multicast => "special:multicast",
            Self::Broadcast => "special:broadcast",
            Self::Unspecified => "special:unspecified",
        }
    }

    /// The networks of this kind.
    pub fn networks(self) -> &'static [IpNet] {
        match self {
            Self::Metadata => &METADATA,
            Self::LinkLocal => &LINK_LOCAL,
            Self::Multicast => &MULTICAST,
            Self::Broadcast => &BROADCAST,
            Self::Unspecified => &UNSPECIFIED,
        }
    }

    /// Returns the kind of special address `ip` is, in any spelling, or `None`.
    pub fn of(ip: IpAddr) -> Option<Self> {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => Self::of_v6(v6).or_else(|| embedded_v4(v6).and_then(Self::of_v4)),
        }
    }

    fn of_v4(ip: Ipv4Addr) -> Option<Self> {
        Some(if METADATA_V4.contains(&ip) {
            Self::Metadata
        } else if ip.is_link_local() {
            Self::LinkLocal
        } else if ip.is_multicast() {
            Self::Multicast
        } else if ip.is_broadcast() {
            Self::Broadcast
        } else if ip.is_unspecified() {
            Self::Unspecified
        } else {
            return None;
        })
    }

    fn of_v6(ip: Ipv6Addr) -> Option<Self> {
        Some(if ip == METADATA_V6 {
            Self::Metadata
        } else if ip.is_unicast_link_local() {
            Self::LinkLocal
        } else if ip.is_multicast() {
            Self::Multicast
        } else if ip.is_unspecified() {
            Self::Unspecified
        } else {
            return None;
        })
    }

    /// Returns the kind of special range the whole network `net` lies in, in any
    /// spelling, or `None` (a network reaching past a special range, such as
    /// `0.0.0.0/0`, lies in none).
    pub fn of_net(net: IpNet) -> Option<Self> {
        let within = |net: IpNet| {
            Self::ALL.into_iter().find(|kind| {
                kind.networks()
                    .iter()
                    .any(|range| range.contains(&net.trunc()))
            })
        };
        match net {
            IpNet::V4(_) => within(net),
            IpNet::V6(v6) => within(net).or_else(|| embedded_v4_net(v6).and_then(within)),
        }
    }

    /// Reports whether a rule's network `net` names this kind of special address
    /// explicitly: the network lies inside a range of this very kind. So
    /// `169.254.0.0/16` names link-local addresses but not the metadata endpoint in
    /// it; `169.254.169.254` names the endpoint; `*`, `0.0.0.0/0` and `[::]/0` name none.
    pub fn explicit(self, net: IpNet) -> bool {
        Self::of_net(net) == Some(self)
    }
}

impl fmt::Display for Special {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rule_name())
    }
}

/// The IPv4 address an IPv6 address carries, in the spellings that reach it:
/// IPv4-mapped, IPv4-compatible (`::a.b.c.d`, with `a` not 0, so `::1` stays loopback),
/// NAT64's well-known prefix, and 6to4.
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = ip.to_bits();
    let low = Ipv4Addr::from_bits(bits as u32);
    let segments = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if (bits >> 32 == 0 && low.octets()[0] != 0) || bits >> 32 == NAT64_PREFIX >> 32 {
        // IPv4-compatible, or NAT64: the IPv4 address in the low 32 bits.
        Some(low)
    } else if segments[0] == 0x2002 {
        Some(Ipv4Addr::from_bits((bits >> 80) as u32))
    } else {
        None
    }
}

/// `64:ff9b::/96`, NAT64's well-known prefix (RFC 6052).
const NAT64_PREFIX: u128 = 0x0064_ff9b_0000_0000_0000_0000_0000_0000;

/// The IPv4 network an IPv6 network carries whole, in the spellings of
/// [`embedded_v4`]: `[64:ff9b::a9fe:0]/112` is 169.254.0.0/16.
pub(super) fn embedded_v4_net(net: Ipv6Net) -> Option<IpNet> {
    let len = net.prefix_len();
    let addr = net.network();
    let bits = addr.to_bits();
    let (v4, v4_len) = if addr.to_ipv4_mapped().is_some() && len >= 96 {
        (bits as u32, len - 96)
    } else if (bits >> 32 == 0 || bits >> 32 == NAT64_PREFIX >> 32) && len >= 96 {
        // IPv4-compatible: only networks of addresses whose first octet is not 0.
        if bits >> 32 == 0 && (len < 104 || (bits as u32) >> 24 == 0) {
            return None;
        }
        (bits as u32, len - 96)
    } else if addr.segments()[0] == 0x2002 && len >= 16 {
        ((bits >> 80) as u32, (len - 16).min(32))
    } else {
        return None;
    };
    Ipv4Net::new(Ipv4Addr::from_bits(v4), v4_len)
        .ok()
        .map(|net| IpNet::V4(net.trunc()))
}

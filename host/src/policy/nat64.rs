//! NAT64 prefixes (RFC 6052): IPv6 networks whose addresses carry an IPv4 address, for
//! a translator to reach it. The well-known `64:ff9b::/96` is always known (see
//! [`embedded_v4`](super::embedded_v4)); a network's own prefixes are given by
//! its operator (`nat64_prefixes`, `--nat64-prefix`).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::Ipv6Net;

/// A network-specific NAT64 prefix: `64:ff9b:1::/48`, of one of the lengths RFC 6052
/// allows (32, 40, 48, 56, 64 or 96 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nat64Prefix(Ipv6Net);

/// The prefix lengths RFC 6052 defines an embedding for.
const LENGTHS: [u8; 6] = [32, 40, 48, 56, 64, 96];

impl Nat64Prefix {
    /// Returns the prefix for `net`, if its length is one RFC 6052 allows.
    pub fn new(net: Ipv6Net) -> Result<Self, String> {
        if !LENGTHS.contains(&net.prefix_len()) {
            return Err(format!(
                "`{net}` is not a NAT64 prefix: its length must be 32, 40, 48, 56, 64 or 96 (RFC 6052)"
            ));
        }
        Ok(Self(net.trunc()))
    }

    /// Returns the IPv4 address `ip` carries under this prefix, or `None` if `ip` is
    /// not in it. Bits 64 to 71 (RFC 6052's `u` octet) are skipped, and the suffix
    /// after the IPv4 address is not looked at: a deny must hold whatever a guest
    /// puts there.
    pub fn carried(&self, ip: Ipv6Addr) -> Option<Ipv4Addr> {
        if !self.0.contains(&ip) {
            return None;
        }
        let octets = ip.octets();
        // The IPv4 address's octets begin right after the prefix and skip octet 8.
        let start = usize::from(self.0.prefix_len() / 8);
        let mut v4 = [0u8; 4];
        let positions = (start..16).filter(|&i| i != 8);
        for (slot, i) in v4.iter_mut().zip(positions) {
            *slot = octets[i];
        }
        Some(Ipv4Addr::from(v4))
    }

    /// Returns the network, as IPv6.
    pub fn net(&self) -> Ipv6Net {
        self.0
    }
}

impl FromStr for Nat64Prefix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let net: Ipv6Net = text.trim().parse().map_err(|_| {
            format!("`{text}` is not a NAT64 prefix: write an IPv6 network, e.g. 64:ff9b:1::/48")
        })?;
        Self::new(net)
    }
}

impl fmt::Display for Nat64Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6052's own examples (section 2.4): 192.0.2.33 under each prefix length.
    #[test]
    fn every_length_carries_rfc_6052s_examples() {
        let cases = [
            ("2001:db8::/32", "2001:db8:c000:221::"),
            ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
            ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
            ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
            ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
            ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
        ];
        for (prefix, ip) in cases {
            let prefix: Nat64Prefix = prefix.parse().expect("a prefix");
            let ip: Ipv6Addr = ip.parse().expect("an address");
            assert_eq!(
                prefix.carried(ip),
                Some(Ipv4Addr::new(192, 0, 2, 33)),
                "{prefix} {ip}"
            );
        }
    }

    /// An address outside the prefix carries nothing; a length RFC 6052 does not
    /// define, or a text that is no IPv6 network, is refused with one line.
    #[test]
    fn outside_addresses_and_bad_prefixes() {
        let prefix: Nat64Prefix = "64:ff9b:1::/48".parse().expect("a prefix");
        assert_eq!(
            prefix.carried("64:ff9b:2::a00:5".parse().expect("ip")),
            None
        );
        assert_eq!(
            "64:ff9b:1::/47".parse::<Nat64Prefix>(),
            Err("`64:ff9b:1::/47` is not a NAT64 prefix: its length must be 32, 40, 48, 56, 64 or 96 (RFC 6052)".to_owned())
        );
        assert!(
            "10.0.0.0/8"
                .parse::<Nat64Prefix>()
                .is_err_and(|err| err.contains("write an IPv6 network"))
        );
    }
}

//! A node's pod CIDR: parsing and the addresses in it (pure).

use std::net::Ipv4Addr;

/// An IPv4 network such as 10.88.3.0/24.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

/// Why a CIDR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pod CIDR {0:?}: expected an IPv4 network with a prefix of /16 to /28, e.g. 10.88.3.0/24")]
pub struct CidrError(pub String);

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let bad = || CidrError(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let network: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        if !(16..=28).contains(&prefix) || u32::from(network) & !mask(prefix) != 0 {
            return Err(bad());
        }
        Ok(Cidr { network, prefix })
    }

    /// A network of any prefix from /8 to /32 (a cluster's pod range, a
    /// route), e.g. 10.88.0.0/16.
    pub fn parse_range(s: &str) -> Result<Cidr, CidrError> {
        let bad = || CidrError(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let network: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        if !(8..=32).contains(&prefix) || u32::from(network) & !mask(prefix) != 0 {
            return Err(bad());
        }
        Ok(Cidr { network, prefix })
    }

    /// The gateway: the first address, held by the node's bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Addresses pods may have: everything but network, gateway, broadcast.
    pub fn pod_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        let base = u32::from(self.network);
        let size = 1u32 << (32 - self.prefix);
        (2..size - 1).map(move |i| Ipv4Addr::from(base + i))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_lists_addresses() {
        let c = Cidr::parse("10.88.3.0/24").unwrap();
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 88, 3, 1));
        let all: Vec<_> = c.pod_addresses().collect();
        assert_eq!(all.first(), Some(&Ipv4Addr::new(10, 88, 3, 2)));
        assert_eq!(all.last(), Some(&Ipv4Addr::new(10, 88, 3, 254)));
        assert_eq!(all.len(), 253);
        assert!(c.contains(Ipv4Addr::new(10, 88, 3, 77)));
        assert!(!c.contains(Ipv4Addr::new(10, 88, 4, 1)));
        assert_eq!(c.to_string(), "10.88.3.0/24");
    }

    #[test]
    fn ranges_take_wider_prefixes() {
        let c = Cidr::parse_range("10.0.0.0/8").unwrap();
        assert!(c.contains(Ipv4Addr::new(10, 88, 3, 1)));
        assert!(Cidr::parse_range("10.88.0.0/8").is_err());
        assert!(Cidr::parse_range("10.88.3.7/32").is_ok());
    }

    #[test]
    fn refuses_what_is_not_a_network() {
        for bad in [
            "10.88.3.1/24",
            "10.88.3.0",
            "10.88.3.0/8",
            "10.88.3.0/30",
            "x/24",
            "10.88.3.0/x",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}

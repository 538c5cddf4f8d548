//! IPv4 CIDR blocks: parsing as EC2 accepts them, containment and overlap for subnet
//! placement, and address counts as EC2 reports them.

use std::fmt;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: u32,
    pub len: u8,
}

impl Cidr {
    /// `a.b.c.d/n`, decimal octets, `n` in 0..=32. Host bits may be set; see `is_network`.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, len) = s.split_once('/')?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: u8 = len.parse().ok()?;
        if len > 32 {
            return None;
        }
        let mut addr: u32 = 0;
        let mut parts = 0;
        for part in ip.split('.') {
            if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let octet: u32 = part.parse().ok()?;
            if octet > 255 {
                return None;
            }
            addr = (addr << 8) | octet;
            parts += 1;
        }
        (parts == 4).then_some(Cidr { addr, len })
    }

    pub fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len)
        }
    }

    /// True when no host bits are set (`10.0.0.0/16`, not `10.0.0.1/16`).
    pub fn is_network(&self) -> bool {
        self.addr & !self.mask() == 0
    }

    pub fn first(&self) -> u32 {
        self.addr & self.mask()
    }

    pub fn last(&self) -> u32 {
        self.first() | !self.mask()
    }

    pub fn contains(&self, other: &Cidr) -> bool {
        other.len >= self.len && self.first() <= other.first() && other.last() <= self.last()
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// Usable addresses in a subnet: AWS reserves the first four and the last one.
    pub fn available_addresses(&self) -> i64 {
        (1i64 << (32 - self.len as u32)) - 5
    }

    /// The VPC router's address in a subnet (the first after the network address), which
    /// is the tasks' gateway on Berth's bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first() + 1)
    }

    /// The addresses a task may get: all but AWS's four reserved at the start and the
    /// broadcast address at the end.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let (first, last) = (self.first() as u64, self.last() as u64);
        (first + 4..last).map(|a| Ipv4Addr::from(a as u32))
    }

    pub fn contains_ip(&self, ip: Ipv4Addr) -> bool {
        let a = u32::from(ip);
        self.first() <= a && a <= self.last()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.addr;
        write!(
            f,
            "{}.{}.{}.{}/{}",
            a >> 24,
            (a >> 16) & 255,
            (a >> 8) & 255,
            a & 255,
            self.len
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let c = Cidr::parse("172.31.0.0/16").unwrap();
        assert_eq!(c.to_string(), "172.31.0.0/16");
        assert!(c.is_network());
        assert!(!Cidr::parse("10.0.0.1/16").unwrap().is_network());
        for bad in [
            "",
            "10.0.0.0",
            "10.0.0/16",
            "10.0.0.0/33",
            "10.0.0.256/8",
            "a.b.c.d/8",
            "10.0.0.0/",
            "10.0.0.0/+1",
            " 10.0.0.0/8",
        ] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn containment_and_overlap() {
        let vpc = Cidr::parse("10.0.0.0/16").unwrap();
        let a = Cidr::parse("10.0.1.0/24").unwrap();
        let b = Cidr::parse("10.0.1.128/25").unwrap();
        let c = Cidr::parse("10.1.0.0/24").unwrap();
        assert!(vpc.contains(&a) && vpc.contains(&b) && !vpc.contains(&c));
        assert!(a.overlaps(&b) && b.overlaps(&a) && !a.overlaps(&c));
        assert!(!a.contains(&vpc));
    }

    #[test]
    fn counts_addresses_as_aws() {
        assert_eq!(
            Cidr::parse("172.31.0.0/20").unwrap().available_addresses(),
            4091
        );
        assert_eq!(
            Cidr::parse("10.0.0.0/24").unwrap().available_addresses(),
            251
        );
        assert_eq!(
            Cidr::parse("10.0.0.0/28").unwrap().available_addresses(),
            11
        );
    }
}

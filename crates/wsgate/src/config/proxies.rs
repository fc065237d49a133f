//! The proxy settings: `--trusted-proxies` (a list of CIDR blocks) and
//! `--proxy-protocol` (contract 3.1).
//!
//! Parsing is strict: every comma-separated entry must be an IPv4 or IPv6
//! address or a CIDR block (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`), with no
//! host bits set past the prefix (`10.0.0.1/8` is a typo for something, so it
//! is refused rather than guessed at) and no empty entry. IPv4-mapped IPv6
//! addresses (`::ffff:10.1.2.3`, how a dual-stack listener sees IPv4 peers)
//! match the IPv4 blocks.

use std::fmt;
use std::net::IpAddr;

/// One CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` (canonical: IPv4-mapped IPv6 is IPv4) is in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_eq(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_eq(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }

    /// Parses `ADDR` or `ADDR/PREFIX`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR block"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("`{text}`: the prefix must be 0-{max}")),
            },
        };
        let cidr = Cidr { addr, prefix };
        if cidr.network() != addr {
            return Err(format!(
                "`{text}` has host bits set; did you mean {}/{prefix}?",
                cidr.network()
            ));
        }
        Ok(cidr)
    }

    /// The block's first address.
    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let bits = u32::from(a) & mask32(self.prefix);
                IpAddr::V4(bits.into())
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a) & mask128(self.prefix);
                IpAddr::V6(bits.into())
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// Whether the first `prefix` bits of `a` and `b` are equal.
fn mask_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// The peers whose forwarding headers and PROXY headers are believed.
/// Empty (the default): no peer is trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses the comma list; the error names the bad entry.
    pub fn parse(text: &str) -> Result<TrustedProxies, String> {
        if text.trim().is_empty() {
            return Ok(TrustedProxies::default());
        }
        text.split(',')
            .map(|entry| {
                let entry = entry.trim();
                if entry.is_empty() {
                    return Err("empty entry in the list".to_owned());
                }
                Cidr::parse(entry)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Which PROXY protocol header the public listener requires first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyProtocol {
    /// No header; HTTP starts at the first byte.
    #[default]
    Off,
    /// The text header (`PROXY TCP4 ...\r\n`).
    V1,
    /// The binary header.
    V2,
    /// Either, told apart by the first bytes.
    Any,
}

impl ProxyProtocol {
    pub fn parse(text: &str) -> Option<ProxyProtocol> {
        match text.trim() {
            "off" => Some(ProxyProtocol::Off),
            "v1" => Some(ProxyProtocol::V1),
            "v2" => Some(ProxyProtocol::V2),
            "any" => Some(ProxyProtocol::Any),
            _ => None,
        }
    }

    pub fn accepts_v1(self) -> bool {
        matches!(self, ProxyProtocol::V1 | ProxyProtocol::Any)
    }

    pub fn accepts_v2(self) -> bool {
        matches!(self, ProxyProtocol::V2 | ProxyProtocol::Any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_match_their_addresses() {
        let t = TrustedProxies::parse("10.0.0.0/8, 192.0.2.7,fd00::/8,0.0.0.0/0").unwrap();
        assert!(t.contains(ip("10.255.1.2")));
        assert!(t.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6");
        assert!(t.contains(ip("fd12::1")));
        assert!(!t.contains(ip("fe80::1")));
        let t = TrustedProxies::parse("192.0.2.7,172.16.0.0/12").unwrap();
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("172.31.255.255")));
        assert!(!t.contains(ip("172.32.0.0")));
        assert!(!t.contains(ip("::1")));
        let t = TrustedProxies::parse("::/0").unwrap();
        assert!(t.contains(ip("2001:db8::1")));
        assert!(!t.contains(ip("127.0.0.1")), "::/0 is IPv6 only");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert_eq!(
            TrustedProxies::parse("10.0.0.0/8,::1").unwrap().to_string(),
            "10.0.0.0/8,::1/128"
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.1/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0/8",
            "nginx",
            "10.0.0.0/8,",
            ",10.0.0.0/8",
            "10.0.0.0/8,,::1",
            "::1/129",
            "fd00::1/8",
            " / ",
        ] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad:?} is accepted");
        }
        let err = TrustedProxies::parse("10.0.0.1/8").unwrap_err();
        assert!(err.contains("10.0.0.0/8"), "{err}");
    }

    #[test]
    fn proxy_protocol_modes() {
        assert_eq!(ProxyProtocol::parse("v2"), Some(ProxyProtocol::V2));
        assert_eq!(ProxyProtocol::parse("V2"), None);
        assert!(ProxyProtocol::Any.accepts_v1() && ProxyProtocol::Any.accepts_v2());
        assert!(!ProxyProtocol::Off.accepts_v1() && !ProxyProtocol::V1.accepts_v2());
    }
}

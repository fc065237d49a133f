//! The PROXY protocol header (HAProxy's v1 text and v2 binary forms) that a
//! load balancer sends before anything else on a connection, carrying the
//! client's address (contract 3.1, `--proxy-protocol`).
//!
//! [`parse`] is a hand-written, allocation-free parser over the bytes read
//! so far: it answers `Incomplete` until the header is whole, and fails as
//! soon as the bytes cannot start a valid header (so a client that sends
//! HTTP to a PROXY listener is refused at its first bytes). Bounds: a v1
//! line is at most 107 bytes (the spec's limit, CRLF included); a v2 header at
//! most 16 + [`MAX_V2_PAYLOAD`] bytes. v2's TLVs (after the addresses) must
//! be well-formed and are skipped. What each command gives:
//!
//! - v1 `TCP4`/`TCP6`, v2 `PROXY` over TCP/IPv4 or TCP/IPv6: the source
//!   address is the client's;
//! - v1 `UNKNOWN`, v2 `LOCAL` (the balancer's own health checks), v2 `PROXY`
//!   with an unspecified or Unix family: no address; the TCP peer counts;
//! - v2 over UDP, an unknown version, command or family: refused.
//!
//! [`read_header`] reads one header from a socket and returns the bytes read
//! past it (the start of HTTP). The fuzz target `proxy_header` runs [`parse`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::ProxyProtocol;

/// The v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included.
pub const V1_MAX: usize = 107;
/// The largest v2 payload (addresses and TLVs) accepted. The spec allows
/// 65535; real balancers send a few dozen bytes (AWS NLB's VPC endpoint TLV,
/// HAProxy's SSL TLVs), so a bigger one is refused rather than buffered.
pub const MAX_V2_PAYLOAD: usize = 4096;

/// Which form a header had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    pub version: Version,
    /// The client's address; `None` when the header carries none (v1
    /// `UNKNOWN`, v2 `LOCAL`, unspecified or Unix family).
    pub source: Option<SocketAddr>,
}

/// What the bytes so far amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A valid start: read more.
    Incomplete,
    /// A whole header, `len` bytes long.
    Complete { header: ProxyHeader, len: usize },
}

/// Why a connection's first bytes are not an acceptable PROXY header.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY protocol header")]
    Missing,
    #[error("PROXY protocol {0:?} header, but the listener is set to {1:?}")]
    WrongVersion(Version, ProxyProtocol),
    #[error("bad PROXY protocol header: {0}")]
    Malformed(&'static str),
    #[error("the connection ended inside the PROXY protocol header")]
    Closed,
    #[error("reading the PROXY protocol header")]
    Io(#[source] std::io::Error),
}

/// Parses the start of a connection under `mode` (not `Off`).
pub fn parse(buf: &[u8], mode: ProxyProtocol) -> Result<Parsed, ProxyError> {
    let Some(&first) = buf.first() else {
        return Ok(Parsed::Incomplete);
    };
    let version = match first {
        b'P' => Version::V1,
        b'\r' => Version::V2,
        _ => return Err(ProxyError::Missing),
    };
    let accepted = match version {
        Version::V1 => mode.accepts_v1(),
        Version::V2 => mode.accepts_v2(),
    };
    match (version, accepted) {
        (Version::V1, true) => parse_v1(buf),
        (Version::V2, true) => parse_v2(buf),
        (v, false) => {
            // Tell a wrong version from something that is not PROXY at all.
            let prefix: &[u8] = match v {
                Version::V1 => b"PROXY ",
                Version::V2 => &V2_SIGNATURE,
            };
            let n = buf.len().min(prefix.len());
            if buf[..n] == prefix[..n] {
                Err(ProxyError::WrongVersion(v, mode))
            } else {
                Err(ProxyError::Missing)
            }
        }
    }
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    const PREFIX: &[u8] = b"PROXY ";
    let n = buf.len().min(PREFIX.len());
    if buf[..n] != PREFIX[..n] {
        return Err(ProxyError::Missing);
    }
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if buf.len() >= V1_MAX {
            return Err(ProxyError::Malformed("v1 line longer than 107 bytes"));
        }
        if window
            .iter()
            .any(|&b| b == b'\n' || !(0x20..0x7f).contains(&b))
        {
            return Err(ProxyError::Malformed("v1 line has a control byte"));
        }
        return Ok(Parsed::Incomplete);
    };
    if cr + 2 > V1_MAX {
        return Err(ProxyError::Malformed("v1 line longer than 107 bytes"));
    }
    // The same check as for an incomplete line, so a prefix never fails
    // where the whole line would pass.
    if buf[..cr].iter().any(|&b| !(0x20..0x7f).contains(&b)) {
        return Err(ProxyError::Malformed("v1 line has a control byte"));
    }
    let Some(&lf) = buf.get(cr + 1) else {
        return Ok(Parsed::Incomplete);
    };
    if lf != b'\n' {
        return Err(ProxyError::Malformed("v1 line not ended by CRLF"));
    }
    let line = std::str::from_utf8(&buf[PREFIX.len()..cr])
        .map_err(|_| ProxyError::Malformed("v1 line is not text"))?;
    let len = cr + 2;
    let mut fields = line.split(' ');
    let family = fields.next().unwrap_or("");
    if family == "UNKNOWN" {
        // The rest of the line, if any, is ignored (spec 2.1).
        return Ok(complete(Version::V1, None, len));
    }
    let v6 = match family {
        "TCP4" => false,
        "TCP6" => true,
        _ => {
            return Err(ProxyError::Malformed(
                "v1 protocol is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ProxyError::Malformed(
            "v1 line needs 4 fields after the protocol",
        ));
    };
    let ip = parse_v1_addr(src, v6)?;
    parse_v1_addr(dst, v6)?;
    let port = parse_port(sport)?;
    parse_port(dport)?;
    Ok(complete(Version::V1, Some(SocketAddr::new(ip, port)), len))
}

/// A v1 address of the line's family.
fn parse_v1_addr(text: &str, v6: bool) -> Result<IpAddr, ProxyError> {
    let ip = if v6 {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    ip.map_err(|_| ProxyError::Malformed("v1 address is not one of its family"))
}

/// A v1 port: 1-5 digits, no sign, no leading zero, at most 65535.
fn parse_port(text: &str) -> Result<u16, ProxyError> {
    let digits_ok = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    digits_ok
        .then(|| text.parse::<u16>().ok())
        .flatten()
        .ok_or(ProxyError::Malformed("v1 port is not 0-65535"))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(ProxyError::Missing);
    }
    if buf.len() < 16 {
        // Check what is there of the version byte early.
        if let Some(&vc) = buf.get(12) {
            check_version_command(vc)?;
        }
        return Ok(Parsed::Incomplete);
    }
    let local = check_version_command(buf[12])?;
    let family = buf[13];
    let payload = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if payload > MAX_V2_PAYLOAD {
        return Err(ProxyError::Malformed("v2 header longer than 4096 bytes"));
    }
    let len = 16 + payload;
    let Some(body) = buf.get(16..len) else {
        return Ok(Parsed::Incomplete);
    };
    // Address block length by family and transport (spec 2.2).
    let (addr_len, tcp) = match family {
        0x00 => (0, true),
        0x11 => (12, true),
        0x21 => (36, true),
        0x31 => (216, true),
        0x12 | 0x22 | 0x32 => (0, false),
        _ => return Err(ProxyError::Malformed("v2 family or transport unknown")),
    };
    if !local && !tcp {
        return Err(ProxyError::Malformed(
            "v2 datagram header on a TCP listener",
        ));
    }
    if local {
        // LOCAL: the addresses, if any, are ignored; TLVs are not checked.
        return Ok(complete(Version::V2, None, len));
    }
    let Some(addrs) = body.get(..addr_len) else {
        return Err(ProxyError::Malformed(
            "v2 length shorter than its addresses",
        ));
    };
    check_tlvs(&body[addr_len..])?;
    let source = match family {
        0x11 => {
            let ip = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
            let port = u16::from_be_bytes([addrs[8], addrs[9]]);
            Some(SocketAddr::new(IpAddr::V4(ip), port))
        }
        0x21 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addrs[..16]);
            let port = u16::from_be_bytes([addrs[32], addrs[33]]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        _ => None,
    };
    Ok(complete(Version::V2, source, len))
}

/// `true` for LOCAL, `false` for PROXY; an error for anything else.
fn check_version_command(byte: u8) -> Result<bool, ProxyError> {
    match byte {
        0x20 => Ok(true),
        0x21 => Ok(false),
        b if b >> 4 != 2 => Err(ProxyError::Malformed("v2 version is not 2")),
        _ => Err(ProxyError::Malformed("v2 command is not LOCAL or PROXY")),
    }
}

/// Each TLV (type, 2-byte length, value) must fit inside the header.
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), ProxyError> {
    while !tlvs.is_empty() {
        let Some(head) = tlvs.get(..3) else {
            return Err(ProxyError::Malformed("v2 TLV cut short"));
        };
        let len = 3 + usize::from(u16::from_be_bytes([head[1], head[2]]));
        let Some(rest) = tlvs.get(len..) else {
            return Err(ProxyError::Malformed("v2 TLV longer than the header"));
        };
        tlvs = rest;
    }
    Ok(())
}

fn complete(version: Version, source: Option<SocketAddr>, len: usize) -> Parsed {
    Parsed::Complete {
        header: ProxyHeader { version, source },
        len,
    }
}

/// Reads one header from `io`; returns it with the bytes read past it.
/// The caller bounds the time it may take.
pub async fn read_header<R: AsyncRead + Unpin>(
    io: &mut R,
    mode: ProxyProtocol,
) -> Result<(ProxyHeader, Bytes), ProxyError> {
    let mut buf = BytesMut::with_capacity(256);
    loop {
        match parse(&buf, mode)? {
            Parsed::Complete { header, len } => {
                let rest = buf.split_off(len).freeze();
                return Ok((header, rest));
            }
            Parsed::Incomplete => {
                // Read only what can still belong to the header, plus a
                // little: the excess is the start of HTTP, handed on.
                buf.reserve(512);
                if io.read_buf(&mut buf).await.map_err(ProxyError::Io)? == 0 {
                    return Err(ProxyError::Closed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

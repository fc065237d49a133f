//! The client's address behind proxies (contract 3.1).
//!
//! A leaf: the server resolves the address ([`resolve`]) and hands the
//! [`ClientAddr`] to the session, which keeps it for logs and events.
//!
//! A connection arrives from a *hop*: the TCP peer, or the source address of
//! its PROXY protocol header (see [`crate::server::proxy_protocol`]). When the hop is
//! not in `--trusted-proxies`, it is the client and forwarding headers are
//! ignored (anyone can write them). When it is trusted, the client is the
//! rightmost address of `X-Forwarded-For` that is not itself a trusted proxy
//! (each proxy appends the address it saw, so the entries right of the first
//! untrusted one were written by proxies we trust, and that one is the
//! client). Without `X-Forwarded-For`, `Forwarded: for=` is read the same way.
//!
//! Where the contract is silent: several header lines are read in order as
//! one list; a malformed or non-address entry (`unknown`, an obfuscated
//! `_hidden` name) ends the walk, and the client is then the nearest address
//! already walked (the trusted proxy that forwarded it); when every entry is
//! trusted, the leftmost is the client; a trusted hop without any forwarding
//! header is the client itself (e.g. a load balancer's own health checks).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HeaderName, FORWARDED};

use crate::config::TrustedProxies;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The address wsgate attributes a connection to: per-IP limits, logs and
/// webhook events use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client's address (canonical: IPv4-mapped IPv6 shown as IPv4).
    pub ip: IpAddr,
    /// The TCP peer the connection came from (a proxy, or the client).
    pub peer: SocketAddr,
}

impl ClientAddr {
    /// Whether the client is not the TCP peer (it came through a proxy).
    pub fn is_forwarded(&self) -> bool {
        self.ip != self.peer.ip().to_canonical()
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip.fmt(f)
    }
}

/// The client address of a request that came from `hop`.
pub fn resolve(hop: IpAddr, trusted: &TrustedProxies, headers: &HeaderMap) -> IpAddr {
    let hop = hop.to_canonical();
    if !trusted.contains(hop) {
        return hop;
    }
    let xff: Vec<&str> = header_entries(headers, &X_FORWARDED_FOR).collect();
    let entries: Vec<Option<IpAddr>> = if xff.is_empty() {
        header_entries(headers, &FORWARDED)
            .map(forwarded_for)
            .collect()
    } else {
        xff.into_iter().map(parse_node).collect()
    };
    let mut client = hop;
    for entry in entries.into_iter().rev() {
        let Some(ip) = entry else {
            return client;
        };
        client = ip.to_canonical();
        if !trusted.contains(client) {
            return client;
        }
    }
    client
}

/// The comma-separated entries of every line of `name`, in order. A line
/// that is not visible ASCII yields one bad entry, so it ends the walk.
fn header_entries<'a>(
    headers: &'a HeaderMap,
    name: &'static HeaderName,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
}

/// The address of one `Forwarded` element's `for=` parameter.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Some(parse_node(value))
    })?
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok());
        return port_ok.then(|| inside.parse().ok()).flatten();
    }
    text.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn trusted(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            resolve(ip("203.0.113.9"), &trusted(""), &h),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(ip("203.0.113.9"), &trusted("10.0.0.0/8"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_forwarded_address_is_the_client() {
        let t = trusted("10.0.0.0/8");
        let peer = ip("10.0.0.2");
        // A client-written (spoofed) entry on the left is not believed.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(resolve(peer, &t, &h), ip("198.51.100.7"));
        // Several lines are one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.8:5555, 10.1.1.1"),
        ]);
        assert_eq!(resolve(peer, &t, &h), ip("198.51.100.8"));
        // Every entry trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "10.3.3.3, 10.1.1.1")]);
        assert_eq!(resolve(peer, &t, &h), ip("10.3.3.3"));
        // No header: the trusted peer itself.
        assert_eq!(resolve(peer, &t, &HeaderMap::new()), peer);
        // A bad entry ends the walk at the nearest trusted proxy.
        let h = headers(&[("x-forwarded-for", "198.51.100.7, unknown, 10.1.1.1")]);
        assert_eq!(resolve(peer, &t, &h), ip("10.1.1.1"));
        let h = headers(&[("x-forwarded-for", "")]);
        assert_eq!(resolve(peer, &t, &h), peer);
        // IPv6 and IPv4-mapped forms.
        let h = headers(&[("x-forwarded-for", "[2001:db8::7]:443, ::ffff:10.1.1.1")]);
        assert_eq!(resolve(ip("::ffff:10.0.0.2"), &t, &h), ip("2001:db8::7"));
    }

    #[test]
    fn forwarded_is_read_without_x_forwarded_for() {
        let t = trusted("10.0.0.0/8");
        let peer = ip("10.0.0.2");
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.9.9.9;by=10.0.0.2",
        )]);
        assert_eq!(resolve(peer, &t, &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "for=_hidden, for=10.9.9.9")]);
        assert_eq!(resolve(peer, &t, &h), ip("10.9.9.9"));
        let h = headers(&[("forwarded", "proto=https;by=10.0.0.2")]);
        assert_eq!(
            resolve(peer, &t, &h),
            peer,
            "an element without for= ends the walk"
        );
        // X-Forwarded-For wins when both are present.
        let h = headers(&[
            ("forwarded", "for=198.51.100.1"),
            ("x-forwarded-for", "198.51.100.2"),
        ]);
        assert_eq!(resolve(peer, &t, &h), ip("198.51.100.2"));
    }

    #[test]
    fn node_forms() {
        assert_eq!(parse_node("192.0.2.1:80"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("[::1]"), Some(ip("::1")));
        assert_eq!(parse_node("[::1]:x"), None);
        assert_eq!(parse_node("[::1"), None);
        assert_eq!(parse_node("1.2.3.4.5"), None);
        assert_eq!(parse_node(""), None);
    }
}

//! The client's address behind proxies (contract 3.1), seen through the
//! per-IP connection limit: `X-Forwarded-For`/`Forwarded` from trusted peers
//! only, and the PROXY protocol header (v1 and v2) on the public listener.
//! The real nginx and HAProxy in front of the binary are in `tests/lb_proxy.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use wsgate::config::{ProxyProtocol, TrustedProxies};

/// A node that allows one connection per client address.
async fn node(trusted: &str, proxy: ProxyProtocol) -> TestNode {
    let mut cfg = config();
    cfg.max_connections_per_ip = 1;
    cfg.trusted_proxies = TrustedProxies::parse(trusted).unwrap();
    cfg.proxy_protocol = proxy;
    start(cfg).await
}

/// Opens a connection from the local address `from`, writes `preface` and an
/// upgrade for `user` with `headers`; the status (`None`: closed without an
/// answer). The socket is returned so an upgraded connection stays open.
async fn upgrade(
    to: SocketAddr,
    from: [u8; 4],
    preface: &[u8],
    user: &str,
    headers: &str,
) -> (Option<u16>, TcpStream) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let mut stream = tokio::time::timeout(T, socket.connect(to))
        .await
        .unwrap()
        .unwrap();
    let mut req = preface.to_vec();
    let upgrade: String = UPGRADE
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    req.extend_from_slice(
        format!(
            "GET /ws?token={} HTTP/1.1\r\nHost: {to}\r\n{upgrade}{headers}\r\n",
            token(user)
        )
        .as_bytes(),
    );
    // The server may close before reading it all (a refused PROXY header).
    let _ = stream.write_all(&req).await;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let status = tokio::time::timeout(T, async {
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return None,
            }
        }
        String::from_utf8_lossy(&head)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
    })
    .await
    .expect("an answer or a close within T");
    (status, stream)
}

fn v2_header(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&8080u16.to_be_bytes());
    h
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_peers() {
    let node = node("127.0.0.1", ProxyProtocol::Off).await;
    let p = node.public;
    let local = [127, 0, 0, 1];
    // Through the trusted proxy (127.0.0.1): one connection per forwarded client.
    let (a, _a) = upgrade(p, local, b"", "a", "X-Forwarded-For: 198.51.100.1\r\n").await;
    let (b, _b) = upgrade(p, local, b"", "b", "X-Forwarded-For: 198.51.100.2\r\n").await;
    assert_eq!(
        (a, b),
        (Some(101), Some(101)),
        "two clients behind one proxy"
    );
    // A spoofed entry on the left does not make a new client.
    let xff = "X-Forwarded-For: 203.0.113.9, 198.51.100.1\r\n";
    let (again, _) = upgrade(p, local, b"", "a2", xff).await;
    assert_eq!(again, Some(429), "the rightmost untrusted address counts");
    let fwd = "Forwarded: for=\"198.51.100.3:4711\";proto=http\r\n";
    let (c, _c) = upgrade(p, local, b"", "c", fwd).await;
    assert_eq!(c, Some(101), "Forwarded: for= without X-Forwarded-For");
    // An untrusted peer (127.0.0.2) is the client, whatever it writes.
    let spoof = "X-Forwarded-For: 198.51.100.50\r\n";
    let (d, _d) = upgrade(p, [127, 0, 0, 2], b"", "d", spoof).await;
    let spoof = "X-Forwarded-For: 198.51.100.51\r\n";
    let (e, _) = upgrade(p, [127, 0, 0, 2], b"", "e", spoof).await;
    assert_eq!(
        (d, e),
        (Some(101), Some(429)),
        "spoofed headers are ignored"
    );
}

#[tokio::test]
async fn the_proxy_protocol_header_carries_the_client_address() {
    let node = node("127.0.0.1", ProxyProtocol::Any).await;
    let p = node.public;
    let local = [127, 0, 0, 1];
    let v1 = |ip: &str| format!("PROXY TCP4 {ip} 127.0.0.1 5000 8080\r\n").into_bytes();
    let (a, _a) = upgrade(p, local, &v1("192.0.2.1"), "a", "").await;
    let (b, _b) = upgrade(p, local, &v2_header([192, 0, 2, 2], 6000), "b", "").await;
    assert_eq!(
        (a, b),
        (Some(101), Some(101)),
        "two clients behind one balancer"
    );
    let (again, _) = upgrade(p, local, &v2_header([192, 0, 2, 1], 6001), "a2", "").await;
    assert_eq!(again, Some(429), "the PROXY source is the client");
    // The balancer's own health check (v1 UNKNOWN) counts as the peer.
    let (hc, _) = upgrade(p, local, b"PROXY UNKNOWN\r\n", "hc", "").await;
    assert_eq!(hc, Some(101));
    assert_eq!(
        node.metric("wsgate_connections_rejected_total{reason=\"proxy\"}")
            .await,
        0.0
    );
}

#[tokio::test]
async fn connections_without_a_valid_proxy_header_are_closed_before_http() {
    let node = node("127.0.0.1", ProxyProtocol::V2).await;
    let p = node.public;
    // No header: HTTP straight away.
    let (plain, _) = upgrade(p, [127, 0, 0, 1], b"", "a", "").await;
    assert_eq!(plain, None, "closed without an HTTP answer");
    // The wrong version, and a header from a peer not trusted.
    let (v1, _) = upgrade(p, [127, 0, 0, 1], b"PROXY UNKNOWN\r\n", "b", "").await;
    assert_eq!(v1, None);
    let header = v2_header([192, 0, 2, 1], 5000);
    let (untrusted, _) = upgrade(p, [127, 0, 0, 2], &header, "c", "").await;
    assert_eq!(untrusted, None);
    assert_eq!(
        node.metric("wsgate_connections_rejected_total{reason=\"proxy\"}")
            .await,
        3.0
    );
    let (ok, _ok) = upgrade(p, [127, 0, 0, 1], &header, "d", "").await;
    assert_eq!(ok, Some(101));
    // A header that never comes is closed after the handshake timeout.
    let mut cfg = config();
    cfg.trusted_proxies = TrustedProxies::parse("127.0.0.0/8").unwrap();
    cfg.proxy_protocol = ProxyProtocol::Any;
    cfg.handshake_timeout = Duration::from_millis(300);
    let slow = start(cfg).await;
    let mut s = TcpStream::connect(slow.public).await.unwrap();
    s.write_all(b"PROXY TCP4 192.0").await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(T, s.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
    let m = "wsgate_connections_rejected_total{reason=\"proxy\"}";
    eventually("the timeout is counted", WAIT, || async {
        slow.metric(m).await == 1.0
    })
    .await;
}

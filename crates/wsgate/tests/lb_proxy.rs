//! The client address behind real load balancers (contract 3.1), seen
//! through `--max-connections-per-ip`: the `wsgate` binary behind a real
//! nginx (`X-Forwarded-For`) and a real HAProxy (`send-proxy-v2`), clients
//! on several 127.0.0.x source addresses. Spoofed forwarding headers are
//! ignored, and without a PROXY header a connection is refused and counted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::net::SocketAddr;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Opens a connection from `from` to `to`, writes `preface` and an upgrade
/// for `user` with `headers`; the status (`None`: closed without an answer)
/// and the socket, which keeps an upgraded connection open.
async fn upgrade(
    to: SocketAddr,
    from: [u8; 4],
    preface: &[u8],
    user: &str,
    headers: &str,
) -> (Option<u16>, TcpStream) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind((from, 0).into())
        .expect("bind a 127.0.0.x address");
    let mut stream = tokio::time::timeout(T, socket.connect(to))
        .await
        .expect("connect timed out")
        .expect("connect");
    let mut req = preface.to_vec();
    req.extend_from_slice(
        format!(
            "GET /ws?user={user} HTTP/1.1\r\nHost: {to}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{headers}\r\n"
        )
        .as_bytes(),
    );
    // A refused connection may be closed before the whole request is written.
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
    .expect("an answer or a close in time");
    (status, stream)
}

/// Statuses of `n` upgrades from `from`, kept open.
async fn upgrades(
    to: SocketAddr,
    from: [u8; 4],
    n: usize,
    headers: &str,
    open: &mut Vec<TcpStream>,
) -> Vec<Option<u16>> {
    let mut statuses = Vec::new();
    for i in 0..n {
        let user = format!("u{}-{i}", from[3]);
        let (status, stream) = upgrade(to, from, b"", &user, headers).await;
        statuses.push(status);
        open.push(stream);
    }
    statuses
}

const OK2_THEN_429: [Option<u16>; 3] = [Some(101), Some(101), Some(429)];

#[tokio::test]
async fn behind_nginx_each_client_has_its_own_per_ip_limit() {
    let redis = RedisServer::start().await;
    let flags = [
        "--trusted-proxies",
        "127.0.0.1",
        "--max-connections-per-ip",
        "2",
    ];
    let cluster = Cluster::start_on(redis, 1, &flags).await;
    let node = &cluster.nodes[0];
    let nginx = Nginx::start(&[node.public]).await;
    let lb: SocketAddr = ([127, 0, 0, 1], nginx.port).into();
    let mut open = Vec::new();
    // Two clients behind one nginx: each gets its own two connections.
    assert_eq!(
        upgrades(lb, [127, 0, 0, 2], 3, "", &mut open).await,
        OK2_THEN_429
    );
    assert_eq!(
        upgrades(lb, [127, 0, 0, 3], 2, "", &mut open).await,
        [Some(101), Some(101)],
        "a second client is not limited by the first"
    );
    // A client that writes its own X-Forwarded-For: nginx appends the real
    // address, which is the one that counts.
    let spoof = "X-Forwarded-For: 127.0.0.9\r\n";
    let (spoofed, _) = upgrade(lb, [127, 0, 0, 3], b"", "spoof", spoof).await;
    assert_eq!(spoofed, Some(429), "the spoofed entry is not the client");
    // Straight to the node from an untrusted peer: its headers are ignored.
    let mut statuses = Vec::new();
    for last in 5..8 {
        let spoof = format!("X-Forwarded-For: 127.0.0.{last}\r\n");
        let (status, stream) = upgrade(node.public, [127, 0, 0, 4], b"", "direct", &spoof).await;
        statuses.push(status);
        open.push(stream);
    }
    assert_eq!(statuses, OK2_THEN_429, "an untrusted peer is the client");
    assert_eq!(
        node.metric_required("wsgate_connections_rejected_total{reason=\"ip_limit\"}")
            .await,
        3.0
    );
}

#[tokio::test]
async fn behind_haproxy_send_proxy_v2_each_client_has_its_own_per_ip_limit() {
    let redis = RedisServer::start().await;
    let flags = [
        "--trusted-proxies",
        "127.0.0.1",
        "--proxy-protocol",
        "v2",
        "--max-connections-per-ip",
        "2",
    ];
    let cluster = Cluster::start_on(redis, 1, &flags).await;
    let node = &cluster.nodes[0];
    let haproxy = Haproxy::start(&[node.public]).await;
    let lb = haproxy.addr();
    let mut open = Vec::new();
    assert_eq!(
        upgrades(lb, [127, 0, 0, 2], 3, "", &mut open).await,
        OK2_THEN_429
    );
    assert_eq!(
        upgrades(lb, [127, 0, 0, 3], 2, "", &mut open).await,
        [Some(101), Some(101)]
    );
    // In PROXY mode forwarding headers do not name the client either.
    let spoof = "X-Forwarded-For: 127.0.0.9\r\n";
    let (spoofed, _) = upgrade(lb, [127, 0, 0, 3], b"", "spoof", spoof).await;
    assert_eq!(spoofed, Some(429));
    let rejected = "wsgate_connections_rejected_total{reason=\"proxy\"}";
    assert_eq!(node.metric_required(rejected).await, 0.0);
    // Without the header (straight to the node, from the trusted address):
    // closed before any HTTP is read, and counted.
    let (plain, _) = upgrade(node.public, [127, 0, 0, 1], b"", "plain", "").await;
    assert_eq!(plain, None, "no HTTP answer without a PROXY header");
    // A valid header from a peer that is not trusted: the same.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[192, 0, 2, 1, 127, 0, 0, 1, 0x13, 0x88, 0x1f, 0x90]);
    let (untrusted, _) = upgrade(node.public, [127, 0, 0, 2], &v2, "forged", "").await;
    assert_eq!(untrusted, None, "a PROXY header from an untrusted peer");
    assert_eq!(node.metric_required(rejected).await, 2.0);
    // The node still serves through the balancer.
    let (after, _after) = upgrade(lb, [127, 0, 0, 4], b"", "after", "").await;
    assert_eq!(after, Some(101));
}

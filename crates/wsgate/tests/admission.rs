//! Admission (contract 3.2): an upgrade holds a slot from its first byte until
//! it is answered; a keep-alive connection between requests holds none and is
//! closed when idle for the handshake timeout; one client address cannot take
//! every slot (`--max-pending-handshakes-per-ip`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A raw HTTP/1.1 connection that stays open between requests.
struct KeepAlive {
    stream: TcpStream,
    host: SocketAddr,
}

impl KeepAlive {
    /// Connects to `addr` from the local address `from`.
    async fn connect_from(from: IpAddr, addr: SocketAddr) -> KeepAlive {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind((from, 0).into()).expect("bind a local address");
        let stream = tokio::time::timeout(T, socket.connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        KeepAlive { stream, host: addr }
    }

    async fn connect(addr: SocketAddr) -> KeepAlive {
        Self::connect_from([127, 0, 0, 1].into(), addr).await
    }

    /// Sends `GET path` with `extra` header lines; reads the response head
    /// and its `content-length` body. `None` when the server closed first.
    async fn request(&mut self, path: &str, extra: &str) -> Option<(u16, String)> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{extra}\r\n", self.host);
        self.stream.write_all(req.as_bytes()).await.ok()?;
        tokio::time::timeout(T, read_response(&mut self.stream))
            .await
            .expect("the response timed out")
    }

    /// `GET /healthz`, keeping the connection open.
    async fn healthz(&mut self) -> Option<u16> {
        self.request("/healthz", "").await.map(|(s, _)| s)
    }

    /// A WebSocket upgrade for `user`; its status (101 on success).
    async fn upgrade(&mut self, user: &str) -> Option<(u16, String)> {
        let path = format!("/ws?token={}", token(user));
        let extra: String = UPGRADE
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        self.request(&path, &extra).await
    }

    /// Waits until the server closes the connection (EOF or reset).
    async fn closed_within(&mut self, limit: Duration) -> bool {
        let mut buf = [0u8; 1024];
        tokio::time::timeout(limit, async {
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await
        .is_ok()
    }
}

/// Reads one response: status and body (by `content-length`; none for 101).
async fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn keep_alive_pollers_do_not_block_upgrades() {
    let mut cfg = config();
    cfg.max_pending_handshakes = 8;
    let node = start(cfg).await;
    // Eight monitors poll /healthz over keep-alive connections: as many as
    // there are slots.
    let mut pollers = Vec::new();
    for _ in 0..8 {
        let mut p = KeepAlive::connect(node.public).await;
        assert_eq!(p.healthz().await, Some(200));
        pollers.push(p);
    }
    for round in 0..3 {
        // Upgrades are admitted while every poller's connection stays open.
        for i in 0..10 {
            let mut ws = KeepAlive::connect(node.public).await;
            let res = ws.upgrade(&format!("u{round}-{i}")).await;
            assert_eq!(
                res.as_ref().map(|r| r.0),
                Some(101),
                "upgrade {i} in round {round}: {res:?}"
            );
        }
        for p in &mut pollers {
            assert_eq!(p.healthz().await, Some(200), "the poller stays connected");
        }
    }
    assert_eq!(
        node.metric("wsgate_connections_rejected_total{reason=\"handshake_limit\"}")
            .await,
        0.0
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_handshake_timeout() {
    let mut cfg = config();
    cfg.handshake_timeout = Duration::from_millis(500);
    let node = start(cfg).await;
    let mut idle = KeepAlive::connect(node.public).await;
    assert_eq!(idle.healthz().await, Some(200));
    assert!(
        idle.closed_within(T).await,
        "an idle keep-alive connection is closed"
    );
    // A connection that keeps asking stays open: every request restarts the clock.
    let mut busy = KeepAlive::connect(node.public).await;
    for _ in 0..5 {
        assert_eq!(busy.healthz().await, Some(200));
    }
}

#[tokio::test]
async fn one_address_cannot_take_every_handshake_slot() {
    let mut cfg = config();
    // The per-IP default (32) is below the node's slots here.
    cfg.max_pending_handshakes = 40;
    let node = start(cfg).await;
    // 40 stalled half-upgrades from one address: 32 hold slots, the rest
    // are refused at once with the raw 503.
    let mut stalled = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let mut s = KeepAlive::connect(node.public).await;
        s.stream
            .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        stalled.push(s);
    }
    // A held slot answers nothing until the handshake timeout (10 s); a
    // refused request has its 503 at once.
    let answers = futures_util::future::join_all(stalled.iter_mut().map(|s| async move {
        let mut byte = [0u8; 1];
        let peek = tokio::time::timeout(Duration::from_millis(500), s.stream.peek(&mut byte));
        match peek.await {
            Ok(Ok(n)) if n > 0 => Some(read_response(&mut s.stream).await),
            _ => None,
        }
    }))
    .await;
    for res in answers.into_iter().flatten() {
        let (status, body) = res.expect("a refusal is a full response");
        assert_eq!(status, 503);
        assert!(body.contains("\"unavailable\""), "{body}");
        refused += 1;
    }
    assert_eq!(
        refused, 8,
        "past 32 pending handshakes, one address is refused"
    );
    assert_eq!(
        node.metric("wsgate_connections_rejected_total{reason=\"handshake_ip_limit\"}")
            .await,
        8.0
    );
    // Another address still gets in.
    let mut other = KeepAlive::connect_from([127, 0, 0, 2].into(), node.public).await;
    let res = other.upgrade("other").await;
    assert_eq!(res.as_ref().map(|r| r.0), Some(101), "{res:?}");
    // And the first address gets in again once its stalled requests go.
    drop(stalled);
    let public = node.public;
    eventually("the address's slots are released", WAIT, || async move {
        let mut again = KeepAlive::connect(public).await;
        again.upgrade("again").await.is_some_and(|r| r.0 == 101)
    })
    .await;
}

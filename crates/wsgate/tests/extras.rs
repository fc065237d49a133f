//! Behaviour where the contract is silent or that the server adds beyond it:
//! the handshake admission limit and timeout, `iss`/`aud`/`iat` checks,
//! close handshakes started by the client, the demo page, and session ids.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn pending_handshakes_are_limited_and_time_out() {
    let mut cfg = config();
    cfg.max_pending_handshakes = 1;
    cfg.handshake_timeout = Duration::from_millis(300);
    let node = start(cfg).await;
    // A request begun and not finished holds the only handshake slot (a
    // connection that has sent nothing holds none: contract 3.2)...
    let mut idle = TcpStream::connect(node.public).await.unwrap();
    idle.write_all(b"GET /ws HTTP/1.1\r\n").await.unwrap();
    let public = node.public;
    eventually(
        "a second connection is refused with a raw 503",
        WAIT,
        || async move {
            let res = http(public, "GET", "/healthz", &[], None).await;
            res.status == 503
        },
    )
    .await;
    let res = http(node.public, "GET", "/healthz", &[], None).await;
    if res.status == 503 {
        res.assert_error(503, "unavailable");
        assert_eq!(res.header("retry-after"), Some("1"));
    }
    assert!(
        node.metric("wsgate_connections_rejected_total{reason=\"handshake_limit\"}")
            .await
            >= 1.0
    );
    // ...until the handshake timeout closes it.
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(T, idle.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the idle connection is closed by the handshake timeout: {read:?}"
    );
    eventually("the slot is free again", WAIT, || async move {
        http(public, "GET", "/healthz", &[], None).await.status == 200
    })
    .await;
    node.connect("a").await;
    // The admin listener is never limited.
    assert_eq!(
        http(node.admin, "GET", "/healthz", &[], None).await.status,
        200
    );
}

#[tokio::test]
async fn issuer_audience_and_iat_are_checked() {
    let mut cfg = config();
    cfg.jwt_issuer = Some("https://auth.example".into());
    cfg.jwt_audience = Some("wsgate".into());
    let node = start(cfg).await;
    let exp = now_secs() + 3600;
    let good = token_claims(&json!({
        "sub": "a", "exp": exp, "iss": "https://auth.example", "aud": "wsgate"
    }));
    assert_eq!(node.connect_token(&good).await.unwrap().welcome().user, "a");
    for claims in [
        json!({"sub": "a", "exp": exp, "aud": "wsgate"}),
        json!({"sub": "a", "exp": exp, "iss": "https://evil.example", "aud": "wsgate"}),
        json!({"sub": "a", "exp": exp, "iss": "https://auth.example"}),
        json!({"sub": "a", "exp": exp, "iss": "https://auth.example", "aud": "other"}),
    ] {
        let err = node.connect_token(&token_claims(&claims)).await.err();
        assert_eq!(err.and_then(|e| e.status()), Some(401), "{claims}");
    }
    // Without those settings, `iat` far in the future is refused too.
    let node = start(config()).await;
    let t = token_claims(&json!({"sub": "a", "exp": exp, "iat": now_secs() + 3600}));
    let err = node.connect_token(&t).await.err();
    assert_eq!(err.and_then(|e| e.status()), Some(401));
    let t = token_claims(&json!({"sub": "a", "exp": exp, "iat": now_secs() - 10}));
    node.connect_token(&t).await.unwrap();
}

#[tokio::test]
async fn a_client_close_is_answered_and_counted() {
    let node = start(config()).await;
    let mut c = node.connect("a").await;
    c.request(join("r")).await.unwrap();
    let info = c.close(1000).await.unwrap();
    assert_eq!(
        info.code,
        Some(1000),
        "the server echoes the client's close"
    );
    eventually("the disconnect is counted", WAIT, || async {
        node.metric("wsgate_disconnects_total{code=\"1000\"}").await == 1.0
            && node.metric("wsgate_connections").await == 0.0
            && node.metric("wsgate_rooms").await == 0.0
    })
    .await;
    // Application codes are counted as `client`, a vanished peer as 1006.
    let mut c = node.connect("a").await;
    assert_eq!(c.close(4000).await.unwrap().code, Some(4000));
    drop(node.connect("b").await);
    eventually("both ends are counted", WAIT, || async {
        let m = node.metrics().await;
        metric_value(&m, "wsgate_disconnects_total{code=\"client\"}") == Some(1.0)
            && metric_value(&m, "wsgate_disconnects_total{code=\"1006\"}") == Some(1.0)
    })
    .await;
}

#[tokio::test]
async fn sessions_are_unique_and_the_demo_page_is_served() {
    let node = start(config()).await;
    let a = node.connect("a").await;
    let b = node.connect("a").await;
    assert_ne!(a.welcome().session, b.welcome().session);
    let res = http(node.public, "GET", "/", &[], None).await;
    assert_eq!(res.status, 200);
    assert!(res.header("content-type").unwrap().starts_with("text/html"));
    http(node.public, "GET", "/../Cargo.toml", &[], None)
        .await
        .assert_error(404, "not_found");
    http(node.admin, "GET", "/", &[], None)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn a_token_expiring_in_the_far_future_is_served_normally() {
    let node = start(config()).await;
    let t = token_claims(&json!({"sub": "forever", "exp": u64::MAX}));
    let mut c = node.connect_token(&t).await.unwrap();
    let r = c.request(json!({"type": "ping"})).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(node.node.hub().user_connections("forever"), 1);
    c.close(1000).await.unwrap();
    eventually("the connection is unregistered", WAIT, || async {
        node.node.hub().user_connections("forever") == 0
    })
    .await;
}

#[tokio::test]
async fn the_server_pings_and_large_api_messages_reach_clients() {
    let mut cfg = config();
    cfg.ping_interval = std::time::Duration::from_millis(200);
    let node = start(cfg).await;
    // A raw client sees the server's WebSocket pings.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        node.ws_url(),
    )
    .unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", token("raw")).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let saw_ping = tokio::time::timeout(T, async {
        use futures_util::StreamExt;
        while let Some(Ok(m)) = ws.next().await {
            if m.is_ping() {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(saw_ping.ok(), Some(true));

    // The API accepts bodies up to api-max-body-bytes (1 MiB by default),
    // larger than a client's frame limit: such a message must still be written.
    let mut c = node.connect("big").await;
    let content = "x".repeat(900 * 1024);
    let res = node
        .api(
            "POST",
            "/api/v1/publish",
            Some(&json!({"to": "big", "content": content})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let m = c.next_message(T).await.unwrap();
    assert_eq!(m.content.as_str().map(str::len), Some(900 * 1024));
}

/// Upgrades a raw TCP connection and returns it after the 101.
async fn raw_ws(node: &TestNode) -> TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = TcpStream::connect(node.public).await.unwrap();
    let mut req = format!("GET /ws HTTP/1.1\r\nHost: {}\r\n", node.public);
    for (k, v) in UPGRADE {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Authorization: Bearer {}\r\n\r\n", token("raw")));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(T, s.read_exact(&mut byte))
            .await
            .unwrap()
            .unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    s
}

/// Reads server frames until a close frame; returns its code.
async fn close_code(s: &mut TcpStream) -> Option<u16> {
    loop {
        let mut h = [0u8; 2];
        tokio::time::timeout(T, s.read_exact(&mut h))
            .await
            .ok()?
            .ok()?;
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).await.ok()?;
            len = u64::from(u16::from_be_bytes(l));
        } else if len == 127 {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).await.ok()?;
            len = u64::from_be_bytes(l);
        }
        let mut payload = vec![0u8; len as usize];
        s.read_exact(&mut payload).await.ok()?;
        if h[0] & 0x0f == 0x8 {
            return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007_and_bad_framing_with_1002() {
    use tokio::io::AsyncWriteExt;
    let node = start(config()).await;
    // A masked text frame (zero mask) holding invalid UTF-8.
    let mut s = raw_ws(&node).await;
    s.write_all(&[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe])
        .await
        .unwrap();
    assert_eq!(close_code(&mut s).await, Some(1007));
    // An unmasked client frame is a protocol violation.
    let mut s = raw_ws(&node).await;
    s.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    assert_eq!(close_code(&mut s).await, Some(1002));
    // Others are unaffected.
    node.connect("fine").await;
}

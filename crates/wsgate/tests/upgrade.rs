//! The public and admin listeners, the `/ws` upgrade and every refusal before
//! it (contract sections 1 and 3), token verification (HS256, RS256, ES256,
//! `alg: none`, key confusion, expiry, `nbf`), anonymous mode, the origin
//! policy and both subprotocols.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use wsgate::config::{Config, OriginPolicy};
use wsgate_client::{Codec, Options};

/// A raw upgrade request to the public listener with extra headers.
async fn upgrade_raw(node: &TestNode, path: &str, extra: &[(&str, &str)]) -> Response {
    let mut headers: Vec<(&str, &str)> = UPGRADE.to_vec();
    headers.extend_from_slice(extra);
    http(node.public, "GET", path, &headers, None).await
}

#[tokio::test]
async fn health_and_readiness_on_both_listeners_and_routes_stay_apart() {
    let node = start(config()).await;
    for addr in [node.public, node.admin] {
        let res = http(addr, "GET", "/healthz", &[], None).await;
        assert_eq!(res.status, 200);
        let res = http(addr, "GET", "/readyz", &[], None).await;
        assert_eq!(res.status, 200, "{}", res.text());
    }
    // /metrics and the API only on admin; /ws only on public.
    http(node.public, "GET", "/metrics", &[], None)
        .await
        .assert_error(404, "not_found");
    http(node.public, "GET", "/api/v1/nodes", &[], None)
        .await
        .assert_error(404, "not_found");
    assert_eq!(upgrade_raw_admin(&node).await.status, 404);
    assert_eq!(
        http(node.admin, "GET", "/metrics", &[], None).await.status,
        200
    );
}

async fn upgrade_raw_admin(node: &TestNode) -> Response {
    let auth = format!("Bearer {}", token("alice"));
    let mut headers: Vec<(&str, &str)> = UPGRADE.to_vec();
    headers.push(("Authorization", &auth));
    http(node.admin, "GET", "/ws", &headers, None).await
}

#[tokio::test]
async fn welcome_is_the_first_frame_with_every_field() {
    let mut c = config();
    c.max_message_bytes = 4096;
    let node = start(c).await;
    let client = node.connect("alice").await;
    let w = client.welcome();
    assert_eq!(w.user, "alice");
    assert_eq!(w.node, node.node.id());
    assert_eq!(w.protocol, "wsgate.v1");
    assert_eq!(w.ping_interval_ms, 25_000);
    assert_eq!(w.max_message_bytes, 4096);
    assert!(w.session.starts_with(node.node.id()), "{}", w.session);
    // No subprotocol offered: JSON, and none echoed.
    assert_eq!(client.codec(), Codec::Json);
    assert_eq!(client.subprotocol(), None);
}

#[tokio::test]
async fn bad_upgrade_requests_get_400() {
    let node = start(config()).await;
    let auth = format!("Bearer {}", token("alice"));
    // A plain GET, not an upgrade.
    http(node.public, "GET", "/ws", &[("Authorization", &auth)], None)
        .await
        .assert_error(400, "bad_request");
    // Wrong WebSocket version.
    let res = http(
        node.public,
        "GET",
        "/ws",
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "8"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Authorization", &auth),
        ],
        None,
    )
    .await;
    res.assert_error(400, "bad_request");
    // No subprotocol of ours.
    upgrade_raw(
        &node,
        "/ws",
        &[
            ("Authorization", &auth),
            ("Sec-WebSocket-Protocol", "chat.v2"),
        ],
    )
    .await
    .assert_error(400, "bad_request");
    // Token both in the header and the query.
    let path = format!("/ws?token={}", token("alice"));
    upgrade_raw(&node, &path, &[("Authorization", &auth)])
        .await
        .assert_error(400, "bad_request");
    assert!(
        node.metric("wsgate_connections_rejected_total{reason=\"bad_request\"}")
            .await
            >= 4.0
    );
}

#[tokio::test]
async fn missing_invalid_and_expired_tokens_get_401() {
    let node = start(config()).await;
    upgrade_raw(&node, "/ws", &[])
        .await
        .assert_error(401, "unauthorized");
    let expired = token_claims(&json!({"sub": "alice", "exp": now_secs() - 10}));
    let not_yet = token_claims(&json!({
        "sub": "alice", "exp": now_secs() + 3600, "nbf": now_secs() + 600
    }));
    let no_exp = token_claims(&json!({"sub": "alice"}));
    let no_sub = token_claims(&json!({"exp": now_secs() + 3600}));
    let bad_sub = token_claims(&json!({"sub": "a b", "exp": now_secs() + 3600}));
    let wrong_secret = jsonwebtoken::encode(
        &Header::default(),
        &json!({"sub": "alice", "exp": now_secs() + 3600}),
        &EncodingKey::from_secret(b"another secret"),
    )
    .unwrap();
    for (what, token) in [
        ("garbage", "not.a.jwt".to_owned()),
        ("expired", expired),
        ("nbf in the future", not_yet),
        ("no exp", no_exp),
        ("no sub", no_sub),
        ("invalid sub", bad_sub),
        ("wrong secret", wrong_secret),
        (
            "alg none",
            alg_none(&json!({"sub": "alice", "exp": now_secs() + 3600})),
        ),
    ] {
        let auth = format!("Bearer {token}");
        let res = upgrade_raw(&node, "/ws", &[("Authorization", &auth)]).await;
        assert_eq!(res.status, 401, "{what}: {}", res.text());
        res.assert_error(401, "unauthorized");
    }
    let err = node
        .connect_token(&token_claims(
            &json!({"sub": "alice", "exp": now_secs() - 10}),
        ))
        .await
        .err()
        .expect("refused");
    assert_eq!(err.status(), Some(401));
    assert!(
        node.metric("wsgate_connections_rejected_total{reason=\"unauthorized\"}")
            .await
            >= 9.0
    );
    // The node still accepts good tokens, in the header or the query.
    node.connect("alice").await;
    let url = format!("{}?token={}", node.ws_url(), token("bob"));
    let c = node.connect_with(Options::new(url)).await.unwrap();
    assert_eq!(c.welcome().user, "bob");
}

fn alg_none(claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}

/// Generates a key pair with the `openssl` CLI; returns (private, public) PEM paths.
fn keypair(dir: &Path, kind: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let private = dir.join(format!("{kind}.key"));
    let public = dir.join(format!("{kind}.pub"));
    let opts: &[&str] = match kind {
        k if k.starts_with("rsa") => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        _ => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    };
    let ok = Command::new("openssl")
        .arg("genpkey")
        .args(opts)
        .arg("-out")
        .arg(&private)
        .status()
        .expect("the openssl CLI is needed to generate test keys")
        .success();
    assert!(ok, "openssl genpkey failed");
    let ok = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl pkey failed");
    (private, public)
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("sign")
}

#[tokio::test]
async fn rs256_and_es256_tokens_from_a_pem_key_file() {
    let dir = temp_dir("keys");
    let claims = json!({"sub": "carol", "exp": now_secs() + 3600});
    for (kind, alg) in [("rsa", Algorithm::RS256), ("ec", Algorithm::ES256)] {
        let (private, public) = keypair(&dir, kind);
        let pem = std::fs::read(&private).unwrap();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        let mut c = config();
        c.jwt_secret = None;
        c.jwt_public_key_file = Some(public.clone());
        let node = start(c).await;
        let client = node.connect_token(&sign(alg, &key, &claims)).await;
        assert_eq!(client.expect("accepted").welcome().user, "carol", "{kind}");

        // An HS256 token is refused when only a public key is configured, even
        // one signed with the public key's bytes as the secret (key confusion).
        let public_pem = std::fs::read(&public).unwrap();
        for secret in [SECRET.as_bytes(), public_pem.as_slice()] {
            let hs = jsonwebtoken::encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(secret),
            )
            .unwrap();
            let err = node.connect_token(&hs).await.err().expect("refused");
            assert_eq!(err.status(), Some(401), "{kind}: {err}");
        }
        let none = node.connect_token(&alg_none(&claims)).await.err().unwrap();
        assert_eq!(none.status(), Some(401));
        let expired = sign(alg, &key, &json!({"sub": "carol", "exp": now_secs() - 5}));
        let err = node.connect_token(&expired).await.err().unwrap();
        assert_eq!(err.status(), Some(401));
    }
    // A token of the other algorithm family is refused.
    let (rsa_private, _) = keypair(&dir, "rsa2");
    let (_, ec_public) = keypair(&dir, "ec2");
    let mut c = config();
    c.jwt_public_key_file = Some(ec_public);
    let node = start(c).await;
    let rsa = EncodingKey::from_rsa_pem(&std::fs::read(rsa_private).unwrap()).unwrap();
    let err = node
        .connect_token(&sign(Algorithm::RS256, &rsa, &claims))
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), Some(401));
    // HS256 still works when a secret is configured too.
    node.connect("dave").await;
}

#[tokio::test]
async fn origin_policy() {
    // Unset: no Origin, or an origin whose host is the request's Host.
    let node = start(config()).await;
    let same = format!("http://{}", node.public);
    node.connect_with(node.opts("a").header("Origin", same))
        .await
        .expect("same host");
    node.connect("a").await;
    let auth = format!("Bearer {}", token("a"));
    upgrade_raw(
        &node,
        "/ws",
        &[("Authorization", &auth), ("Origin", "http://evil.example")],
    )
    .await
    .assert_error(403, "forbidden");
    assert_eq!(
        node.metric("wsgate_connections_rejected_total{reason=\"origin\"}")
            .await,
        1.0
    );

    let mut c = config();
    c.allowed_origins = OriginPolicy::List(vec!["https://app.example".into()]);
    let node = start(c).await;
    node.connect_with(node.opts("a").header("Origin", "https://app.example"))
        .await
        .expect("listed");
    let err = node
        .connect_with(node.opts("a").header("Origin", "https://other.example"))
        .await
        .err()
        .unwrap();
    assert_eq!(err.status(), Some(403));

    let mut c = config();
    c.allowed_origins = OriginPolicy::Any;
    let node = start(c).await;
    node.connect_with(node.opts("a").header("Origin", "https://anything.example"))
        .await
        .expect("any");
}

#[tokio::test]
async fn too_many_connections_from_one_ip_get_429() {
    let mut c = config();
    c.max_connections_per_ip = 2;
    let node = start(c).await;
    let mut first = node.connect("a").await;
    let _second = node.connect("b").await;
    let auth = format!("Bearer {}", token("c"));
    upgrade_raw(&node, "/ws", &[("Authorization", &auth)])
        .await
        .assert_error(429, "too_many_connections");
    assert_eq!(
        node.metric("wsgate_connections_rejected_total{reason=\"ip_limit\"}")
            .await,
        1.0
    );
    first.close(1000).await.unwrap();
    let url = node.ws_url();
    eventually("a slot frees up", WAIT, || {
        let url = url.clone();
        async move {
            wsgate_client::Client::connect(Options::new(url).token(token("c")))
                .await
                .is_ok()
        }
    })
    .await;
}

#[tokio::test]
async fn a_full_node_answers_503() {
    let mut c = config();
    c.max_connections = 1;
    let node = start(c).await;
    let _a = node.connect("a").await;
    let auth = format!("Bearer {}", token("b"));
    upgrade_raw(&node, "/ws", &[("Authorization", &auth)])
        .await
        .assert_error(503, "unavailable");
    assert_eq!(
        node.metric("wsgate_connections_rejected_total{reason=\"node_full\"}")
            .await,
        1.0
    );
}

/// Settings for anonymous mode: no token secret, the user from the query.
fn anonymous() -> Config {
    let mut c = config();
    c.jwt_secret = None;
    c.allow_anonymous = true;
    c
}

#[tokio::test]
async fn anonymous_mode_takes_the_user_from_the_query() {
    let node = start(anonymous()).await;
    let url = format!("{}?user=alice", node.ws_url());
    let mut alice = node.connect_with(Options::new(url)).await.unwrap();
    assert_eq!(alice.welcome().user, "alice");
    let mut anon = node
        .connect_with(Options::new(node.ws_url()))
        .await
        .unwrap();
    let anon_user = anon.welcome().user.clone();
    assert!(anon_user.starts_with("anon-"), "{anon_user}");
    // Anonymous users hold the broadcast cap.
    let reply = anon
        .request(json!({"type": "broadcast", "content": "hi"}))
        .await
        .unwrap();
    assert!(reply.id.is_some());
    let m = alice.next_message(T).await.unwrap();
    assert_eq!(m.from, anon_user);
    let bad = upgrade_raw(&node, "/ws?user=a%20b", &[]).await;
    bad.assert_error(400, "bad_request");
}

#[tokio::test]
async fn json_and_msgpack_subprotocols() {
    let node = start(config()).await;
    let mut json_client = node
        .connect_with(node.opts("j").codec(Codec::Json))
        .await
        .unwrap();
    assert_eq!(json_client.subprotocol(), Some("wsgate.v1.json"));
    let mut mp = node
        .connect_with(node.opts("m").codec(Codec::Msgpack))
        .await
        .unwrap();
    assert_eq!(mp.subprotocol(), Some("wsgate.v1.msgpack"));
    assert_eq!(mp.welcome().user, "m");

    // Requests, replies and messages in MessagePack, content kept intact.
    let content = json!({"n": 42, "list": [1, "two", null, true], "f": 1.5});
    let reply = mp.request(send("j", content.clone())).await.unwrap();
    assert_eq!(reply.online, Some(true));
    let m = json_client.next_message(T).await.unwrap();
    assert_eq!(m.content, content);
    json_client
        .request(send("m", json!({"back": "at you"})))
        .await
        .unwrap();
    let m = mp.next_message(T).await.unwrap();
    assert_eq!(m.content, json!({"back": "at you"}));

    // Malformed MessagePack and a text frame on a msgpack connection are bad_request.
    mp.send_raw(Message::Binary(vec![0xc1, 0x00].into()))
        .await
        .unwrap();
    let e = mp.next_value(T).await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["code"], "bad_request");
    mp.send_raw(Message::Text("{\"type\":\"ping\"}".into()))
        .await
        .unwrap();
    assert_eq!(mp.next_value(T).await.unwrap()["code"], "bad_request");
    // `bin` content has no JSON equivalent: bad_request.
    let mut with_bin = vec![0x83, 0xa4];
    with_bin.extend_from_slice(b"type");
    with_bin.push(0xa4);
    with_bin.extend_from_slice(b"send");
    with_bin.push(0xa2);
    with_bin.extend_from_slice(b"to");
    with_bin.push(0xa1);
    with_bin.extend_from_slice(b"j");
    with_bin.push(0xa7);
    with_bin.extend_from_slice(b"content");
    with_bin.extend_from_slice(&[0xc4, 0x02, 0x01, 0x02]);
    mp.send_raw(Message::Binary(with_bin.into())).await.unwrap();
    assert_eq!(mp.next_value(T).await.unwrap()["code"], "bad_request");
    // The documented example bytes of {"type":"ping","ref":1}.
    let mut ping = vec![0x82, 0xa4];
    ping.extend_from_slice(b"type");
    ping.push(0xa4);
    ping.extend_from_slice(b"ping");
    ping.push(0xa3);
    ping.extend_from_slice(b"ref");
    ping.push(0x01);
    mp.send_raw(Message::Binary(ping.into())).await.unwrap();
    assert_eq!(
        mp.next_value(T).await.unwrap(),
        json!({"type": "pong", "ref": 1})
    );
    // A binary frame on a JSON connection too.
    json_client
        .send_raw(Message::Binary(b"{\"type\":\"ping\"}".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(
        json_client.next_value(T).await.unwrap()["code"],
        "bad_request"
    );
    // Both still work.
    mp.request(json!({"type": "ping"})).await.unwrap();
    json_client.request(json!({"type": "ping"})).await.unwrap();
}

#[tokio::test]
async fn the_server_picks_our_subprotocol_among_several_and_frames_are_binary() {
    let node = start(config()).await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        node.ws_url(),
    )
    .unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "chat.v2, wsgate.v1.msgpack".parse().unwrap(),
    );
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", token("x")).parse().unwrap(),
    );
    let (mut ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        res.headers().get("sec-websocket-protocol").unwrap(),
        "wsgate.v1.msgpack"
    );
    let first = tokio::time::timeout(T, ws.next()).await.unwrap().unwrap();
    let Ok(Message::Binary(bytes)) = first else {
        panic!("welcome must be a binary frame: {first:?}");
    };
    let welcome: Value = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(welcome["type"], "welcome");
    let ping = rmp_serde::to_vec_named(&json!({"type": "ping", "ref": 7})).unwrap();
    ws.send(Message::Binary(ping.into())).await.unwrap();
    let Ok(Message::Binary(bytes)) = tokio::time::timeout(T, ws.next()).await.unwrap().unwrap()
    else {
        panic!("pong must be binary");
    };
    let pong: Value = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(pong, json!({"type": "pong", "ref": 7}));
}

/// A masked client text frame (RFC 6455 5.3), for payloads under 126 bytes.
fn masked_text(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test]
async fn frames_sent_right_behind_the_upgrade_request_are_handled() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = start(anonymous()).await;
    let mut request = String::from("GET /ws?user=early HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in UPGRADE {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    // The request and two frames in one write: hyper reads them together,
    // and the frames must reach the session in order, none dropped.
    let mut bytes = request.into_bytes();
    bytes.extend(masked_text(br#"{"type":"ping","ref":"first"}"#));
    bytes.extend(masked_text(br#"{"type":"ping","ref":"second"}"#));
    let mut socket = tokio::net::TcpStream::connect(node.public).await.unwrap();
    socket.write_all(&bytes).await.unwrap();
    let mut seen = Vec::new();
    let read = tokio::time::timeout(T, async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = socket.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&chunk[..n]);
            if String::from_utf8_lossy(&seen).contains(r#""ref":"second""#) {
                return;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&seen);
    assert!(read.is_ok(), "no pong to the second early frame: {text}");
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    let first = text
        .find(r#""ref":"first""#)
        .expect("a pong to the first frame");
    let second = text.find(r#""ref":"second""#).unwrap();
    assert!(
        text.find("welcome").unwrap() < first && first < second,
        "{text}"
    );
}

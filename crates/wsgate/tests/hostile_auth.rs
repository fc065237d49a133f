//! Hostile clients at the door: forged and stale tokens (alg none, key
//! confusion, expired, not yet valid, wrong issuer or audience, two tokens at
//! once, an older token on refresh), spoofed origins and Host tricks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use jsonwebtoken::{EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{json, Value};
use support::{assert_unharmed, now_secs, token_with, try_upgrade, WsgateProc, SECRET};

const ISS: &str = "https://issuer.example";
const AUD: &str = "wsgate";

/// An RSA key pair: (private PEM, public PEM).
fn rsa_pair() -> (String, String) {
    let mut rng = rsa::rand_core::OsRng;
    let private = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("RSA key");
    let private_pem = private
        .to_pkcs1_pem(LineEnding::LF)
        .expect("PEM")
        .to_string();
    let public_pem = rsa::RsaPublicKey::from(&private)
        .to_public_key_pem(LineEnding::LF)
        .expect("public PEM");
    (private_pem, public_pem)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn good_claims(user: &str) -> Value {
    json!({"sub": user, "exp": now_secs() + 3600, "iss": ISS, "aud": AUD})
}

/// Starts a node with an HS256 secret, an RS256 public key, an issuer and an
/// audience; returns it with the RSA private key PEM and the public key PEM.
async fn server() -> (WsgateProc, String, String) {
    let (private_pem, public_pem) = rsa_pair();
    let dir = support::temp_dir("auth");
    let key_file = dir.join("public.pem");
    std::fs::write(&key_file, &public_pem).expect("write the key");
    let key_file = key_file.display().to_string();
    let server = WsgateProc::start(&[
        "--jwt-public-key-file",
        &key_file,
        "--jwt-issuer",
        ISS,
        "--jwt-audience",
        AUD,
    ])
    .await;
    (server, private_pem, public_pem)
}

async fn status_with_token(server: &WsgateProc, token: &str) -> (u16, Value) {
    let r = try_upgrade(server, &format!("/ws?token={token}"), &[]).await;
    (
        r.status,
        serde_json::from_str(&r.text()).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn forged_and_stale_tokens_get_401() {
    let (mut server, private_pem, public_pem) = server().await;
    let hs = |claims: &Value| token_with(SECRET.as_bytes(), claims);
    let rs = |claims: &Value| {
        jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::RS256),
            claims,
            &EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("RSA key"),
        )
        .expect("RS256 token")
    };
    // Controls: both keys work when everything is right.
    let mut bystander =
        support::Peer::connect(&server.ws_url(), Some(&hs(&good_claims("bystander"))), None)
            .await
            .expect("HS256 connects");
    assert_eq!(
        status_with_token(&server, &rs(&good_claims("rsa-user")))
            .await
            .0,
        101
    );

    let now = now_secs();
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(good_claims("mallory").to_string().as_bytes())
    );
    let none_with_sig = format!("{unsigned}c2lnbmF0dXJl");
    // Key confusion: HS256 with the RSA public key PEM as the HMAC secret.
    let confused = token_with(public_pem.as_bytes(), &good_claims("mallory"));
    let confused_der = token_with(
        public_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
            .as_bytes(),
        &good_claims("mallory"),
    );
    let cases = [
        ("alg none", unsigned),
        ("alg none with a signature", none_with_sig),
        ("HS256 signed with the public key PEM", confused),
        ("HS256 signed with the public key base64", confused_der),
        (
            "expired",
            hs(&json!({"sub": "m", "exp": now - 5, "iss": ISS, "aud": AUD})),
        ),
        (
            "expired RS256",
            rs(&json!({"sub": "m", "exp": now - 5, "iss": ISS, "aud": AUD})),
        ),
        (
            "not yet valid",
            hs(&json!({"sub": "m", "exp": now + 3600, "nbf": now + 600, "iss": ISS, "aud": AUD})),
        ),
        (
            "issued in the future",
            hs(&json!({"sub": "m", "exp": now + 3600, "iat": now + 3000, "iss": ISS, "aud": AUD})),
        ),
        (
            "wrong issuer",
            hs(&json!({"sub": "m", "exp": now + 3600, "iss": "https://evil.example", "aud": AUD})),
        ),
        (
            "no issuer",
            hs(&json!({"sub": "m", "exp": now + 3600, "aud": AUD})),
        ),
        (
            "wrong audience",
            rs(&json!({"sub": "m", "exp": now + 3600, "iss": ISS, "aud": "other"})),
        ),
        (
            "no audience",
            hs(&json!({"sub": "m", "exp": now + 3600, "iss": ISS})),
        ),
        ("no exp", hs(&json!({"sub": "m", "iss": ISS, "aud": AUD}))),
        (
            "bad sub",
            hs(&json!({"sub": "a\u{0}b", "exp": now + 3600, "iss": ISS, "aud": AUD})),
        ),
        (
            "wrong secret",
            token_with(b"guessed", &good_claims("mallory")),
        ),
        ("garbage", "a.b.c".into()),
    ];
    for (what, token) in &cases {
        let (status, body) = status_with_token(&server, token).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"], "unauthorized", "{what}: {body}");
    }
    let (_, body) = status_with_token(&server, &cases[4].1).await;
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{body}"
    );
    assert!(
        server
            .metric("wsgate_connections_rejected_total{reason=\"unauthorized\"}")
            .await
            >= cases.len() as f64
    );
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn only_configured_algorithms_are_accepted() {
    // A node with only an RSA key: any HS256 token (even one signed with the
    // public key PEM) is refused for its algorithm.
    let (private_pem, public_pem) = rsa_pair();
    let dir = support::temp_dir("rsa-only");
    let key_file = dir.join("public.pem");
    std::fs::write(&key_file, &public_pem).expect("write the key");
    let mut server =
        WsgateProc::start_raw(&["--jwt-public-key-file", &key_file.display().to_string()]).await;
    let rs_token = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::RS256),
        &json!({"sub": "bystander", "exp": now_secs() + 3600}),
        &EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("RSA key"),
    )
    .expect("token");
    let mut bystander = support::Peer::connect(&server.ws_url(), Some(&rs_token), None)
        .await
        .expect("RS256 connects");
    let claims = json!({"sub": "mallory", "exp": now_secs() + 3600});
    for token in [
        token_with(public_pem.as_bytes(), &claims),
        token_with(SECRET.as_bytes(), &claims),
    ] {
        let (status, body) = status_with_token(&server, &token).await;
        assert_eq!(status, 401, "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("not accepted")),
            "{body}"
        );
    }
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn a_token_in_both_header_and_query_is_400() {
    let mut server = WsgateProc::start(&[]).await;
    let mut bystander = server.bystander("bystander").await;
    let t = support::token("mallory");
    let auth = format!("Bearer {t}");
    let r = try_upgrade(
        &server,
        &format!("/ws?token={t}"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], "bad_request");
    // Even when the two are different tokens of different users.
    let other = support::token("eve");
    let r = try_upgrade(
        &server,
        &format!("/ws?token={other}"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        server
            .metric("wsgate_connections_rejected_total{reason=\"bad_request\"}")
            .await
            >= 2.0
    );
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn refresh_refuses_an_older_token_another_user_and_forgeries() {
    let mut server = WsgateProc::start(&[]).await;
    let mut bystander = server.bystander("bystander").await;
    let now = now_secs();
    let first = token_with(
        SECRET.as_bytes(),
        &json!({"sub": "alice", "exp": now + 600}),
    );
    let newer = token_with(
        SECRET.as_bytes(),
        &json!({"sub": "alice", "exp": now + 7200}),
    );
    let mut alice = support::Peer::connect(&server.ws_url(), Some(&first), None)
        .await
        .expect("connect");
    alice.send(&json!({"type": "refresh", "token": newer, "ref": 1}));
    let ok = alice.next().await;
    assert_eq!(
        (ok["type"].as_str(), ok["ok"].as_bool()),
        (Some("reply"), Some(true)),
        "{ok}"
    );
    // Reusing the first (older) token after the refresh is refused.
    let refused = [
        ("older token", first.clone()),
        (
            "another user",
            token_with(SECRET.as_bytes(), &json!({"sub": "eve", "exp": now + 9000})),
        ),
        (
            "wrong secret",
            token_with(b"guess", &json!({"sub": "alice", "exp": now + 9000})),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none"}"#),
                b64(br#"{"sub":"alice","exp":99999999999}"#)
            ),
        ),
    ];
    for (what, token) in &refused {
        alice.send(&json!({"type": "refresh", "token": token, "ref": 2}));
        let err = alice.next().await;
        assert_eq!(
            (err["type"].as_str(), err["code"].as_str()),
            (Some("error"), Some("forbidden")),
            "{what}: {err}"
        );
    }
    let expired = token_with(SECRET.as_bytes(), &json!({"sub": "alice", "exp": now - 10}));
    alice.send(&json!({"type": "refresh", "token": expired, "ref": 3}));
    assert_eq!(alice.next().await["code"], "token_expired");
    // Refusals keep the connection open.
    alice.assert_pings().await;
    assert!(
        server
            .metric("wsgate_frame_errors_total{code=\"forbidden\"}")
            .await
            >= 4.0
    );
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn spoofed_origins_are_refused_403() {
    let mut server = WsgateProc::start(&["--allowed-origins", "https://app.example"]).await;
    let mut bystander = server.bystander("bystander").await;
    let path = format!("/ws?token={}", support::token("mallory"));
    for origin in [
        "https://app.example.evil",
        "https://evil.app.example",
        "https://app.example:444",
        "http://app.example",
        "null",
        "https://app.example@evil.example",
        "https://app.example%2F.evil",
        "",
    ] {
        let r = try_upgrade(&server, &path, &[("origin", origin)]).await;
        assert_eq!(r.status, 403, "Origin {origin:?}: {}", r.text());
        assert_eq!(r.json()["error"], "forbidden");
    }
    // The allowed origin, and its trailing-slash and case variants, pass.
    for origin in ["https://app.example", "https://APP.example/"] {
        assert_eq!(
            try_upgrade(&server, &path, &[("origin", origin)])
                .await
                .status,
            101
        );
    }
    assert!(
        server
            .metric("wsgate_connections_rejected_total{reason=\"origin\"}")
            .await
            >= 8.0
    );
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn host_header_tricks_under_the_same_host_policy() {
    let mut server = WsgateProc::start(&[]).await;
    let mut bystander = server.bystander("bystander").await;
    let path = format!("/ws?token={}", support::token("mallory"));
    let host = server.public.to_string();
    let same = format!("http://{host}");
    assert_eq!(
        try_upgrade(&server, &path, &[("origin", &same)])
            .await
            .status,
        101
    );
    let refused: Vec<(String, String)> = vec![
        (host.clone(), "http://evil.example".into()),
        (host.clone(), format!("http://{host}.evil.example")),
        (host.clone(), format!("http://{host}@evil.example")),
        (host.clone(), format!("http://evil.example/{host}")),
        (host.clone(), "null".into()),
        // No Host at all: nothing to compare the Origin with.
        (String::new(), same.clone()),
        (format!("{host}.evil.example"), same.clone()),
        (format!("evil.example, {host}"), same.clone()),
    ];
    for (h, origin) in &refused {
        let r = try_upgrade(&server, &path, &[("host", h), ("origin", origin)]).await;
        assert_eq!(r.status, 403, "Host {h:?}, Origin {origin:?}: {}", r.text());
    }
    assert!(
        server
            .metric("wsgate_connections_rejected_total{reason=\"origin\"}")
            .await
            >= refused.len() as f64
    );
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn a_rooms_claim_limits_presence_queries_too() {
    let mut server = WsgateProc::start(&[]).await;
    let mut bystander = server.bystander("bystander").await;
    bystander.send(&json!({"type": "join", "room": "team-b", "ref": 1}));
    assert_eq!(bystander.next_of("reply").await["ok"], true);
    let restricted = token_with(
        SECRET.as_bytes(),
        &json!({"sub": "mallory", "exp": now_secs() + 3600, "rooms": ["team-a-*"]}),
    );
    let mut mallory = support::Peer::connect(&server.ws_url(), Some(&restricted), None)
        .await
        .expect("connect");
    // Joining and looking into a room the claim does not allow are refused.
    for frame in [
        json!({"type": "join", "room": "team-b", "ref": 2}),
        json!({"type": "presence", "room": "team-b", "ref": 3}),
    ] {
        mallory.send(&frame);
        let err = mallory.next().await;
        assert_eq!(
            (err["code"].as_str(), &err["ref"]),
            (Some("forbidden"), &frame["ref"]),
            "{frame}: {err}"
        );
        assert!(err.get("members").is_none());
    }
    // An allowed room answers.
    mallory.send(&json!({"type": "presence", "room": "team-a-1", "ref": 4}));
    let ok = mallory.next().await;
    assert_eq!(
        (ok["ok"].as_bool(), &ok["members"]),
        (Some(true), &json!([])),
        "{ok}"
    );
    mallory.assert_pings().await;
    assert_unharmed(&mut server, &mut bystander).await;
}

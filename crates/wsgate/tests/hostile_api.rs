//! Hostile callers of the server API: bad and missing keys, oversize bodies
//! (declared and chunked), malformed JSON, unknown fields, and path tricks in
//! room and user names.

#[macro_use]
mod support;

use serde_json::Value;
use support::{assert_unharmed, http, raw_http, WsgateProc, API_KEY};

const AUTH: &str = "Bearer test-api-key";

async fn server() -> WsgateProc {
    WsgateProc::start(&["--api-max-body-bytes", "4096"]).await
}

fn error_of(r: &support::Response) -> String {
    let v: Value = serde_json::from_str(&r.text()).unwrap_or(Value::Null);
    v["error"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn bad_or_missing_keys_get_401() {
    let mut server = server().await;
    let mut bystander = server.bystander("bystander").await;
    assert_eq!(AUTH, format!("Bearer {API_KEY}"));
    let wrong_len = format!("Bearer {API_KEY}x");
    let lower = format!("bearer {API_KEY}");
    let basic = format!("Basic {API_KEY}");
    for headers in [
        vec![],
        vec![("authorization", "Bearer nope")],
        vec![("authorization", wrong_len.as_str())],
        vec![("authorization", "Bearer ")],
        vec![("authorization", lower.as_str())],
        vec![("authorization", basic.as_str())],
        vec![("authorization", API_KEY)],
        vec![("x-api-key", API_KEY)],
    ] {
        for (method, path) in [
            ("GET", "/api/v1/nodes"),
            ("GET", "/api/v1/users/bystander"),
            ("POST", "/api/v1/users/bystander/disconnect"),
        ] {
            let r = http(server.admin, method, path, &headers, None).await;
            assert_eq!(r.status, 401, "{method} {path} {headers:?}: {}", r.text());
            assert_eq!(error_of(&r), "unauthorized");
        }
    }
    assert!(
        server
            .metric("wsgate_api_requests_total{route=\"disconnect\",status=\"401\"}")
            .await
            >= 8.0
    );
    // The bystander was not disconnected by any of those.
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn oversize_bodies_get_413_with_and_without_content_length() {
    let mut server = server().await;
    let mut bystander = server.bystander("bystander").await;
    let big = format!(r#"{{"broadcast":true,"content":"{}"}}"#, "x".repeat(8192));
    // Declared: refused before the body is read.
    let r = http(
        server.admin,
        "POST",
        "/api/v1/publish",
        &[
            ("authorization", AUTH),
            ("content-type", "application/json"),
        ],
        Some(big.as_bytes()),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(error_of(&r), "payload_too_large");
    // A declared length far beyond anything, with no body sent at all.
    let head = format!(
        "POST /api/v1/publish HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: {AUTH}\r\n\
         content-length: 999999999999\r\n\r\n"
    );
    let r = raw_http(server.admin, head.as_bytes())
        .await
        .expect("request");
    assert_eq!(r.status, 413, "{}", r.text());
    // Chunked, no Content-Length: cut off at the limit while reading.
    let mut chunked = format!(
        "POST /api/v1/publish HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: {AUTH}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for chunk in big.as_bytes().chunks(1000) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = raw_http(server.admin, &chunked).await.expect("request");
    assert_eq!(r.status, 413, "{}", r.text());
    // A body just under the limit is fine.
    let small = format!(r#"{{"broadcast":true,"content":"{}"}}"#, "x".repeat(3000));
    let r = http(
        server.admin,
        "POST",
        "/api/v1/publish",
        &[("authorization", AUTH)],
        Some(small.as_bytes()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(bystander.next_of("message").await["kind"], "broadcast");
    assert!(
        server
            .metric("wsgate_api_requests_total{route=\"publish\",status=\"413\"}")
            .await
            >= 3.0
    );
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn malformed_bodies_and_unknown_fields_get_400() {
    let mut server = server().await;
    let mut bystander = server.bystander("bystander").await;
    let deep = format!(r#"{{"to":"bystander","content":{}}}"#, "[".repeat(3000));
    let bodies: Vec<&[u8]> = vec![
        b"",
        b"{",
        b"not json",
        b"[]",
        b"null",
        b"{\"to\":\"bystander\",\"content\":1,\"priority\":9}",
        b"{\"to\":\"bystander\",\"content\":1,\"to\":\"eve\"}",
        b"{\"to\":\"bystander\"}",
        b"{\"to\":7,\"content\":1}",
        b"{\"to\":\"bystander\",\"room\":\"r\",\"content\":1}",
        b"{\"broadcast\":\"yes\",\"content\":1}",
        b"{\"to\":\"by\\u0000stander\",\"content\":1}",
        b"{\"to\":\"bystander\",\"content\":1,\"from\":\"../admin\"}",
        b"{\"to\":\"bystander\",\"content\":\"\xff\xfe\"}",
        deep.as_bytes(),
    ];
    for body in &bodies {
        let r = http(
            server.admin,
            "POST",
            "/api/v1/publish",
            &[
                ("authorization", AUTH),
                ("content-type", "application/json"),
            ],
            Some(body),
        )
        .await;
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        assert_eq!(error_of(&r), "bad_request");
    }
    assert!(
        server
            .metric("wsgate_api_requests_total{route=\"publish\",status=\"400\"}")
            .await
            >= bodies.len() as f64
    );
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn path_tricks_in_names_get_400_or_404() {
    let mut server = server().await;
    let mut bystander = server.bystander("bystander").await;
    for (method, path, want) in [
        ("GET", "/api/v1/rooms/..%2F..", 400),
        ("GET", "/api/v1/rooms/%2e%2e", 400),
        ("GET", "/api/v1/rooms/a%20b", 400),
        ("GET", "/api/v1/users/a%00b", 400),
        ("GET", "/api/v1/users/%C3%A9", 400),
        ("GET", "/api/v1/users/a%0d%0aSet-Cookie:x", 400),
        ("POST", "/api/v1/users/..%2Fbystander/disconnect", 400),
        ("GET", "/api/v1/rooms/../../metrics", 404),
        ("GET", "/api/v1/rooms/a/b", 404),
        ("GET", "/api/v1/users/", 400),
        ("GET", "/api/v1//users/bystander", 404),
        ("GET", "/api/v2/nodes", 404),
    ] {
        let r = http(server.admin, method, path, &[("authorization", AUTH)], None).await;
        assert_eq!(r.status, want, "{method} {path}: {}", r.text());
    }
    // `..` is a valid name by the contract's alphabet (dots are allowed); it
    // names a room, never a path: names only become Redis keys and map keys.
    let r = http(
        server.admin,
        "GET",
        "/api/v1/rooms/..",
        &[("authorization", AUTH)],
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["room"].as_str()),
        (200, Some("..")),
        "{}",
        r.text()
    );
    // A name long enough to matter is refused, not looked up.
    let long = format!("/api/v1/users/{}", "a".repeat(129));
    let r = http(server.admin, "GET", &long, &[("authorization", AUTH)], None).await;
    assert_eq!(r.status, 400);
    // The real user is untouched and still reported.
    let r = server.api("GET", "/api/v1/users/bystander", None).await;
    assert_eq!(r.json()["connections"], 1, "{}", r.text());
    assert!(
        server
            .metric("wsgate_api_requests_total{route=\"users\",status=\"400\"}")
            .await
            >= 4.0
    );
    assert_unharmed(&mut server, &mut bystander).await;
}

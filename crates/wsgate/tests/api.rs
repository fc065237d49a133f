//! The server API on the admin listener (contract section 8), `/healthz`,
//! `/readyz` and `/metrics` (section 9).

#[macro_use]
mod support;

use serde_json::{json, Value};
use support::*;
use wsgate_client::{Kind, ServerFrame};

#[tokio::test]
async fn publish_to_a_user_a_room_and_everyone() {
    let node = start(config()).await;
    let mut alice = node.connect("alice").await;
    let mut bob = node.connect("bob").await;
    alice.request(join("ops")).await.unwrap();

    let res = node
        .api(
            "POST",
            "/api/v1/publish",
            Some(&json!({"to": "alice", "content": {"a": 1}})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body = res.json();
    assert_eq!(body["online"], true);
    let id = body["id"].as_str().unwrap().to_owned();
    let m = alice.next_message(T).await.unwrap();
    assert_eq!((m.id.as_str(), m.kind), (id.as_str(), Kind::Direct));
    assert_eq!(m.from, "server", "default sender");
    assert_eq!(m.content, json!({"a": 1}));
    // Acking a server message sends no receipt anywhere, and works.
    alice.ack(&m.id).await.unwrap();

    let res = node
        .api(
            "POST",
            "/api/v1/publish",
            Some(&json!({"to": "nobody", "content": null, "from": "billing"})),
        )
        .await;
    assert_eq!(res.json()["online"], false);
    let mut nobody = node.connect("nobody").await;
    let m = nobody.next_message(T).await.unwrap();
    assert_eq!(
        (m.from.as_str(), &m.content, m.replay),
        ("billing", &Value::Null, true)
    );

    let res = node
        .api(
            "POST",
            "/api/v1/publish",
            Some(&json!({"room": "ops", "content": "deploy", "from": "ci"})),
        )
        .await;
    assert_eq!(res.status, 200);
    assert!(res.json().get("online").is_none());
    let m = alice.next_message(T).await.unwrap();
    assert_eq!(
        (m.kind, m.room.as_deref(), m.from.as_str()),
        (Kind::Room, Some("ops"), "ci")
    );

    let res = node
        .api(
            "POST",
            "/api/v1/publish",
            Some(&json!({"broadcast": true, "content": "all"})),
        )
        .await;
    let id = res.json()["id"].as_str().unwrap().to_owned();
    for c in [&mut alice, &mut bob, &mut nobody] {
        let m = c.next_message(T).await.unwrap();
        assert_eq!((m.id.as_str(), m.kind), (id.as_str(), Kind::Broadcast));
    }
}

#[tokio::test]
async fn rooms_users_nodes_and_disconnect() {
    let node = start(config()).await;
    let mut a = node.connect("alice").await;
    let mut a2 = node.connect("alice").await;
    let mut b = node.connect("bob").await;
    a.request(join("r1")).await.unwrap();
    b.request(join("r1")).await.unwrap();

    let res = node.api("GET", "/api/v1/rooms/r1", None).await;
    assert_eq!(
        res.json(),
        // Contract 8: the room's member_count comes with its (paged) members.
        json!({"room": "r1", "member_count": 2, "members": ["alice", "bob"]})
    );
    let res = node.api("GET", "/api/v1/rooms/empty", None).await;
    assert_eq!(
        res.json(),
        json!({"room": "empty", "member_count": 0, "members": []})
    );
    let res = node.api("GET", "/api/v1/users/alice", None).await;
    assert_eq!(
        res.json(),
        json!({"user": "alice", "online": true, "connections": 2})
    );
    let res = node.api("GET", "/api/v1/users/zed", None).await;
    assert_eq!(
        res.json(),
        json!({"user": "zed", "online": false, "connections": 0})
    );
    let res = node.api("GET", "/api/v1/nodes", None).await;
    let nodes = res.json();
    let list = nodes.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["node"], node.node.id());
    assert_eq!(list[0]["connections"], 3);
    assert!(list[0]["started_at"].as_u64().unwrap() > 1_600_000_000_000);

    let res = node
        .api("POST", "/api/v1/users/alice/disconnect", None)
        .await;
    assert_eq!(res.json(), json!({"disconnected": 2}));
    for c in [&mut a, &mut a2] {
        assert_eq!(c.wait_closed(T).await.unwrap().code, Some(1008));
    }
    // bob sees alice leave the room.
    let f = b
        .next_frame_where(T, |f| matches!(f, ServerFrame::Presence { .. }))
        .await
        .unwrap();
    assert!(
        matches!(&f, ServerFrame::Presence { user, .. } if user == "alice"),
        "{f:?}"
    );
    eventually("alice is offline", WAIT, || async {
        node.api("GET", "/api/v1/users/alice", None).await.json()["online"] == false
    })
    .await;
    let res = node
        .api("POST", "/api/v1/users/alice/disconnect", None)
        .await;
    assert_eq!(res.json(), json!({"disconnected": 0}));
}

#[tokio::test]
async fn openapi_is_served_without_a_key() {
    let node = start(config()).await;
    let res = http(node.admin, "GET", "/api/v1/openapi.json", &[], None).await;
    assert_eq!(res.status, 200);
    let doc = res.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with('3'));
    for path in [
        "/api/v1/publish",
        "/api/v1/rooms/{room}",
        "/api/v1/users/{user}",
        "/api/v1/users/{user}/disconnect",
        "/api/v1/nodes",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
}

#[tokio::test]
async fn api_errors() {
    let node = start(config()).await;
    // Missing and wrong keys.
    http(node.admin, "GET", "/api/v1/nodes", &[], None)
        .await
        .assert_error(401, "unauthorized");
    http(
        node.admin,
        "GET",
        "/api/v1/nodes",
        &[("Authorization", "Bearer wrong")],
        None,
    )
    .await
    .assert_error(401, "unauthorized");
    http(
        node.admin,
        "GET",
        "/api/v1/nodes",
        &[("Authorization", API_KEY)],
        None,
    )
    .await
    .assert_error(401, "unauthorized");

    let publish = |body: &'static str| {
        let auth = format!("Bearer {API_KEY}");
        let addr = node.admin;
        async move {
            http(
                addr,
                "POST",
                "/api/v1/publish",
                &[
                    ("Authorization", auth.as_str()),
                    ("Content-Type", "application/json"),
                ],
                Some(body.as_bytes()),
            )
            .await
        }
    };
    for body in [
        "{not json",
        "[]",
        r#"{"to":"a"}"#,
        r#"{"to":"a","content":1,"colour":"red"}"#,
        r#"{"to":"a","room":"r","content":1}"#,
        r#"{"content":1}"#,
        r#"{"broadcast":false,"content":1}"#,
        r#"{"to":"a b","content":1}"#,
        r#"{"room":"","content":1}"#,
        r#"{"to":"a","content":1,"from":"x/y"}"#,
        r#"{"to":5,"content":1}"#,
    ] {
        let res = publish(body).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text());
        res.assert_error(400, "bad_request");
    }
    node.api("GET", "/api/v1/users/bad%20name", None)
        .await
        .assert_error(400, "bad_request");
    node.api("GET", "/api/v1/nope", None)
        .await
        .assert_error(404, "not_found");
    node.api("GET", "/api/v1/publish", None)
        .await
        .assert_error(405, "method_not_allowed");
    assert!(
        node.metric("wsgate_api_requests_total{route=\"publish\",status=\"400\"}")
            .await
            >= 11.0
    );
    assert_eq!(
        node.metric("wsgate_api_requests_total{route=\"nodes\",status=\"401\"}")
            .await,
        3.0
    );
}

#[tokio::test]
async fn oversize_bodies_get_413() {
    let mut cfg = config();
    cfg.api_max_body_bytes = 1024;
    let node = start(cfg).await;
    let big = json!({"broadcast": true, "content": "x".repeat(2000)});
    node.api("POST", "/api/v1/publish", Some(&big))
        .await
        .assert_error(413, "payload_too_large");
    let small = json!({"broadcast": true, "content": "x".repeat(500)});
    assert_eq!(
        node.api("POST", "/api/v1/publish", Some(&small))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn without_an_api_key_the_api_answers_503() {
    let mut cfg = config();
    cfg.api_key = None;
    let node = start(cfg).await;
    for (method, path) in [
        ("GET", "/api/v1/nodes"),
        ("GET", "/api/v1/users/a"),
        ("POST", "/api/v1/users/a/disconnect"),
    ] {
        node.api(method, path, None)
            .await
            .assert_error(503, "unavailable");
    }
    node.api(
        "POST",
        "/api/v1/publish",
        Some(&json!({"to": "a", "content": 1})),
    )
    .await
    .assert_error(503, "unavailable");
    // The description is still served.
    assert_eq!(
        http(node.admin, "GET", "/api/v1/openapi.json", &[], None)
            .await
            .status,
        200
    );
}

/// Every metric name the contract lists.
const METRICS: [&str; 26] = [
    "wsgate_connections",
    "wsgate_connections_accepted_total",
    "wsgate_connections_rejected_total",
    "wsgate_disconnects_total",
    "wsgate_frames_received_total",
    "wsgate_frame_errors_total",
    "wsgate_messages_published_total",
    "wsgate_messages_delivered_total",
    "wsgate_delivery_latency_seconds",
    "wsgate_slow_consumer_disconnects_total",
    "wsgate_rate_limited_total",
    "wsgate_rooms",
    "wsgate_inbox_stored_total",
    "wsgate_inbox_replayed_total",
    "wsgate_inbox_acked_total",
    "wsgate_inbox_dropped_total",
    "wsgate_broker_published_total",
    "wsgate_broker_received_total",
    "wsgate_broker_errors_total",
    "wsgate_broker_up",
    "wsgate_cluster_nodes",
    "wsgate_api_requests_total",
    // Labelled series pre-registered at zero.
    "wsgate_inbox_dropped_total{reason=\"trimmed\"}",
    "wsgate_inbox_dropped_total{reason=\"expired\"}",
    "wsgate_frame_errors_total{code=\"rate_limited\"}",
    "wsgate_messages_delivered_total{kind=\"broadcast\"}",
];

#[tokio::test]
async fn metrics_list_every_contract_name_with_bounded_labels() {
    let node = start(config()).await;
    let mut a = node.connect("alice").await;
    let mut b = node.connect("bob").await;
    a.request(join("secret-room-name")).await.unwrap();
    a.request(send("bob", json!("x"))).await.unwrap();
    b.next_message(T).await.unwrap();
    node.api("GET", "/api/v1/nodes", None).await;
    let res = http(node.admin, "GET", "/metrics", &[], None).await;
    assert!(res
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text();
    for name in METRICS {
        let found = text.lines().any(|l| {
            !l.starts_with('#')
                && (l.starts_with(&format!("{name} "))
                    || l.starts_with(&format!("{name}{{"))
                    || l.starts_with(&format!("{name}_bucket"))
                    || (name.contains('{') && l.starts_with(name)))
        });
        assert!(found, "{name} missing from /metrics");
    }
    assert!(text.contains("# TYPE wsgate_delivery_latency_seconds histogram"));
    assert!(text.contains("# TYPE wsgate_connections gauge"));
    assert!(text.contains("# TYPE wsgate_connections_accepted_total counter"));
    for l in text.lines().filter(|l| l.starts_with("wsgate_")) {
        for secret in ["alice", "bob", "secret-room-name"] {
            assert!(!l.contains(secret), "unbounded label value in {l}");
        }
    }
    assert_eq!(metric_value(&text, "wsgate_connections"), Some(2.0));
    assert_eq!(metric_value(&text, "wsgate_rooms"), Some(1.0));
    assert_eq!(
        metric_value(&text, "wsgate_connections_accepted_total"),
        Some(2.0)
    );
    assert_eq!(
        metric_value(&text, "wsgate_frames_received_total{type=\"send\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&text, "wsgate_messages_published_total{kind=\"direct\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "wsgate_delivery_latency_seconds_count{kind=\"direct\"}"
        ),
        Some(1.0)
    );
    assert_eq!(metric_value(&text, "wsgate_broker_up"), Some(1.0));
    assert_eq!(metric_value(&text, "wsgate_cluster_nodes"), Some(1.0));
    drop(a);
    eventually("the gauge drops", WAIT, || async {
        node.metric("wsgate_connections").await == 1.0
    })
    .await;
}

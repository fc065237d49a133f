//! Inbox quotas and idempotent sends (contract 5.2, 4, 8), against the real
//! binary in standalone mode (memory inbox) and on a real Redis: the
//! per-sender share, the bytes limit, the message count with `reject` and
//! `drop-oldest`, `duplicate: true` for a repeated id (delivered once), an id
//! taken by another sender (`bad_request`), the server API's `id` and its
//! 429 for `inbox_full`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use serde_json::{json, Value};
use support::*;
use wsgate_client::{Client, ErrorCode};
use wsgate_protocol::Kind;

/// One node of each mode, with these flags.
async fn nodes(flags: &[&str]) -> (WsgateProc, Cluster) {
    let mut standalone = vec![
        "--allow-anonymous",
        "--node-id",
        "wsgate",
        "--rate-limit",
        "100000",
    ];
    standalone.extend_from_slice(flags);
    let node = WsgateProc::start(&standalone).await;
    let cluster = Cluster::start_on(RedisServer::start().await, 1, flags).await;
    (node, cluster)
}

fn uuid(n: u32) -> String {
    format!("0190a0b4-7c1e-7d2a-9b3f-{n:012}")
}

async fn send(
    client: &mut Client,
    to: &str,
    content: Value,
    id: Option<&str>,
) -> Result<wsgate_client::Reply, wsgate_client::ClientError> {
    let mut frame = json!({"type": "send", "to": to, "content": content});
    if let Some(id) = id {
        frame["id"] = json!(id);
    }
    client.request(frame).await
}

fn code(r: Result<wsgate_client::Reply, wsgate_client::ClientError>) -> Option<ErrorCode> {
    match r {
        Ok(reply) => panic!("expected a refusal, got {reply:?}"),
        Err(e) => e.code(),
    }
}

/// The ids of every direct message the client reads until `n` arrived.
async fn direct_ids(client: &mut Client, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = client.next_message(T).await.expect("a direct message");
        if m.kind == Kind::Direct {
            out.push(m.id);
        }
    }
    out
}

async fn idempotent_sends(node: &WsgateProc) {
    let bob = unique("bob");
    let mut alice = node.connect(&unique("alice")).await;
    let mut mallory = node.connect(&unique("mallory")).await;
    let mut bob_conn = node.connect(&bob).await;
    let id = uuid(1);
    let first = send(&mut alice, &bob, json!("hi"), Some(&id))
        .await
        .expect("first send");
    assert_eq!(
        first.id.as_deref(),
        Some(id.as_str()),
        "the client's id is the message id"
    );
    assert_eq!(first.duplicate, None);
    let again = send(&mut alice, &bob, json!("hi"), Some(&id))
        .await
        .expect("retry");
    assert_eq!(again.id.as_deref(), Some(id.as_str()));
    assert_eq!(
        again.duplicate,
        Some(true),
        "a retry is a duplicate: {again:?}"
    );
    // Another sender cannot take (or probe) that id for bob.
    assert_eq!(
        code(send(&mut mallory, &bob, json!("x"), Some(&id)).await),
        Some(ErrorCode::BadRequest)
    );
    // Not a UUID: refused before anything is stored.
    assert_eq!(
        code(send(&mut alice, &bob, json!("x"), Some("not-a-uuid")).await),
        Some(ErrorCode::BadRequest)
    );
    // The server API: its own `id`, idempotent too, answered with `duplicate`.
    let api_id = uuid(2);
    let body = json!({"to": bob, "content": "from the backend", "id": api_id});
    let (status, answer) = node.api_post("/api/v1/publish", &body).await;
    assert_eq!(
        (status, answer["id"].as_str()),
        (200, Some(api_id.as_str())),
        "{answer}"
    );
    assert!(answer.get("duplicate").is_none(), "{answer}");
    let (status, answer) = node.api_post("/api/v1/publish", &body).await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (200, &json!(true)),
        "{answer}"
    );
    let (status, answer) = node
        .api_post(
            "/api/v1/publish",
            &json!({"to": bob, "content": 1, "id": "x"}),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("bad_request"))
    );
    // Delivered once each: the two messages, then nothing more (a ping's
    // pong proves nothing else was queued before it).
    assert_eq!(
        direct_ids(&mut bob_conn, 2).await,
        [id.clone(), api_id.clone()]
    );
    bob_conn
        .request(json!({"type": "ping"}))
        .await
        .expect("pong");
    // Stored once each: a reconnect replays exactly two.
    bob_conn.close(1000).await.expect("close");
    let mut bob_conn = node.connect(&bob).await;
    assert_eq!(direct_ids(&mut bob_conn, 2).await, [id.clone(), api_id]);
    bob_conn
        .request(json!({"type": "ping"}))
        .await
        .expect("pong");
    // Once acked, the id is free again.
    bob_conn.ack(&id).await.expect("ack");
    let reply = bob_conn.request(json!({"type": "ping"})).await;
    assert!(reply.is_ok());
    poll!("the ack is applied", T, {
        send(&mut mallory, &bob, json!("y"), Some(&id)).await.ok()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_id_is_a_duplicate_delivered_once_in_both_modes() {
    let (node, cluster) = nodes(&[]).await;
    idempotent_sends(&node).await;
    idempotent_sends(&cluster.nodes[0]).await;
}

async fn quotas(node: &WsgateProc) {
    let bob = unique("bob");
    let mut alice = node.connect(&unique("alice")).await;
    let mut carol = node.connect(&unique("carol")).await;
    // --inbox-max-per-sender 2: alice's third is refused, carol still gets in.
    for i in 0..2 {
        send(&mut alice, &bob, json!(i), None)
            .await
            .expect("within the share");
    }
    assert_eq!(
        code(send(&mut alice, &bob, json!(2), None).await),
        Some(ErrorCode::InboxFull)
    );
    send(&mut carol, &bob, json!("c"), None)
        .await
        .expect("another sender");
    // The server API is exempt from the share; --inbox-max 4 then fills it.
    let (status, answer) = node
        .api_post("/api/v1/publish", &json!({"to": bob, "content": "api"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = node
        .api_post("/api/v1/publish", &json!({"to": bob, "content": "api 2"}))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (429, Some("inbox_full")),
        "{answer}"
    );
    assert_eq!(
        code(send(&mut carol, &bob, json!("c2"), None).await),
        Some(ErrorCode::InboxFull)
    );
    // --inbox-max-bytes 2KiB: a large message does not fit another user's inbox.
    let dave = unique("dave");
    send(&mut alice, &dave, json!("x".repeat(1200)), None)
        .await
        .expect("fits");
    assert_eq!(
        code(send(&mut carol, &dave, json!("y".repeat(1200)), None).await),
        Some(ErrorCode::InboxFull)
    );
    // Nothing that got `ok` was evicted: bob has the four, in order.
    let mut bob_conn = node.connect(&bob).await;
    let mut contents = Vec::new();
    while contents.len() < 4 {
        let m = bob_conn.next_message(T).await.expect("replay");
        contents.push(m.content);
    }
    assert_eq!(contents, [json!(0), json!(1), json!("c"), json!("api")]);
    let metrics = node.metrics().await;
    for (reason, n) in [("sender_share", 1.0), ("full", 2.0), ("bytes", 1.0)] {
        let series = format!("wsgate_inbox_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(metric_value(&metrics, &series), Some(n), "{series}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_with_inbox_full_in_both_modes() {
    let flags = [
        "--inbox-max",
        "4",
        "--inbox-max-per-sender",
        "2",
        "--inbox-max-bytes",
        "2KiB",
    ];
    let (node, cluster) = nodes(&flags).await;
    quotas(&node).await;
    quotas(&cluster.nodes[0]).await;
}

async fn drop_oldest(node: &WsgateProc) {
    let bob = unique("bob");
    let mut alice = node.connect(&unique("alice")).await;
    for i in 0..5 {
        send(&mut alice, &bob, json!(i), None)
            .await
            .expect("drop-oldest makes room");
    }
    let mut bob_conn = node.connect(&bob).await;
    let mut contents = Vec::new();
    while contents.len() < 3 {
        contents.push(bob_conn.next_message(T).await.expect("replay").content);
    }
    assert_eq!(
        contents,
        [json!(2), json!(3), json!(4)],
        "the oldest were dropped"
    );
    node.wait_metric("wsgate_inbox_dropped_total{reason=\"trimmed\"}", 2.0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_trims_and_counts_in_both_modes() {
    let flags = ["--inbox-max", "3", "--inbox-overflow", "drop-oldest"];
    let (node, cluster) = nodes(&flags).await;
    drop_oldest(&node).await;
    drop_oldest(&cluster.nodes[0]).await;
}

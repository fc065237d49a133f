//! Honest errors where Redis fails half-way (issue 11 item 9), against real
//! nodes on a real Redis that answers errors:
//!
//! - a connect whose registry update fails is retried (bounded), then closed
//!   with 1013 "registry unavailable" and counted, never left open while the
//!   cluster shows its user offline;
//! - a direct message stored in the inbox whose live publish to the
//!   recipient's node failed reaches the connected recipient once the bus
//!   takes publishes again, without waiting for its next reconnect.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use serde_json::json;
use support::*;
use wsgate_client::{ClientError, Options};

async fn redis_cmd(redis: &RedisServer, args: &[&str]) {
    let mut conn = redis.conn().await;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: redis::Value = cmd.query_async(&mut conn).await.expect("redis command");
}

#[tokio::test]
async fn a_connect_the_registry_cannot_record_is_closed_1013_not_left_offline() {
    let cluster = Cluster::start(1).await;
    let node = &cluster.nodes[0];
    // Redis answers WRONGTYPE to every registry update of bob: his
    // registry key holds a string where the node writes a hash field.
    redis_cmd(&cluster.redis, &["SET", "wsgate:user:{bob}", "not-a-hash"]).await;
    let refused = wsgate_client::Client::connect(Options::new(node.user_url("bob")).timeout(WAIT))
        .await
        .err()
        .expect("bob's connection is not kept while the registry refuses it");
    match refused {
        ClientError::Closed(info) => {
            assert_eq!(info.code, Some(1013), "{info:?}");
            assert_eq!(info.reason, "registry unavailable", "{info:?}");
        }
        other => panic!("expected a 1013 close, got {other:?}"),
    }
    node.wait_metric(
        "wsgate_connections_rejected_total{reason=\"registry\"}",
        1.0,
    )
    .await;
    // The retries were made: at least the first update and two retries failed.
    assert!(
        node.metric("wsgate_broker_errors_total{op=\"registry\"}")
            .await
            >= 3.0,
        "the registry update is retried before giving up"
    );
    // Nothing of bob's connection is left on the node.
    eventually("bob's connection is gone", WAIT, || async {
        node.metric("wsgate_connections").await == 0.0
    })
    .await;

    // Once Redis takes bob's registry again, he connects and is online.
    redis_cmd(&cluster.redis, &["DEL", "wsgate:user:{bob}"]).await;
    let _bob = node.connect("bob").await;
    let mut alice = node.connect("alice").await;
    let view = alice
        .request(json!({"type": "presence", "user": "bob"}))
        .await
        .expect("presence");
    assert_eq!(view.online, Some(true), "{view:?}");
}

#[tokio::test]
async fn a_stored_message_whose_live_publish_failed_is_published_again() {
    let cluster = Cluster::start(2).await;
    let (n1, n2) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut bob = n2.connect("bob").await;
    let mut alice = n1.connect("alice").await;
    alice
        .request(send("bob", json!("warm-up")))
        .await
        .expect("warm-up send");
    let m = bob.next_message(T).await.expect("warm-up arrives live");
    assert_eq!(m.content, json!("warm-up"));
    // Acked, so that ack redelivery sends bob nothing in this test. With a
    // `ref`, so that the ack is applied before the inbox is counted below
    // (a plain ack is not answered, and under load it raced the count).
    bob.request(json!({"type": "ack", "id": m.id}))
        .await
        .expect("ack applied");

    // Redis refuses PUBLISH (NOPERM), and nothing else: the store works,
    // bob's node keeps its subscription.
    redis_cmd(&cluster.redis, &["ACL", "SETUSER", "default", "-publish"]).await;
    let reply = alice
        .request(json!({"type": "send", "to": "bob", "content": "while-refused", "id": "018f6b8e-6a2c-7cc0-8000-000000000001"}))
        .await
        .expect("stored: the sender's ok stands");
    assert_eq!(
        reply.id.as_deref(),
        Some("018f6b8e-6a2c-7cc0-8000-000000000001")
    );
    n1.wait_metric("wsgate_broker_errors_total{op=\"publish\"}", 1.0)
        .await;
    assert_eq!(
        cluster.redis.inbox_len("bob").await,
        1,
        "stored (the warm-up was acked)"
    );
    // A later message from the same sender queues behind it (order).
    alice
        .request(json!({"type": "send", "to": "bob", "content": "behind"}))
        .await
        .expect("stored");

    redis_cmd(&cluster.redis, &["ACL", "SETUSER", "default", "+publish"]).await;
    // Bob never reconnected: both arrive live, in the order sent.
    let first = bob.next_message(WAIT).await.expect("republished");
    assert_eq!(first.content, json!("while-refused"), "{first:?}");
    assert!(!first.replay, "live, not a replay: {first:?}");
    let second = bob.next_message(WAIT).await.expect("queued behind it");
    assert_eq!(second.content, json!("behind"), "{second:?}");
    // The node counts a republish after Redis answered, which can be after
    // bob already read it: wait for the counters rather than race them.
    n1.wait_metric("wsgate_republished_total{result=\"ok\"}", 2.0)
        .await;
    eventually("the republish queue empties", T, || async {
        (n1.metric("wsgate_republish_pending").await == 0.0).then_some(())
    })
    .await;
}

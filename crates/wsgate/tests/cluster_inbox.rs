//! Inboxes in Redis lists (contract 5.2 and 6): a direct message to an offline
//! user is stored in `wsgate:inbox:{user}`, replayed with `replay: true` on
//! another node, kept until acked, and removed by the ack.

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use wsgate_client::{Client, MessageFrame, ServerFrame};
use wsgate_protocol::Kind;

/// Reads `n` direct messages.
async fn messages(client: &mut Client, n: usize) -> Vec<MessageFrame> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = client
            .next_message(T)
            .await
            .unwrap_or_else(|e| panic!("message {} of {n}: {e}", out.len() + 1));
        if m.kind == Kind::Direct {
            out.push(m);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_wait_in_the_redis_list_until_acked() {
    let cluster = Cluster::start(3).await;
    let [n1, n2, n3] = &cluster.nodes[..] else {
        unreachable!()
    };
    let redis = &cluster.redis;
    let mut alice = n1.connect("alice").await;

    let mut ids = Vec::new();
    for i in 0..3 {
        let reply = alice
            .request(json!({"type": "send", "to": "dave", "content": {"seq": i}}))
            .await
            .expect("send to dave");
        assert_eq!(reply.online, Some(false), "dave is offline");
        ids.push(reply.id.expect("id"));
    }
    assert_eq!(redis.inbox_len("dave").await, 3, "stored in the Redis list");

    // Replayed, in order, on another node.
    let mut dave = n2.connect("dave").await;
    let got = messages(&mut dave, 3).await;
    for (i, m) in got.iter().enumerate() {
        assert!(m.replay, "replay: true on {m:?}");
        assert_eq!(m.id, ids[i]);
        assert_eq!(m.from, "alice");
        assert_eq!(m.content, json!({"seq": i}));
    }
    // Not acked: still there, and replayed again on a third node.
    assert_eq!(redis.inbox_len("dave").await, 3, "kept until acked");
    dave.close(1000).await.expect("close");
    let mut dave = n3.connect("dave").await;
    let again = messages(&mut dave, 3).await;
    assert!(again.iter().all(|m| m.replay));
    assert_eq!(
        again.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        ids,
        "the replay repeats the unacked messages"
    );
    assert_eq!(redis.inbox_len("dave").await, 3);

    // Acks remove entries; each ack sends a receipt to the sender on n1.
    dave.send_frame(&json!({"type": "ack", "ids": [ids[0], ids[1]]}))
        .await
        .expect("ack two");
    poll!("two entries acked", T, {
        (redis.inbox_len("dave").await == 1).then_some(())
    });
    dave.ack(&ids[2]).await.expect("ack the third");
    poll!("inbox empty", T, {
        (redis.inbox_len("dave").await == 0).then_some(())
    });
    for id in &ids {
        expect_frame(
            &mut alice,
            "receipt",
            |f| matches!(f, ServerFrame::Receipt { id: i, by, .. } if i == id && by == "dave"),
        )
        .await;
    }

    // Nothing is replayed after the acks.
    dave.close(1000).await.expect("close");
    let mut dave = n1.connect("dave").await;
    alice
        .request(json!({"type": "send", "to": "dave", "content": "live"}))
        .await
        .expect("send live");
    let m = dave.next_message(T).await.expect("live message");
    assert!(!m.replay, "the acked messages were not replayed: {m:?}");
    assert_eq!(m.content, json!("live"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_inboxes_keep_inbox_max_and_expire_after_inbox_ttl() {
    let redis = RedisServer::start().await;
    let flags = [
        "--inbox-max",
        "5",
        "--inbox-ttl",
        "2s",
        "--inbox-overflow",
        "drop-oldest",
    ];
    let cluster = Cluster::start_on(redis, 2, &flags).await;
    let [n1, n2] = &cluster.nodes[..] else {
        unreachable!()
    };
    let redis = &cluster.redis;
    let mut alice = n1.connect("alice").await;

    // Eight to an offline user with `drop-oldest`: the three oldest are
    // dropped and counted.
    let mut ids = Vec::new();
    for i in 0..8 {
        let reply = alice
            .request(json!({"type": "send", "to": "frank", "content": {"seq": i}}))
            .await
            .expect("send");
        ids.push(reply.id.expect("id"));
    }
    assert_eq!(redis.inbox_len("frank").await, 5);
    let trimmed = n1
        .metric_required("wsgate_inbox_dropped_total{reason=\"trimmed\"}")
        .await;
    assert_eq!(trimmed, 3.0, "trimmed messages are counted");
    let mut frank = n2.connect("frank").await;
    let got = messages(&mut frank, 5).await;
    assert_eq!(
        got.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        ids[3..],
        "the newest five are kept, in order"
    );
    frank.close(1000).await.expect("close");

    // Unacked and not renewed: expired after inbox-ttl, and counted once.
    poll!("the inbox expired", Duration::from_secs(10), {
        (redis.inbox_len("frank").await == 0).then_some(())
    });
    let mut expired = 0.0;
    for node in &cluster.nodes {
        expired += node
            .metric_required("wsgate_inbox_dropped_total{reason=\"expired\"}")
            .await;
    }
    assert_eq!(expired, 5.0, "expired messages are counted once");
    let mut frank = n1.connect("frank").await;
    alice
        .request(json!({"type": "send", "to": "frank", "content": "fresh"}))
        .await
        .expect("send");
    let m = frank.next_message(T).await.expect("live message");
    assert_eq!(m.content, json!("fresh"), "nothing expired was replayed");
}

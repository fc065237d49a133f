//! `--redis-wait-replicas` (contract 6): a direct message's `ok` means the
//! store is on N replicas. A primary and one replica, a node waiting for 1:
//! right after each `ok` the replica already holds the message; with the
//! replica gone, sends answer `unavailable` while the node stays ready and
//! `wsgate_redis_replicas` says why; with the replica back, sends are ok'd
//! again. A send whose `WAIT` timed out (stored on the primary, not
//! confirmed) is delivered live at once, not left for a redelivery or the
//! next replay, and its retry with the same id answers `duplicate` and
//! delivers nothing again.

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use wsgate_client::ClientError;
use wsgate_protocol::ErrorCode;

async fn inbox_len_on(redis: &RedisServer, user: &str) -> u64 {
    redis.inbox_len(user).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ok_waits_for_the_replica_and_no_replica_means_unavailable() {
    let primary = RedisServer::start().await;
    let mut replica = RedisServer::start_replica_of(&primary).await;
    let dir = temp_dir("wait-replicas");
    let mut node = WsgateProc::spawn(
        &primary.url(),
        "n1",
        &dir,
        &[
            "--redis-wait-replicas",
            "1",
            // Generous: on a loaded 2-core machine a replica can take more
            // than a few hundred ms to confirm, and a timed-out WAIT is an
            // honest `unavailable` that this test would read as a failure.
            "--redis-wait-timeout",
            "3s",
        ],
    );
    node.wait_ready().await;
    // The setting is exported beside the count, for the alert that compares
    // them (WsgateRedisReplicasMissing).
    assert_eq!(
        node.metric_required("wsgate_redis_wait_replicas").await,
        1.0,
        "wsgate_redis_wait_replicas is --redis-wait-replicas"
    );
    poll!(
        "wsgate_redis_replicas shows the replica",
        Duration::from_secs(15),
        (node.metric_required("wsgate_redis_replicas").await == 1.0).then_some(())
    );
    let mut alice = node.connect("alice").await;
    for i in 0..20u64 {
        alice
            .request(json!({"type": "send", "to": "bob", "content": i}))
            .await
            .expect("send while the replica is up");
        // WAIT confirmed it: the replica has it already, no polling.
        assert_eq!(
            inbox_len_on(&replica, "bob").await,
            i + 1,
            "on the replica at ok"
        );
    }

    replica.kill();
    poll!(
        "sends answer unavailable without the replica",
        Duration::from_secs(15),
        match alice
            .request(json!({"type": "send", "to": "bob", "content": "lost?"}))
            .await
        {
            Err(ClientError::Server {
                code: ErrorCode::Unavailable,
                ..
            }) => Some(()),
            Ok(_) => None,
            Err(e) => panic!("send without the replica: {e}"),
        }
    );
    assert_eq!(ready(node.admin).await, Some(200), "the node stays ready");
    poll!(
        "wsgate_redis_replicas shows none",
        Duration::from_secs(15),
        (node.metric_required("wsgate_redis_replicas").await == 0.0).then_some(())
    );

    replica.restart().await;
    poll!(
        "sends are ok'd again once the replica is back",
        Duration::from_secs(20),
        alice
            .request(json!({"type": "send", "to": "bob", "content": "back"}))
            .await
            .ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_wait_times_out_is_delivered_live_once() {
    let primary = RedisServer::start().await;
    let replica = RedisServer::start_replica_of(&primary).await;
    let dir = temp_dir("wait-retry");
    let mut node = WsgateProc::spawn(
        &primary.url(),
        "n1",
        &dir,
        &[
            "--redis-wait-replicas",
            "1",
            "--redis-wait-timeout",
            "300ms",
            // No ack redelivery within the test: only a live publish can
            // bring the message to bob's open connection.
            "--ack-timeout",
            "1h",
        ],
    );
    node.wait_ready().await;
    poll!(
        "wsgate_redis_replicas shows the replica",
        Duration::from_secs(15),
        (node.metric_required("wsgate_redis_replicas").await == 1.0).then_some(())
    );
    let mut bob = node.connect("bob").await;
    let mut alice = node.connect("alice").await;
    // A frozen replica stays connected (the node still counts it), so the
    // store runs and its WAIT times out: `unavailable`, though stored.
    replica.pause();
    let id = "0190a0b4-7c1e-7d2a-9b3f-00000000a11c";
    let frame = json!({"type": "send", "to": "bob", "content": "after-wait", "id": id});
    match alice.request(frame.clone()).await {
        Err(ClientError::Server {
            code: ErrorCode::Unavailable,
            ..
        }) => {}
        other => panic!("a send whose WAIT times out: {other:?}"),
    }
    assert_eq!(
        inbox_len_on(&primary, "bob").await,
        1,
        "stored on the primary"
    );
    // Stored on the primary, so delivered live at once: it does not wait
    // for the retry, a redelivery or the next replay.
    let m = bob
        .next_message(Duration::from_secs(10))
        .await
        .expect("a store whose WAIT timed out is still delivered live");
    assert_eq!(m.id, id);
    assert_eq!(m.content, json!("after-wait"));
    assert!(!m.replay, "live, not a replay");
    replica.resume();
    // The sender retries with the same id until it is confirmed.
    let reply = poll!(
        "the retry is confirmed once the replica is back",
        Duration::from_secs(20),
        alice.request(frame.clone()).await.ok()
    );
    assert_eq!(reply.duplicate, Some(true), "{reply:?}");
    // A duplicate is neither stored nor delivered again (contract 5.2).
    assert!(
        bob.next_message(Duration::from_secs(1)).await.is_err(),
        "the confirmed retry delivers nothing again"
    );
    assert_eq!(inbox_len_on(&primary, "bob").await, 1, "stored once");
}

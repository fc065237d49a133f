//! `--redis-wait-replicas` (contract 6): a direct message's `ok` means the
//! store is on N replicas. A primary and one replica, a node waiting for 1:
//! right after each `ok` the replica already holds the message; with the
//! replica gone, sends answer `unavailable` while the node stays ready and
//! `wsgate_redis_replicas` says why; with the replica back, sends are ok'd
//! again.

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

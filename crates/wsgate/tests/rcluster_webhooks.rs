//! Webhooks with `--redis-mode cluster` (contract 6 and 10): six
//! cluster-enabled `redis-server`s, two nodes with `--webhook-url`, a real
//! HTTP receiver. Transitions are sent once per cluster; then the primary
//! that owns the events stream's slot (`wsgate:events`) is killed with
//! SIGKILL, its replica takes over, and the stream reader follows it: the
//! transitions after the failover are delivered too, in order per user.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use support::*;
use wsgate_client::{Client, Options};

const HOOK_SECRET: &str = "rcluster-webhook-secret";

/// Distinct events (by id) of `kind` about `user`, in arrival order.
fn distinct(receiver: &Receiver, kind: &str, user: &str) -> Vec<Value> {
    let mut seen = HashSet::new();
    receiver
        .events()
        .into_iter()
        .filter(|e| e["type"] == kind && e["user"] == user)
        .filter(|e| seen.insert(e["id"].to_string()))
        .collect()
}

/// The distinct transitions of `user`, in arrival order.
fn transitions(receiver: &Receiver, user: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    receiver
        .events()
        .into_iter()
        .filter(|e| e["user"] == user && seen.insert(e["id"].to_string()))
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .filter(|t| t.starts_with("user."))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_work_on_a_redis_cluster_and_follow_the_events_shard_failover() {
    let mut redis = RedisCluster::start().await;
    let receiver = Receiver::start(HOOK_SECRET).await;
    let dir = temp_dir("rcluster-webhooks");
    let url = receiver.url();
    let flags = [
        "--redis-mode",
        "cluster",
        "--webhook-url",
        &url,
        "--webhook-secret",
        HOOK_SECRET,
        "--webhook-backoff-max",
        "1s",
        "--webhook-offline-delay",
        "300ms",
    ];
    let urls = redis.urls();
    let mut nodes: Vec<WsgateProc> = (1..=2)
        .map(|i| WsgateProc::spawn(&urls, &format!("n{i}"), &dir, &flags))
        .collect();
    for n in &mut nodes {
        n.wait_ready().await;
    }

    // One user on both nodes: one online, one offline, cluster-wide.
    let a1 = nodes[0].connect("alice").await;
    receiver
        .wait("alice's user.online", |_| {
            !distinct(&receiver, "user.online", "alice").is_empty()
        })
        .await;
    let a2 = nodes[1].connect("alice").await;
    drop(a1);
    drop(a2);
    receiver
        .wait("alice's user.offline", |_| {
            !distinct(&receiver, "user.offline", "alice").is_empty()
        })
        .await;
    assert_eq!(
        transitions(&receiver, "alice"),
        ["user.online", "user.offline"]
    );
    assert!(receiver.batches().iter().all(|b| b.verified));

    // The events stream's primary dies; its replica takes over.
    let victim = redis.primary_of("wsgate:events").await;
    redis.kill(victim);
    let promoted = poll!(
        "a replica serves the events stream's slot",
        Duration::from_secs(30),
        {
            let p = redis.primary_of("wsgate:events").await;
            (p != victim).then_some(p)
        }
    );
    redis.restart(victim).await;
    for n in &mut nodes {
        n.wait_ready().await;
    }

    // Transitions after the failover reach the receiver (the stream reader
    // reads from the promoted primary). A connect may be refused while the
    // registry's shard was failing over: retried.
    let bob = poll!(
        "bob connects after the failover",
        Duration::from_secs(30),
        Client::connect(Options::new(nodes[1].user_url("bob")))
            .await
            .ok()
    );
    receiver
        .wait("bob's user.online after the failover", |_| {
            !distinct(&receiver, "user.online", "bob").is_empty()
        })
        .await;
    drop(bob);
    receiver
        .wait("bob's user.offline after the failover", |_| {
            !distinct(&receiver, "user.offline", "bob").is_empty()
        })
        .await;
    assert_eq!(
        transitions(&receiver, "bob"),
        ["user.online", "user.offline"]
    );
    assert_eq!(
        transitions(&receiver, "alice"),
        ["user.online", "user.offline"]
    );
    report(&format!(
        "redis cluster webhooks: events stream primary {victim} killed, replica {promoted} \
         promoted; alice's and bob's transitions each delivered once (distinct ids), \
         {} batches, all verified {}",
        receiver.batches().len(),
        receiver.batches().iter().all(|b| b.verified),
    ));
}

//! Hostile inbox traffic against a real Redis (issue 11, items 1 and 2):
//! a flood of large direct messages to made-up users, with Redis at
//! `maxmemory 30mb` and `noeviction`, must leave every node ready (stores are
//! refused before Redis is full: `inbox_full` or `unavailable`) and lose no
//! message whose sender got `ok`; a burst of acks of unknown ids against a
//! full inbox must leave every node ready too (each ack is O(1)).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::time::Instant;
use wsgate_client::ErrorCode;

/// Polls both nodes' `/readyz` until `stop`; returns the answers that were
/// not 200 (node, status).
fn watch_ready(
    cluster: &Cluster,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(String, Option<u16>)>> {
    let nodes: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| (n.id.clone(), n.admin))
        .collect();
    tokio::spawn(async move {
        let mut bad = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for (id, admin) in &nodes {
                let status = ready(*admin).await;
                if status != Some(200) {
                    bad.push((id.clone(), status));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bad
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_flood_never_fills_redis_nor_makes_a_node_unready() {
    let redis =
        RedisServer::start_flags(&["--maxmemory", "30mb", "--maxmemory-policy", "noeviction"])
            .await;
    let cluster = Cluster::start_on(redis, 2, &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_ready(&cluster, stop.clone());
    let content = "x".repeat(60_000);
    // 8 senders, 4 on each node, 120 sends of 60 KB each to 50 made-up users.
    let mut tasks = Vec::new();
    for s in 0..8 {
        let mut client = cluster.nodes[s % 2].connect(&format!("flooder-{s}")).await;
        let content = content.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            let (mut full, mut unavailable) = (0, 0);
            for i in 0..120 {
                let to = format!("victim-{}", (i * 8 + s) % 50);
                let frame =
                    json!({"type": "send", "to": to, "content": {"n": i, "s": s, "pad": content}});
                match client.request(frame).await {
                    Ok(reply) => ok.push((to, reply.id.expect("id"))),
                    Err(e) if e.code() == Some(ErrorCode::InboxFull) => full += 1,
                    Err(e) if e.code() == Some(ErrorCode::Unavailable) => unavailable += 1,
                    Err(e) => panic!("sender {s}, send {i}: {e}"),
                }
            }
            (ok, full, unavailable)
        }));
    }
    let started = Instant::now();
    let mut ok = Vec::new();
    let (mut full, mut unavailable) = (0, 0);
    for t in tasks {
        let (o, f, u) = t.await.expect("sender");
        ok.extend(o);
        full += f;
        unavailable += u;
    }
    report(&format!(
        "inbox flood: {} sends in {:?}: {} ok, {full} inbox_full, {unavailable} unavailable",
        8 * 120,
        started.elapsed(),
        ok.len()
    ));
    // Heartbeats still land: both nodes stay ready a little longer too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let bad = watcher.await.expect("watcher");
    assert!(
        bad.is_empty(),
        "a node was not ready during the flood: {bad:?}"
    );
    assert!(full + unavailable > 0, "the flood was refused somewhere");
    // Every `ok` is still stored.
    let mut conn = cluster.redis.conn().await;
    for (to, id) in &ok {
        let there: bool = redis::cmd("HEXISTS")
            .arg(format!("wsgate:inbox-msgs:{{{to}}}"))
            .arg(id)
            .query_async(&mut conn)
            .await
            .expect("HEXISTS");
        assert!(there, "{id} to {to} got ok and is gone");
    }
    let memory_refused = cluster.nodes[0]
        .metric("wsgate_inbox_refused_total{reason=\"redis_memory\"}")
        .await
        + cluster.nodes[1]
            .metric("wsgate_inbox_refused_total{reason=\"redis_memory\"}")
            .await;
    assert_eq!(
        memory_refused, unavailable as f64,
        "every unavailable was the memory reserve"
    );
}

/// PING round trips on a fresh connection: (p50, p99).
async fn ping_latency(redis: &RedisServer, n: usize) -> (Duration, Duration) {
    let mut conn = redis.conn().await;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .expect("PING");
        times.push(t.elapsed());
    }
    times.sort();
    (times[n / 2], times[n * 99 / 100])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_acks_against_a_full_inbox_leave_nodes_ready() {
    let cluster = Cluster::start_on(
        RedisServer::start().await,
        2,
        &["--inbox-max-bytes", "64MiB"],
    )
    .await;
    // A full inbox: 1000 messages of 8 KB (8 MB), from the server API.
    let pad = "y".repeat(8_000);
    for i in 0..1000 {
        let (status, body) = cluster.nodes[i % 2]
            .api_post(
                "/api/v1/publish",
                &json!({"to": "target", "content": {"i": i, "pad": pad}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let stored = cluster.nodes[0].metric("wsgate_inbox_stored_total").await
        + cluster.nodes[1].metric("wsgate_inbox_stored_total").await;
    assert_eq!(stored, 1000.0);
    let before = ping_latency(&cluster.redis, 200).await;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_ready(&cluster, stop.clone());
    let pinger = {
        let url = cluster.redis.url();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut conn = redis::Client::open(url)
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let _: String = redis::cmd("PING")
                    .query_async(&mut conn)
                    .await
                    .expect("PING");
                times.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            times.sort();
            (times[times.len() / 2], times[times.len() * 99 / 100])
        })
    };
    // 8 connections of the user: each reads its replay, then sends 125 acks
    // of made-up ids (1000 in all) and a ping, answered once they are applied.
    let mut tasks = Vec::new();
    for c in 0..8 {
        let mut client = cluster.nodes[c % 2].connect("target").await;
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while n < 1000 {
                client.next_message(T).await.expect("replay");
                n += 1;
            }
            for i in 0..125 {
                let id = format!("0190a0b4-7c1e-7d2a-9b3f-{:012}", c * 1000 + i);
                client
                    .send_frame(&json!({"type": "ack", "id": id}))
                    .await
                    .expect("ack");
            }
            client
                .request(json!({"type": "ping"}))
                .await
                .expect("pong after the acks");
            client
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.expect("acker"));
    }
    stop.store(true, Ordering::Relaxed);
    let during = pinger.await.expect("pinger");
    let bad = watcher.await.expect("watcher");
    report(&format!(
        "1000 unknown acks from 8 connections against a 1000-message inbox: Redis PING p50/p99 before {:?}/{:?}, during {:?}/{:?}",
        before.0, before.1, during.0, during.1
    ));
    assert!(
        bad.is_empty(),
        "a node was not ready during the acks: {bad:?}"
    );
    assert_eq!(
        cluster.redis.inbox_len("target").await,
        1000,
        "unknown ids remove nothing"
    );
    drop(clients);
}

//! Sentinel mode (contract 6): a primary, two replicas and three
//! `redis-sentinel` processes; two nodes with `--redis-mode sentinel
//! --redis-wait-replicas 1`. A sender on n1 streams direct messages to a
//! recipient on n2, retrying each on `unavailable`; midway the primary is
//! killed with SIGKILL. The nodes follow the promoted replica by themselves,
//! and every message whose sender got `ok` arrives, first arrivals in send
//! order. Two replicas, so the promoted one still has a replica and stores
//! are confirmed again after the failover (run N+1 replicas).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use wsgate_client::{Client, ClientError, Options, ServerFrame};
use wsgate_protocol::{ErrorCode, Kind};

const MESSAGES: u64 = 300;
/// A send not confirmed within this (retrying on `unavailable`) fails the test.
const SEND_DEADLINE: Duration = Duration::from_secs(40);

#[derive(Default)]
struct Seen {
    arrivals: Vec<(String, u64)>,
    ids: HashSet<String>,
}

/// Reads and acks direct messages until `stop`, reconnecting when closed.
async fn recipient(mut client: Client, url: String, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        match client.next_frame(Duration::from_millis(200)).await {
            Ok(ServerFrame::Message(m)) if m.kind == Kind::Direct => {
                let seq = m.content["seq"].as_u64().expect("seq in content");
                {
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    seen.ids.insert(m.id.clone());
                    seen.arrivals.push((m.id.clone(), seq));
                }
                // A failed ack leaves the message in the inbox: it comes again.
                let _ = client.ack(&m.id).await;
            }
            Ok(_) | Err(ClientError::Timeout) => {}
            Err(e) => {
                assert!(is_closed(&e), "recipient read: {e}");
                client = poll!(
                    "the recipient reconnects",
                    Duration::from_secs(20),
                    Client::connect(Options::new(url.clone())).await.ok()
                );
            }
        }
    }
}

/// When a node was first seen not ready, and when both were ready again
/// after that (the sends may all be done before); gives up after `limit`.
async fn watch_ready(
    admins: [SocketAddr; 2],
    limit: Duration,
) -> (Option<Duration>, Option<Duration>) {
    let from = Instant::now();
    let (mut down, mut back) = (None, None);
    while from.elapsed() < limit && back.is_none() {
        let mut all_ready = true;
        for a in admins {
            if ready(a).await != Some(200) {
                all_ready = false;
            }
        }
        match (down, all_ready) {
            (None, false) => down = Some(from.elapsed()),
            (Some(_), true) => back = Some(from.elapsed()),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (down, back)
}

async fn connected_replicas(redis: &RedisServer) -> Option<usize> {
    let mut conn = redis.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut conn)
        .await
        .ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("connected_slaves:"))
        .and_then(|n| n.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_follow_a_sentinel_failover_and_lose_no_acked_direct_message() {
    let mut primary = RedisServer::start().await;
    let replicas = [
        RedisServer::start_replica_of(&primary).await,
        RedisServer::start_replica_of(&primary).await,
    ];
    eventually("both replicas connected", Duration::from_secs(15), || {
        let n = connected_replicas(&primary);
        async move { (n.await == Some(2)).then_some(()) }
    })
    .await;
    let sentinels = [
        SentinelProc::start(primary.port).await,
        SentinelProc::start(primary.port).await,
        SentinelProc::start(primary.port).await,
    ];
    for s in &sentinels {
        poll!(
            "each sentinel knows both replicas and the other sentinels",
            Duration::from_secs(30),
            s.peers().await.filter(|p| *p == (2, 2))
        );
    }
    let urls: Vec<String> = sentinels.iter().map(SentinelProc::url).collect();
    let urls = urls.join(",");
    let dir = temp_dir("sentinel-nodes");
    let flags = [
        "--redis-mode",
        "sentinel",
        "--redis-wait-replicas",
        "1",
        "--redis-wait-timeout",
        "500ms",
        // One sender streams to one unacking user: the per-sender share
        // (default 100) is not what this test is about.
        "--inbox-max-per-sender",
        "100000",
    ];
    let mut n1 = WsgateProc::spawn(&urls, "n1", &dir, &flags);
    let mut n2 = WsgateProc::spawn(&urls, "n2", &dir, &flags);
    n1.wait_ready().await;
    n2.wait_ready().await;
    poll!(
        "wsgate_redis_replicas shows the primary's two replicas",
        Duration::from_secs(10),
        (n1.metric_required("wsgate_redis_replicas").await == 2.0).then_some(())
    );

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let receiving = tokio::spawn(recipient(
        n2.connect("rcpt").await,
        n2.user_url("rcpt"),
        seen.clone(),
        stop.clone(),
    ));
    let mut sender = n1.connect("sender").await;
    let mut ok: Vec<(u64, String)> = Vec::new();
    let mut unconfirmed = 0u64;
    let mut killed_at = None;
    let mut first_ok_after_kill = None;
    let mut watcher = None;
    for seq in 0..MESSAGES {
        if seq == MESSAGES / 3 {
            watcher = Some(tokio::spawn(watch_ready(
                [n1.admin, n2.admin],
                Duration::from_secs(60),
            )));
            primary.kill();
            killed_at = Some(Instant::now());
        }
        let deadline = Instant::now() + SEND_DEADLINE;
        loop {
            match sender
                .request(json!({"type": "send", "to": "rcpt", "content": {"seq": seq}}))
                .await
            {
                Ok(reply) => {
                    if let (Some(k), None) = (killed_at, first_ok_after_kill) {
                        first_ok_after_kill = Some(k.elapsed());
                    }
                    ok.push((seq, reply.id.expect("id")));
                    break;
                }
                // Not confirmed: it may or may not be stored; no client id
                // yet, so the retry is a new message with the same seq.
                Err(ClientError::Server {
                    code: ErrorCode::Unavailable,
                    ..
                }) => {
                    unconfirmed += 1;
                    assert!(Instant::now() < deadline, "send {seq} never confirmed");
                    // The client's retry pause.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("send {seq}: {e}"),
            }
        }
    }
    let wanted: HashSet<String> = ok.iter().map(|(_, id)| id.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let missing = loop {
        let missing = {
            let s = seen.lock().unwrap_or_else(|e| e.into_inner());
            wanted.difference(&s.ids).count()
        };
        if missing == 0 || Instant::now() >= deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::Release);
    receiving.await.expect("recipient task");
    let (down, back) = match watcher {
        Some(w) => w.await.expect("readiness watcher"),
        None => (None, None),
    };
    let promoted = sentinels[0].primary_port().await;

    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    let mut firsts = HashSet::new();
    let mut ok_order = Vec::new();
    for (id, seq) in &seen.arrivals {
        if firsts.insert(id.clone()) && wanted.contains(id) {
            ok_order.push(*seq);
        }
    }
    let delivered_ok = wanted.intersection(&seen.ids).count();
    let line = format!(
        "sentinel failover: sent {MESSAGES} seqs, ok'd {}, unavailable answers {unconfirmed}, \
         ok'd delivered {delivered_ok}, missing {missing}, arrivals {} (duplicates by id {}), \
         unconfirmed sends delivered {}, nodes not ready {:?} after the kill, ready again {:?}, \
         first ok after the kill {:?}",
        ok.len(),
        seen.arrivals.len(),
        seen.arrivals.len() - seen.ids.len(),
        seen.ids.difference(&wanted).count(),
        down,
        back,
        first_ok_after_kill,
    );
    report(&line);
    assert_eq!(missing, 0, "ok'd direct messages lost: {line}");
    assert!(
        promoted.is_some_and(|p| replicas.iter().any(|r| r.port == p)),
        "a replica was promoted: {promoted:?}"
    );
    assert!(back.is_some(), "both nodes ready again: {line}");
    let out_of_order: Vec<(u64, u64)> = ok_order
        .windows(2)
        .filter(|w| w[1] <= w[0])
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(
        out_of_order.is_empty(),
        "first arrivals out of send order at {out_of_order:?}"
    );
    // Stores are confirmed by the promoted primary's remaining replica.
    poll!(
        "wsgate_redis_replicas follows the new primary",
        Duration::from_secs(30),
        (n1.metric_required("wsgate_redis_replicas").await == 1.0).then_some(())
    );
}

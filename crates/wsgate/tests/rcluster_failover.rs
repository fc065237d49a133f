//! Redis Cluster failover (contract 5.2 and 6): six cluster-enabled
//! `redis-server`s, three nodes with `--redis-mode cluster
//! --redis-wait-replicas 1`. A sender on n1 streams direct messages to a
//! recipient on n2, each with its own client id and retried with it on
//! `unavailable`; midway the primary that owns the recipient's inbox slot is
//! killed with SIGKILL. Its replica takes over, the killed node comes back
//! as the new primary's replica (so `WAIT 1` is answered again: run N+1
//! replicas), and every message whose sender got `ok` arrives; those ok'd
//! at the first attempt arrive first in send order (a retried one may have
//! been stored unconfirmed, and a `duplicate: true` retry does not publish
//! it again: it comes by redelivery or replay, later). A room whose channel slot was on the killed
//! primary still reaches its members on every node afterwards.

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
const SEND_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Seen {
    arrivals: Vec<(String, u64)>,
    ids: HashSet<String>,
}

fn client_id(seq: u64) -> String {
    format!("0190a0b4-7c1e-7d2a-9b3f-{seq:012}")
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
                    Duration::from_secs(30),
                    Client::connect(Options::new(url.clone())).await.ok()
                );
            }
        }
    }
}

/// When a node was first seen not ready, and when all were ready again
/// after that; gives up after `limit`.
async fn watch_ready(
    admins: Vec<SocketAddr>,
    limit: Duration,
) -> (Option<Duration>, Option<Duration>) {
    let from = Instant::now();
    let (mut down, mut back) = (None, None);
    while from.elapsed() < limit && back.is_none() {
        let mut all_ready = true;
        for a in &admins {
            if ready(*a).await != Some(200) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_failover_loses_no_acked_direct_message_and_rooms_follow_it() {
    let mut redis = RedisCluster::start().await;
    let inbox_key = "wsgate:inbox:{rcpt}";
    let victim = redis.primary_of(inbox_key).await;
    // A room whose channel lives on the same primary.
    let mut room = None;
    for k in 0..200 {
        let name = format!("room-{k}");
        if redis.primary_of(&format!("wsgate:room:{{{name}}}")).await == victim {
            room = Some(name);
            break;
        }
    }
    let room = room.expect("a room name whose slot is on the victim");

    let dir = temp_dir("rcluster-failover");
    let flags = [
        "--redis-mode",
        "cluster",
        "--redis-wait-replicas",
        "1",
        "--redis-wait-timeout",
        "500ms",
        // One sender streams to one unacking user: the per-sender share
        // (default 100) is not what this test is about.
        "--inbox-max-per-sender",
        "100000",
    ];
    let urls = redis.urls();
    let mut nodes: Vec<WsgateProc> = (1..=3)
        .map(|i| WsgateProc::spawn(&urls, &format!("n{i}"), &dir, &flags))
        .collect();
    for n in &mut nodes {
        n.wait_ready().await;
    }
    // One member per node, reading all along (a client that stops reading
    // stops answering pings and is closed).
    let stop = Arc::new(AtomicBool::new(false));
    let mut members = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let mut m = n.connect(&format!("member{i}")).await;
        m.request(json!({"type": "join", "room": room}))
            .await
            .expect("join");
        let got = Arc::new(Mutex::new(Vec::new()));
        members.push((got.clone(), tokio::spawn(member(m, got, stop.clone()))));
    }

    let seen = Arc::new(Mutex::new(Seen::default()));
    let rcpt_stop = Arc::new(AtomicBool::new(false));
    let receiving = tokio::spawn(recipient(
        nodes[1].connect("rcpt").await,
        nodes[1].user_url("rcpt"),
        seen.clone(),
        rcpt_stop.clone(),
    ));
    let mut sender = nodes[0].connect("sender").await;
    let mut ok: Vec<(u64, String)> = Vec::new();
    let mut unavailable = 0u64;
    let mut unavailable_before_kill = 0u64;
    // Sends answered `unavailable` at least once: the copy their first
    // attempt may have stored is not published again by the retry
    // (`duplicate: true` is neither stored nor delivered again, 5.2), so it
    // may come later, by redelivery or replay.
    let mut retried = HashSet::new();
    let mut duplicates = 0u64;
    let mut killed_at = None;
    let mut first_ok_after_kill = None;
    let mut watcher = None;
    let mut rejoined = false;
    for seq in 0..MESSAGES {
        if seq == MESSAGES / 3 {
            let admins = nodes.iter().map(|n| n.admin).collect();
            watcher = Some(tokio::spawn(watch_ready(admins, Duration::from_secs(90))));
            redis.kill(victim);
            killed_at = Some(Instant::now());
        }
        let id = client_id(seq);
        let deadline = Instant::now() + SEND_DEADLINE;
        loop {
            match sender
                .request(json!({"type": "send", "to": "rcpt", "id": id, "content": {"seq": seq}}))
                .await
            {
                Ok(reply) => {
                    if let (Some(k), None) = (killed_at, first_ok_after_kill) {
                        first_ok_after_kill = Some(k.elapsed());
                    }
                    if reply.duplicate == Some(true) {
                        duplicates += 1;
                    }
                    ok.push((seq, reply.id.expect("id")));
                    break;
                }
                // Not confirmed: it may or may not be stored; the retry
                // with the same id never duplicates.
                Err(ClientError::Server {
                    code: ErrorCode::Unavailable,
                    ..
                }) => {
                    unavailable += 1;
                    if killed_at.is_none() {
                        unavailable_before_kill += 1;
                    }
                    retried.insert(seq);
                    assert!(Instant::now() < deadline, "send {seq} never confirmed");
                    if killed_at.is_some() && !rejoined && !redis.is_primary(victim).await {
                        // Once the replica serves the slot, the killed node
                        // comes back as its replica, so `WAIT 1` succeeds again.
                        let promoted = redis.primary_of(inbox_key).await;
                        assert_ne!(promoted, victim);
                        redis.restart(victim).await;
                        rejoined = true;
                    }
                    // The client's retry pause.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("send {seq}: {e}"),
            }
        }
    }
    let wanted: HashSet<String> = ok.iter().map(|(_, id)| id.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
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
    rcpt_stop.store(true, Ordering::Release);
    receiving.await.expect("recipient task");
    let (down, back) = match watcher {
        Some(w) => w.await.expect("readiness watcher"),
        None => (None, None),
    };

    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    let mut firsts = HashSet::new();
    let mut ok_order = Vec::new();
    for (id, seq) in &seen.arrivals {
        if firsts.insert(id.clone()) && wanted.contains(id) && !retried.contains(seq) {
            ok_order.push(*seq);
        }
    }
    let delivered_ok = wanted.intersection(&seen.ids).count();
    let line = format!(
        "redis cluster failover (kill -9 of the inbox's primary, node-timeout {NODE_TIMEOUT_MS} ms): \
         sent {MESSAGES} ids, ok'd {}, unavailable answers {unavailable} ({unavailable_before_kill} \
         before the kill; {} sends retried), duplicate: true answers \
         {duplicates}, ok'd delivered {delivered_ok}, missing {missing}, arrivals {} (repeats by id {}), \
         nodes not ready {down:?} after the kill, all ready again {back:?}, first ok after the kill \
         {first_ok_after_kill:?}, killed node rejoined as replica {rejoined}",
        ok.len(),
        retried.len(),
        seen.arrivals.len(),
        seen.arrivals.len() - seen.ids.len(),
    );
    report(&line);
    assert_eq!(ok.len() as u64, MESSAGES, "every send confirmed: {line}");
    assert_eq!(missing, 0, "ok'd direct messages lost: {line}");
    let out_of_order: Vec<(u64, u64)> = ok_order
        .windows(2)
        .filter(|w| w[1] <= w[0])
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(
        out_of_order.is_empty(),
        "first arrivals of the sends ok'd at once out of send order at {out_of_order:?}"
    );
    assert!(
        killed_at.is_some() && rejoined,
        "the failover happened: {line}"
    );

    // The room's channel slot moved to the promoted replica: every node
    // resubscribed it there.
    for n in &mut nodes {
        n.wait_ready().await;
    }
    assert_ne!(
        redis.primary_of(&format!("wsgate:room:{{{room}}}")).await,
        victim,
        "the room's slot moved with the failover"
    );
    for (from, n) in nodes.iter().enumerate() {
        let content = json!({"after": "failover", "from": from});
        let (status, body) = n
            .api_post(
                "/api/v1/publish",
                &json!({"room": room, "content": content}),
            )
            .await;
        assert_eq!(status, 200, "room publish through n{}: {body}", from + 1);
    }
    for (i, (got, _)) in members.iter().enumerate() {
        eventually(
            &format!("member{i} gets the room message published through each node"),
            Duration::from_secs(10),
            || async {
                let got = got.lock().unwrap_or_else(|e| e.into_inner());
                (0..nodes.len())
                    .all(|from| got.contains(&json!({"after": "failover", "from": from})))
                    .then_some(())
            },
        )
        .await;
    }
    stop.store(true, Ordering::Release);
    for (_, task) in members {
        task.await.expect("member task");
    }
}

/// Keeps a room member connected (reading), recording room message contents.
async fn member(
    mut client: Client,
    got: Arc<Mutex<Vec<serde_json::Value>>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) {
        match client.next_frame(Duration::from_millis(200)).await {
            Ok(ServerFrame::Message(m)) if m.kind == Kind::Room => {
                got.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(m.content);
            }
            Ok(_) | Err(ClientError::Timeout) => {}
            Err(e) => panic!("a room member was closed: {e}"),
        }
    }
}

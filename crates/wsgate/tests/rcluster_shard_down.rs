//! One Redis Cluster shard down (contract 6): "a shard that is down makes
//! the stores in its slots answer `unavailable`, it does not make nodes
//! unready". Six cluster-enabled `redis-server`s, three nodes with
//! `--redis-mode cluster`. The victim is a primary that owns neither the
//! nodes' node channels nor any global key (the broadcast channel, the node
//! list): node ids, users and the room are picked by slot. Its replica is
//! frozen (SIGSTOP) first and then the victim is killed with SIGKILL, so the
//! shard stays down for as long as the test wants (no failover can happen).
//! Throughout, `/readyz` of every node is polled: always 200. While the
//! shard is down, stores for a user in its slots answer `unavailable`
//! (never `ok`), and traffic on the other shards flows. Then the replica is
//! thawed and takes over: every store retried with its id is confirmed and
//! delivered, and the room members on every node get room messages again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;
use wsgate_client::{Client, ClientError, ServerFrame};
use wsgate_protocol::{ErrorCode, Kind};

/// Sends to the user on the dead shard while it is down.
const DOWN_SENDS: u64 = 20;

fn client_id(seq: u64) -> String {
    format!("0190a0b4-7c1e-7d2a-9b3f-{seq:012}")
}

/// Polls every node's `/readyz` until `stop`: (polls, answers not 200).
async fn watch_ready(admins: Vec<SocketAddr>, stop: Arc<AtomicBool>) -> (u64, u64) {
    let (mut polls, mut not_ready) = (0, 0);
    while !stop.load(Ordering::Acquire) {
        for a in &admins {
            polls += 1;
            if ready(*a).await != Some(200) {
                not_ready += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (polls, not_ready)
}

/// Reads until `stop`: room message contents and direct message seqs.
async fn reader(
    mut client: Client,
    rooms: Arc<Mutex<Vec<Value>>>,
    directs: Arc<Mutex<Vec<(String, u64)>>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) {
        match client.next_frame(Duration::from_millis(200)).await {
            Ok(ServerFrame::Message(m)) if m.kind == Kind::Room => {
                rooms.lock().unwrap().push(m.content);
            }
            Ok(ServerFrame::Message(m)) if m.kind == Kind::Direct => {
                let seq = m.content["seq"].as_u64().expect("seq in content");
                directs.lock().unwrap().push((m.id.clone(), seq));
                let _ = client.ack(&m.id).await;
            }
            Ok(_) | Err(ClientError::Timeout) => {}
            Err(e) => panic!("a reader was closed: {e}"),
        }
    }
}

/// The first `name(k)` whose key (`key(name)`) is (or is not) on `victim`.
async fn pick(
    redis: &RedisCluster,
    victim: usize,
    on_victim: bool,
    skip: usize,
    name: impl Fn(usize) -> String,
    key: impl Fn(&str) -> String,
) -> String {
    let mut found = 0;
    for k in 0..500 {
        let n = name(k);
        if (redis.primary_of(&key(&n)).await == victim) == on_victim {
            if found == skip {
                return n;
            }
            found += 1;
        }
    }
    panic!("no name fits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shard_down_keeps_every_node_ready_and_its_stores_answer_unavailable() {
    let mut redis = RedisCluster::start().await;
    // The victim: a primary that owns no global key.
    let mut global = HashSet::new();
    for key in ["wsgate:nodes", "wsgate:broadcast", "wsgate:inbox-expiries"] {
        global.insert(redis.primary_of(key).await);
    }
    let mut victim = None;
    for i in 0..redis.servers.len() {
        if redis.is_primary(i).await && !global.contains(&i) {
            victim = Some(i);
        }
    }
    let victim = victim.expect("a primary with no global key");
    let replica = redis.replica_of(victim).await;
    let node_key = |n: &str| format!("wsgate:node:{{{n}}}");
    let inbox_key = |u: &str| format!("wsgate:inbox:{{{u}}}");
    let mut ids = Vec::new();
    for skip in 0..3 {
        ids.push(pick(&redis, victim, false, skip, |k| format!("sd{k}"), node_key).await);
    }
    let dead = pick(&redis, victim, true, 0, |k| format!("dead{k}"), inbox_key).await;
    let live = pick(&redis, victim, false, 0, |k| format!("live{k}"), inbox_key).await;
    let sender_name = pick(&redis, victim, false, 1, |k| format!("live{k}"), inbox_key).await;
    let room = pick(
        &redis,
        victim,
        true,
        0,
        |k| format!("room{k}"),
        |r| format!("wsgate:room:{{{r}}}"),
    )
    .await;

    let dir = temp_dir("rcluster-shard-down");
    let urls = redis.urls();
    let mut nodes: Vec<WsgateProc> = ids
        .iter()
        .map(|id| WsgateProc::spawn(&urls, id, &dir, &["--redis-mode", "cluster"]))
        .collect();
    for n in &mut nodes {
        n.wait_ready().await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let mut member_rooms = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let mut m = n.connect(&format!("member{i}")).await;
        m.request(json!({"type": "join", "room": room}))
            .await
            .expect("join");
        let got = Arc::new(Mutex::new(Vec::new()));
        member_rooms.push(got.clone());
        let none = Arc::new(Mutex::new(Vec::new()));
        tasks.push(tokio::spawn(reader(m, got, none, stop.clone())));
    }
    let dead_got = Arc::new(Mutex::new(Vec::new()));
    let live_got = Arc::new(Mutex::new(Vec::new()));
    for (user, got) in [(&dead, &dead_got), (&live, &live_got)] {
        let c = nodes[1].connect(user).await;
        let none = Arc::new(Mutex::new(Vec::new()));
        tasks.push(tokio::spawn(reader(c, none, got.clone(), stop.clone())));
    }
    let mut sender = nodes[0].connect(&sender_name).await;

    let watch_stop = Arc::new(AtomicBool::new(false));
    let admins = nodes.iter().map(|n| n.admin).collect();
    let watcher = tokio::spawn(watch_ready(admins, watch_stop.clone()));

    // The shard goes down and stays down: no replica can take over.
    redis.pause(replica);
    redis.kill(victim);
    let down_at = Instant::now();

    let mut down_ok = 0u64;
    let mut down_unavailable = 0u64;
    for seq in 0..DOWN_SENDS {
        let sent = sender
            .request(
                json!({"type": "send", "to": dead, "id": client_id(seq), "content": {"seq": seq}}),
            )
            .await;
        match sent {
            Ok(_) => down_ok += 1,
            Err(ClientError::Server {
                code: ErrorCode::Unavailable,
                ..
            }) => down_unavailable += 1,
            Err(e) => panic!("send {seq} to the dead shard's user: {e}"),
        }
        // Live traffic on the other shards flows meanwhile.
        let live_seq = 1000 + seq;
        sender
            .request(json!({"type": "send", "to": live, "id": client_id(live_seq), "content": {"seq": live_seq}}))
            .await
            .expect("a send to a user on a live shard is confirmed");
    }
    let (status, body) = nodes[2]
        .api_post(
            "/api/v1/publish",
            &json!({"room": room, "content": {"while": "down"}}),
        )
        .await;
    assert_eq!(
        status, 503,
        "a room publish on the dead shard is not confirmed: {body}"
    );
    // Held down well past the cluster's node timeout.
    let hold = Duration::from_millis(NODE_TIMEOUT_MS * 3);
    tokio::time::sleep(hold.saturating_sub(down_at.elapsed())).await;
    eventually(
        "the live user got every send confirmed during the outage",
        Duration::from_secs(10),
        || async { (live_got.lock().unwrap().len() as u64 >= DOWN_SENDS).then_some(()) },
    )
    .await;

    // The replica takes over; the killed node comes back as its replica.
    redis.resume(replica);
    poll!(
        "the thawed replica is promoted",
        Duration::from_secs(30),
        redis.is_primary(replica).await.then_some(())
    );
    let promoted_after = down_at.elapsed();
    redis.restart(victim).await;

    // Every send retried with its id is confirmed, then delivered.
    let retries = AtomicU64::new(0);
    let mut duplicates = 0u64;
    for seq in 0..DOWN_SENDS {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match sender
                .request(json!({"type": "send", "to": dead, "id": client_id(seq), "content": {"seq": seq}}))
                .await
            {
                Ok(reply) => {
                    duplicates += u64::from(reply.duplicate == Some(true));
                    break;
                }
                Err(ClientError::Server {
                    code: ErrorCode::Unavailable,
                    ..
                }) => {
                    retries.fetch_add(1, Ordering::Relaxed);
                    assert!(Instant::now() < deadline, "send {seq} never confirmed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("send {seq}: {e}"),
            }
        }
    }
    let confirmed_after = down_at.elapsed();
    let wanted: HashSet<u64> = (0..DOWN_SENDS).collect();
    eventually(
        "the dead shard's user gets every confirmed send",
        Duration::from_secs(30),
        || async {
            let got: HashSet<u64> = dead_got.lock().unwrap().iter().map(|(_, s)| *s).collect();
            wanted.is_subset(&got).then_some(())
        },
    )
    .await;

    // Room members on every node get the room's messages again.
    let mut round = 0u64;
    let rooms_back = loop {
        round += 1;
        let mut published = 0;
        for (from, node) in nodes.iter().enumerate() {
            let content = json!({"round": round, "from": from});
            let (status, _) = node
                .api_post(
                    "/api/v1/publish",
                    &json!({"room": room, "content": content}),
                )
                .await;
            published += usize::from(status == 200);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let all = published == nodes.len()
            && member_rooms.iter().all(|got| {
                let got = got.lock().unwrap();
                (0..nodes.len()).all(|from| got.contains(&json!({"round": round, "from": from})))
            });
        if all {
            break down_at.elapsed();
        }
        assert!(
            down_at.elapsed() < Duration::from_secs(90),
            "room members never got room messages again"
        );
    };
    watch_stop.store(true, Ordering::Release);
    let (polls, not_ready) = watcher.await.expect("readiness watcher");
    let mut losses = Vec::new();
    let mut heartbeat_errors = Vec::new();
    for n in &nodes {
        losses.push(n.metric("wsgate_bus_shard_losses_total").await);
        heartbeat_errors.push(
            n.metric("wsgate_broker_errors_total{op=\"heartbeat\"}")
                .await,
        );
    }
    let (dead_arrivals, dead_ids) = {
        let got = dead_got.lock().unwrap();
        let ids: HashSet<&String> = got.iter().map(|(id, _)| id).collect();
        (got.len(), ids.len())
    };
    let line = format!(
        "redis cluster shard down (replica frozen, primary kill -9, held {hold:?}): /readyz polls \
         {polls}, not 200 {not_ready}; sends to the dead shard's user while down: ok {down_ok}, \
         unavailable {down_unavailable}; replica promoted after {promoted_after:?}; all {DOWN_SENDS} \
         confirmed by retry after {confirmed_after:?} ({} unavailable retries, {duplicates} \
         duplicate: true), arrivals {dead_arrivals} (distinct ids {dead_ids}, missing 0); room \
         messages through every node reach every member again after {rooms_back:?} (round \
         {round}); wsgate_bus_shard_losses_total per node {losses:?}, heartbeat errors per node \
         {heartbeat_errors:?}",
        retries.load(Ordering::Relaxed),
    );
    report(&line);
    assert_eq!(not_ready, 0, "a node went unready: {line}");
    assert_eq!(down_ok, 0, "a store on the dead shard answered ok: {line}");
    assert!(
        losses.iter().all(|l| *l >= 1.0),
        "every node counted the lost shard: {line}"
    );
    stop.store(true, Ordering::Release);
    for t in tasks {
        t.await.expect("reader task");
    }
}

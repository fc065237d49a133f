//! Room history and recovery in cluster mode (contract 5.4): real `wsgate`
//! processes on one real `redis-server`. Offsets follow the cluster-wide
//! publish order; a member that reconnects to another node with `since`
//! gets exactly what it missed, then live, while a publisher keeps
//! publishing; a killed node's members recover on a survivor; too old,
//! another epoch and a Redis restart without persistence do not recover;
//! the history API pages. Recovery figures go to the cluster report.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;
use wsgate_client::{Client, ClientError, MessageFrame, Reply, RoomPositions};

fn join(room: &str) -> Value {
    json!({"type": "join", "room": room})
}

fn join_since(room: &str, epoch: &str, offset: u64) -> Value {
    json!({"type": "join", "room": room, "since": {"epoch": epoch, "offset": offset}})
}

fn publish(room: &str, content: Value) -> Value {
    json!({"type": "publish", "room": room, "content": content})
}

fn position(reply: &Reply) -> (String, u64) {
    (
        reply.epoch.clone().expect("join reply has an epoch"),
        reply.offset.expect("join reply has an offset"),
    )
}

/// Reads room messages until one has offset `last`; returns them all.
async fn messages_until(client: &mut Client, last: u64) -> Vec<MessageFrame> {
    let mut got: Vec<MessageFrame> = Vec::new();
    loop {
        let m = client.next_message(T).await.unwrap_or_else(|e| {
            let seen: Vec<_> = got.iter().map(|m| m.offset).collect();
            panic!("waiting for offset {last} after {seen:?}: {e}")
        });
        let done = m.offset == Some(last);
        got.push(m);
        if done {
            return got;
        }
    }
}

fn offsets(messages: &[MessageFrame]) -> Vec<u64> {
    messages.iter().map(|m| m.offset.expect("offset")).collect()
}

async fn no_message(client: &mut Client) {
    match client.next_message(Duration::from_millis(300)).await {
        Err(ClientError::Timeout) => {}
        other => panic!("expected no message, got {other:?}"),
    }
}

/// The room's offset as the history API on `node` reports it.
async fn room_offset(node: &WsgateProc, room: &str) -> u64 {
    let (status, body) = node
        .api_get(&format!("/api/v1/rooms/{room}/history?limit=0"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["offset"].as_u64().expect("offset")
}

/// Publishes `from..=to` to `room` at about `per_second`, checking each
/// reply's offset equals the number published.
fn publisher(
    mut client: Client,
    room: &str,
    from: u64,
    to: u64,
    per_second: u64,
) -> tokio::task::JoinHandle<Client> {
    let room = room.to_owned();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / per_second));
        for i in from..=to {
            tick.tick().await;
            let r = client.request(publish(&room, json!(i))).await.unwrap();
            assert_eq!(r.offset, Some(i), "offsets follow the publish order");
        }
        client
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_follow_the_cluster_wide_order_and_the_api_pages() {
    let cluster = Cluster::start_on(RedisServer::start().await, 2, &["--history-size", "20"]).await;
    let [n1, n2] = [&cluster.nodes[0], &cluster.nodes[1]];
    let room = "hist-order";
    let mut alice = n1.connect("alice").await;
    let mut bob = n2.connect("bob").await;
    let (epoch, offset) = position(&alice.request(join(room)).await.unwrap());
    assert_eq!(offset, 0, "before any message");
    assert_eq!(
        position(&bob.request(join(room)).await.unwrap()),
        (epoch.clone(), 0)
    );
    let mut carol = n1.connect("carol").await;
    let mut dave = n2.connect("dave").await;
    for w in [&mut carol, &mut dave] {
        w.request(join(room)).await.unwrap();
    }
    // Two publishers on two nodes at once: one sequence for everybody.
    let pa = publisher_any(alice, room, "a", 30);
    let pb = publisher_any(bob, room, "b", 30);
    pa.await.unwrap();
    pb.await.unwrap();
    let seen_1 = messages_until(&mut carol, 60).await;
    let seen_2 = messages_until(&mut dave, 60).await;
    assert_eq!(offsets(&seen_1), (1..=60).collect::<Vec<_>>());
    let ids = |ms: &[MessageFrame]| ms.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&seen_1), ids(&seen_2), "the same order on both nodes");
    assert!(seen_1
        .iter()
        .all(|m| m.epoch.as_deref() == Some(epoch.as_str())));
    for p in ["a", "b"] {
        let mine: Vec<i64> = seen_1
            .iter()
            .filter(|m| m.content["p"] == json!(p))
            .map(|m| m.content["i"].as_i64().unwrap())
            .collect();
        assert_eq!(mine, (0..30).collect::<Vec<_>>(), "per-sender order");
    }
    // The API: the last 20 kept, in pages.
    let page = |q: &'static str| async move {
        let (status, body) = n2
            .api_get(&format!("/api/v1/rooms/{room}/history{q}"))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let all = page("").await;
    assert_eq!(
        (all["epoch"].clone(), all["offset"].clone()),
        (json!(epoch), json!(60))
    );
    let kept = |b: &Value| {
        b["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["offset"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(kept(&all), (41..=60).collect::<Vec<_>>());
    assert_eq!(kept(&page("?limit=7").await), (41..=47).collect::<Vec<_>>());
    assert_eq!(
        kept(&page("?since=47").await),
        (48..=60).collect::<Vec<_>>()
    );
    assert_eq!(kept(&page("?since=60").await), Vec::<u64>::new());
    assert_eq!(all["messages"][0]["id"], json!(seen_1[40].id));
    // An API message gets the next offset, on every node.
    let (status, body) = n1
        .api_post("/api/v1/publish", &json!({"room": room, "content": "api"}))
        .await;
    assert_eq!((status, body["offset"].clone()), (200, json!(61)), "{body}");
    for w in [&mut carol, &mut dave] {
        assert_eq!(w.next_message(T).await.unwrap().offset, Some(61));
    }
    // Too old (missed 51, 20 kept), another epoch, ahead: not recovered.
    let mut eve = n1.connect("eve").await;
    let r = eve.request(join_since(room, &epoch, 10)).await.unwrap();
    assert_eq!((r.recovered, r.offset), (Some(false), Some(61)));
    let mut frank = n2.connect("frank").await;
    let r = frank
        .request(join_since(room, "another-epoch", 60))
        .await
        .unwrap();
    assert_eq!(r.recovered, Some(false));
    let mut gina = n2.connect("gina").await;
    let r = gina.request(join_since(room, &epoch, 62)).await.unwrap();
    assert_eq!(r.recovered, Some(false));
    for c in [&mut eve, &mut frank, &mut gina] {
        no_message(c).await;
    }
    // Within the window: recovered, in order, replayed.
    let mut hal = n1.connect("hal").await;
    let r = hal.request(join_since(room, &epoch, 50)).await.unwrap();
    assert_eq!(r.recovered, Some(true));
    let got = messages_until(&mut hal, 61).await;
    assert_eq!(offsets(&got), (51..=61).collect::<Vec<_>>());
    assert!(got.iter().all(|m| m.replay));
    assert_eq!(
        n1.metric_required("wsgate_history_recoveries_total{result=\"recovered\"}")
            .await,
        1.0
    );
    assert_eq!(
        n2.metric_required("wsgate_history_recoveries_total{result=\"not_recovered\"}")
            .await,
        2.0
    );
}

/// `count` messages `{"p": tag, "i": 0..count}` as fast as replies come.
fn publisher_any(
    mut client: Client,
    room: &str,
    tag: &str,
    count: i64,
) -> tokio::task::JoinHandle<Client> {
    let (room, tag) = (room.to_owned(), tag.to_owned());
    tokio::spawn(async move {
        for i in 0..count {
            client
                .request(publish(&room, json!({"p": tag, "i": i})))
                .await
                .unwrap();
        }
        client
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_on_another_node_while_publishing_at_50_per_second() {
    let cluster = Cluster::start(2).await;
    let [n1, n2] = [&cluster.nodes[0], &cluster.nodes[1]];
    let room = "hist-seam";
    let mut bob = n1.connect("bob").await;
    let (epoch, _) = position(&bob.request(join(room)).await.unwrap());
    let mut alice = n1.connect("alice").await;
    alice.request(join(room)).await.unwrap();
    let total = 150;
    let publishing = publisher(alice, room, 1, total, 50);
    assert_eq!(
        offsets(&messages_until(&mut bob, 10).await),
        (1..=10).collect::<Vec<_>>()
    );
    bob.close(1000).await.unwrap();
    drop(bob);
    eventually(
        "the publisher to move on",
        Duration::from_secs(10),
        || async { (room_offset(n2, room).await >= 40).then_some(()) },
    )
    .await;
    let started = Instant::now();
    let mut bob = n2.connect("bob").await;
    let r = bob.request(join_since(room, &epoch, 10)).await.unwrap();
    assert_eq!(r.recovered, Some(true));
    let (_, upto) = position(&r);
    let replayed = messages_until(&mut bob, upto).await;
    let replay_time = started.elapsed();
    let live = messages_until(&mut bob, total).await;
    publishing.await.unwrap();
    let all: Vec<MessageFrame> = replayed.into_iter().chain(live).collect();
    assert_eq!(
        offsets(&all),
        (11..=total).collect::<Vec<_>>(),
        "no gap, no repeat"
    );
    for m in &all {
        let o = m.offset.unwrap();
        assert_eq!(
            m.replay,
            o <= upto,
            "replay up to the reply's offset: {m:?}"
        );
        assert_eq!(m.content, json!(o));
    }
    no_message(&mut bob).await;
    report(&format!(
        "history: reconnect to another node with since, {} missed messages replayed in {replay_time:?} (publisher at 50/s, then {} live, no gap or repeat)",
        upto - 10,
        total - upto
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_a_killed_node_recover_on_a_survivor() {
    let mut cluster = Cluster::start(2).await;
    let room = "hist-crash";
    let mut alice = cluster.nodes[0].connect("alice").await;
    alice.request(join(room)).await.unwrap();
    // Bob keeps his positions as a client should (the client crate's
    // RoomPositions), and re-joins from them after the crash.
    let mut positions = RoomPositions::new();
    let mut bob = cluster.nodes[1].connect("bob").await;
    positions.joined(room, &bob.request(join(room)).await.unwrap());
    for i in 1..=5 {
        alice.request(publish(room, json!(i))).await.unwrap();
    }
    for m in messages_until(&mut bob, 5).await {
        assert!(positions.observe(&m));
    }
    cluster.nodes[1].kill9();
    for i in 6..=15 {
        alice.request(publish(room, json!(i))).await.unwrap();
    }
    let mut bob = cluster.nodes[0].connect("bob").await;
    let rejoin = positions.rejoin_frames();
    assert_eq!(rejoin.len(), 1);
    let r = bob.request(rejoin[0].clone()).await.unwrap();
    assert_eq!((r.recovered, r.offset), (Some(true), Some(15)));
    positions.joined(room, &r);
    let got = messages_until(&mut bob, 15).await;
    assert_eq!(offsets(&got), (6..=15).collect::<Vec<_>>());
    assert!(got.iter().all(|m| m.replay && positions.observe(m)));
    alice.request(publish(room, json!(16))).await.unwrap();
    let m = bob.next_message(T).await.unwrap();
    assert_eq!((m.offset, m.replay), (Some(16), false));
    assert!(positions.observe(&m));
    assert_eq!(positions.get(room).map(|p| p.offset), Some(16));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_without_persistence_starts_a_new_epoch() {
    let mut cluster = Cluster::start(1).await;
    let room = "hist-restart";
    let mut alice = cluster.nodes[0].connect("alice").await;
    let (epoch, _) = position(&alice.request(join(room)).await.unwrap());
    for i in 1..=3 {
        alice.request(publish(room, json!(i))).await.unwrap();
    }
    messages_until(&mut alice, 3).await;
    cluster.redis.restart().await;
    cluster.all_ready(200, Duration::from_secs(20)).await;
    let mut bob = cluster.nodes[0].connect("bob").await;
    let r = bob.request(join_since(room, &epoch, 3)).await.unwrap();
    let (new_epoch, offset) = position(&r);
    assert_eq!(r.recovered, Some(false), "the history is gone");
    assert_ne!(new_epoch, epoch);
    assert_eq!(offset, 0);
    no_message(&mut bob).await;
    // The room goes on in the new epoch, from 1, for members old and new.
    let r = poll!("a publish after the restart", Duration::from_secs(10), {
        bob.request(publish(room, json!("after"))).await.ok()
    });
    assert_eq!(r.offset, Some(1));
    let m = messages_until(&mut alice, 1).await.pop().unwrap();
    assert_eq!(m.epoch.as_deref(), Some(new_epoch.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_figures() {
    let cluster =
        Cluster::start_on(RedisServer::start().await, 2, &["--history-size", "5000"]).await;
    let [n1, n2] = [&cluster.nodes[0], &cluster.nodes[1]];
    for (room, count) in [("hist-fig-100", 100u64), ("hist-fig-5000", 5000)] {
        let mut alice = n1.connect("alice").await;
        let (epoch, _) = position(&alice.request(join(room)).await.unwrap());
        // In batches, reading as we go: the outbox holds 1024 frames.
        for batch in (1..=count).collect::<Vec<_>>().chunks(200) {
            for i in batch {
                let m = publish(room, json!({"i": i, "pad": "x".repeat(64)}));
                alice.send_frame(&m).await.unwrap();
            }
            messages_until(&mut alice, *batch.last().unwrap()).await;
        }
        let started = Instant::now();
        let mut bob = n2.connect("bob").await;
        let r = bob.request(join_since(room, &epoch, 0)).await.unwrap();
        assert_eq!(r.recovered, Some(true));
        let got = messages_until(&mut bob, count).await;
        let took = started.elapsed();
        assert_eq!(got.len() as u64, count);
        report(&format!(
            "history: {count} messages recovered across nodes in {took:?} (connect + join + replay; {:.0} messages/s)",
            count as f64 / took.as_secs_f64()
        ));
    }
}

/// Publishes through `node`'s API, retrying while the node is not yet back
/// on the bus; returns the message's offset.
async fn api_publish(node: &WsgateProc, room: &str, content: Value) -> u64 {
    let body = json!({"room": room, "content": content});
    poll!("an API publish", Duration::from_secs(20), {
        let (status, reply) = node.api_post("/api/v1/publish", &body).await;
        (status == 200).then(|| reply["offset"].as_u64().expect("offset"))
    })
}

/// A member that stays connected while its node is off the bus (here: the
/// node is frozen while Redis restarts, so it resubscribes last) gets the
/// room messages published meanwhile from the history once its node is
/// back, before the live ones, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_that_stay_connected_through_a_bus_outage_catch_up() {
    let mut cluster = Cluster::start_on(RedisServer::start_with(true).await, 2, &[]).await;
    let room = "hist-outage";
    let mut bob = cluster.nodes[1].connect("bob").await;
    bob.request(join(room)).await.unwrap();
    for i in 1..=3 {
        api_publish(&cluster.nodes[0], room, json!(i)).await;
    }
    assert_eq!(offsets(&messages_until(&mut bob, 3).await), [1, 2, 3]);
    cluster.nodes[1].pause();
    cluster.redis.restart().await;
    for i in 4..=8 {
        assert_eq!(api_publish(&cluster.nodes[0], room, json!(i)).await, i);
    }
    cluster.nodes[1].resume();
    cluster.all_ready(200, Duration::from_secs(20)).await;
    let last = api_publish(&cluster.nodes[0], room, json!(9)).await;
    let got = messages_until(&mut bob, last).await;
    assert_eq!(
        offsets(&got),
        (4..=last).collect::<Vec<_>>(),
        "each once, in order"
    );
    assert!(
        got[..5].iter().all(|m| m.replay),
        "4-8 come from the history"
    );
    no_message(&mut bob).await;
}

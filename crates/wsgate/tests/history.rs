//! Room history and recovery in standalone mode, and across nodes sharing a
//! `MemoryBus` (contract 5.4): the join reply's position, contiguous
//! offsets, recovery with `since` (to another node, while a publisher keeps
//! publishing), the cases that do not recover, `history-size 0`, and the
//! history API.

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
use wsgate::cluster::memory::MemoryBus;
use wsgate::config::Config;
use wsgate::Backend;
use wsgate_client::{Client, Codec, Kind, MessageFrame, Options, Reply};

fn join_since(room: &str, epoch: &str, offset: u64) -> Value {
    json!({"type": "join", "room": room, "since": {"epoch": epoch, "offset": offset}})
}

fn position(reply: &Reply) -> (String, u64) {
    (
        reply.epoch.clone().expect("join reply has an epoch"),
        reply.offset.expect("join reply has an offset"),
    )
}

/// Reads room messages until one has offset `last`; returns them all.
async fn messages_until(client: &mut Client, last: u64) -> Vec<MessageFrame> {
    let mut got = Vec::new();
    loop {
        let m = client.next_message(T).await.unwrap_or_else(|e| {
            panic!(
                "waiting for offset {last} after {:?}: {e}",
                got.iter()
                    .map(|m: &MessageFrame| m.offset)
                    .collect::<Vec<_>>()
            )
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

/// Asserts that nothing but non-message frames arrives for a short while.
async fn no_message(client: &mut Client) {
    match client.next_message(SHORT).await {
        Err(wsgate_client::ClientError::Timeout) => {}
        other => panic!("expected no message, got {other:?}"),
    }
}

/// A node config with `history_size` and no practical rate limit (the
/// tests publish faster than the default 20 frames/s).
fn with_history(size: usize) -> Config {
    Config {
        history_size: size,
        rate_limit: 100_000,
        ..config()
    }
}

#[tokio::test]
async fn join_reply_and_messages_carry_the_position() {
    let n = start(with_history(100)).await;
    let room = unique("room");
    let mut alice = n.connect("alice").await;
    let joined = alice.request(join(&room)).await.unwrap();
    let (epoch, offset) = position(&joined);
    assert_eq!(offset, 0, "before any message");
    assert!(!epoch.is_empty());
    assert_eq!(joined.recovered, None, "no `since`, no `recovered`");
    for i in 1..=3u64 {
        let r = alice.request(publish(&room, json!(i))).await.unwrap();
        assert_eq!(r.offset, Some(i), "the publish reply names the offset");
    }
    let got = messages_until(&mut alice, 3).await;
    assert_eq!(offsets(&got), [1, 2, 3]);
    for m in &got {
        assert_eq!(
            (m.kind, m.epoch.as_deref()),
            (Kind::Room, Some(epoch.as_str()))
        );
        assert!(!m.replay);
    }
    // A later joiner sees the room's position, and API messages get offsets too.
    let mut bob = n.connect("bob").await;
    assert_eq!(
        position(&bob.request(join(&room)).await.unwrap()),
        (epoch.clone(), 3)
    );
    let res = n
        .api(
            "POST",
            "/api/v1/publish",
            Some(&json!({"room": room, "content": "api"})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        (res.json()["offset"].clone(), res.json()["epoch"].clone()),
        (json!(4), json!(epoch))
    );
    for c in [&mut alice, &mut bob] {
        let m = c.next_message(T).await.unwrap();
        assert_eq!((m.offset, m.from.as_str()), (Some(4), "server"));
    }
    // Another room has its own offsets.
    let other = unique("room");
    alice.request(join(&other)).await.unwrap();
    let r = alice.request(publish(&other, json!("x"))).await.unwrap();
    assert_eq!(r.offset, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_get_contiguous_offsets_in_delivery_order() {
    let n = start(with_history(100)).await;
    let room = unique("room");
    let mut watcher = n.connect("watcher").await;
    watcher.request(join(&room)).await.unwrap();
    let mut tasks = Vec::new();
    for p in 0..4 {
        let mut c = n.connect(&format!("pub{p}")).await;
        c.request(join(&room)).await.unwrap();
        let room = room.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                c.request(publish(&room, json!({"p": p, "i": i})))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let got = messages_until(&mut watcher, 100).await;
    assert_eq!(
        offsets(&got),
        (1..=100).collect::<Vec<_>>(),
        "delivered in offset order"
    );
    // Each publisher's own order holds within the shared sequence.
    for p in 0..4 {
        let mine: Vec<i64> = got
            .iter()
            .filter(|m| m.content["p"] == json!(p))
            .map(|m| m.content["i"].as_i64().unwrap())
            .collect();
        assert_eq!(mine, (0..25).collect::<Vec<_>>());
    }
}

/// The member leaves, misses messages while a publisher keeps publishing
/// at ~50/s, and comes back with `since` to another node: it gets exactly
/// the missed messages (replay) and then the live ones, no gap, no repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_on_another_node_while_publishing() {
    let bus = MemoryBus::new();
    let n1 = start_with(with_history(100), Backend::Memory(bus.clone())).await;
    let n2 = start_with(with_history(100), Backend::Memory(bus.clone())).await;
    let room = unique("room");
    let mut bob = n1.connect("bob").await;
    let (epoch, _) = position(&bob.request(join(&room)).await.unwrap());
    let mut alice = n2.connect("alice").await;
    alice.request(join(&room)).await.unwrap();
    let total = 150u64;
    let publisher = {
        let room = room.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for i in 1..=total {
                tick.tick().await;
                let r = alice.request(publish(&room, json!(i))).await.unwrap();
                assert_eq!(r.offset, Some(i));
            }
        })
    };
    let seen = messages_until(&mut bob, 10).await;
    assert_eq!(offsets(&seen), (1..=10).collect::<Vec<_>>());
    bob.close(1000).await.unwrap();
    drop(bob);
    // Miss some messages, then come back elsewhere.
    eventually("the publisher to move on", WAIT, || {
        let n = &n2;
        let path = format!("/api/v1/rooms/{room}/history?limit=0");
        async move {
            let res = n.api("GET", &path, None).await;
            res.status == 200 && res.json()["offset"].as_u64().is_some_and(|o| o >= 40)
        }
    })
    .await;
    let mut bob = n2.connect("bob").await;
    let r = bob.request(join_since(&room, &epoch, 10)).await.unwrap();
    assert_eq!(r.recovered, Some(true));
    let (same_epoch, upto) = position(&r);
    assert_eq!(same_epoch, epoch);
    assert!(upto >= 40);
    let rest = messages_until(&mut bob, total).await;
    publisher.await.unwrap();
    assert_eq!(
        offsets(&rest),
        (11..=total).collect::<Vec<_>>(),
        "no gap, no repeat"
    );
    for m in &rest {
        assert_eq!(
            m.replay,
            m.offset.unwrap() <= upto,
            "replay up to the reply's offset, live after: {m:?}"
        );
        assert_eq!(m.content, json!(m.offset.unwrap()));
    }
    no_message(&mut bob).await;
    assert_eq!(
        n2.metric("wsgate_history_recoveries_total{result=\"recovered\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn too_old_or_another_epoch_is_not_recovered() {
    let n = start(with_history(5)).await;
    let room = unique("room");
    let mut alice = n.connect("alice").await;
    let (epoch, _) = position(&alice.request(join(&room)).await.unwrap());
    for i in 1..=8 {
        alice.request(publish(&room, json!(i))).await.unwrap();
    }
    // 8 missed, 5 kept: not recovered, and nothing replayed.
    let mut bob = n.connect("bob").await;
    let r = bob.request(join_since(&room, &epoch, 0)).await.unwrap();
    assert_eq!((r.recovered, r.offset), (Some(false), Some(8)));
    no_message(&mut bob).await;
    alice.request(publish(&room, json!(9))).await.unwrap();
    let m = bob.next_message(T).await.unwrap();
    assert_eq!((m.offset, m.replay), (Some(9), false), "live goes on");
    // 4 missed, all kept: recovered.
    let mut carol = n.connect("carol").await;
    let r = carol.request(join_since(&room, &epoch, 5)).await.unwrap();
    assert_eq!(r.recovered, Some(true));
    let got = messages_until(&mut carol, 9).await;
    assert_eq!(offsets(&got), [6, 7, 8, 9]);
    assert!(got.iter().all(|m| m.replay));
    // Another epoch, or an offset ahead of the room.
    let mut dave = n.connect("dave").await;
    let r = dave
        .request(join_since(&room, "not-the-epoch", 8))
        .await
        .unwrap();
    assert_eq!(
        (r.recovered, r.epoch.as_deref()),
        (Some(false), Some(epoch.as_str()))
    );
    let mut erin = n.connect("erin").await;
    let r = erin.request(join_since(&room, &epoch, 99)).await.unwrap();
    assert_eq!(r.recovered, Some(false));
    for c in [&mut dave, &mut erin] {
        no_message(c).await;
    }
    assert_eq!(
        n.metric("wsgate_history_recoveries_total{result=\"not_recovered\"}")
            .await,
        3.0
    );
    // A connection already in the room is live: recovered only when it
    // missed nothing, and never replayed to.
    let r = carol.request(join_since(&room, &epoch, 9)).await.unwrap();
    assert_eq!(r.recovered, Some(true));
    let r = carol.request(join_since(&room, &epoch, 3)).await.unwrap();
    assert_eq!(r.recovered, Some(false));
    no_message(&mut carol).await;
}

#[tokio::test]
async fn history_size_zero_assigns_offsets_and_recovers_only_when_nothing_was_missed() {
    let n = start(with_history(0)).await;
    let room = unique("room");
    let mut alice = n.connect("alice").await;
    let (epoch, _) = position(&alice.request(join(&room)).await.unwrap());
    for i in 1..=3u64 {
        assert_eq!(
            alice
                .request(publish(&room, json!(i)))
                .await
                .unwrap()
                .offset,
            Some(i)
        );
    }
    let mut bob = n.connect("bob").await;
    let r = bob.request(join_since(&room, &epoch, 3)).await.unwrap();
    assert_eq!((r.recovered, r.offset), (Some(true), Some(3)));
    let mut carol = n.connect("carol").await;
    assert_eq!(
        carol
            .request(join_since(&room, &epoch, 2))
            .await
            .unwrap()
            .recovered,
        Some(false)
    );
    no_message(&mut carol).await;
    let res = n
        .api("GET", &format!("/api/v1/rooms/{room}/history"), None)
        .await;
    assert_eq!(res.json()["messages"], json!([]));
    assert_eq!(res.json()["offset"], json!(3));
}

#[tokio::test]
async fn recovery_works_on_msgpack_connections() {
    let n = start(with_history(100)).await;
    let room = unique("room");
    let mut alice = n.connect("alice").await;
    let (epoch, _) = position(&alice.request(join(&room)).await.unwrap());
    for i in 1..=3 {
        alice
            .request(publish(&room, json!({"n": i})))
            .await
            .unwrap();
    }
    let opts = Options::new(n.ws_url())
        .token(token("bob"))
        .codec(Codec::Msgpack);
    let mut bob = n.connect_with(opts).await.unwrap();
    let r = bob.request(join_since(&room, &epoch, 1)).await.unwrap();
    assert_eq!(r.recovered, Some(true));
    let got = messages_until(&mut bob, 3).await;
    assert_eq!(offsets(&got), [2, 3]);
    assert_eq!(
        (got[0].epoch.as_deref(), got[0].replay),
        (Some(epoch.as_str()), true)
    );
    // A malformed `since` is a bad_request with the ref.
    let err = bob
        .request(json!({"type": "join", "room": room, "since": {"epoch": epoch}, "ref": "j"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(wsgate_client::ErrorCode::BadRequest));
}

#[tokio::test]
async fn a_large_recovery_is_replayed_in_pages_before_live() {
    let n = start(with_history(1000)).await;
    let room = unique("room");
    let mut alice = n.connect("alice").await;
    let (epoch, _) = position(&alice.request(join(&room)).await.unwrap());
    for i in 1..=350u64 {
        alice.send_frame(&publish(&room, json!(i))).await.unwrap();
    }
    messages_until(&mut alice, 350).await;
    let mut bob = n.connect("bob").await;
    let started = Instant::now();
    let r = bob.request(join_since(&room, &epoch, 0)).await.unwrap();
    assert_eq!(r.recovered, Some(true));
    alice.request(publish(&room, json!(351))).await.unwrap();
    let got = messages_until(&mut bob, 351).await;
    let took = started.elapsed();
    assert_eq!(offsets(&got), (1..=351).collect::<Vec<_>>());
    assert!(got[..350].iter().all(|m| m.replay) && !got[350].replay);
    eprintln!("[history report] standalone: 350 messages replayed in {took:?}");
}

#[tokio::test]
async fn history_api_pages_through_the_kept_messages() {
    let n = start(with_history(5)).await;
    let room = unique("room");
    let path = |q: &str| format!("/api/v1/rooms/{room}/history{q}");
    let empty = n.api("GET", &path(""), None).await;
    assert_eq!(empty.status, 200, "{}", empty.text());
    let epoch = empty.json()["epoch"].clone();
    assert_eq!(
        empty.json(),
        json!({"room": room, "epoch": epoch, "offset": 0, "messages": []})
    );
    for i in 1..=7 {
        let res = n
            .api(
                "POST",
                "/api/v1/publish",
                Some(&json!({"room": room, "content": i, "from": "svc"})),
            )
            .await;
        assert_eq!(res.status, 200);
    }
    let page = |q: &'static str| {
        let n = &n;
        let p = path(q);
        let epoch = epoch.clone();
        async move {
            let res = n.api("GET", &p, None).await;
            assert_eq!(res.status, 200, "{}", res.text());
            let body = res.json();
            assert_eq!(
                (body["epoch"].clone(), body["offset"].clone()),
                (epoch.clone(), json!(7))
            );
            body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["offset"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page("").await, [3, 4, 5, 6, 7], "the last 5 kept");
    assert_eq!(page("?limit=2").await, [3, 4]);
    assert_eq!(page("?since=4&limit=2").await, [5, 6]);
    assert_eq!(page("?since=6&limit=2").await, [7]);
    assert_eq!(page("?since=7").await, Vec::<u64>::new());
    let full = n.api("GET", &path("?since=6"), None).await.json();
    let m = &full["messages"][0];
    assert_eq!(
        (m["kind"].clone(), m["from"].clone(), m["content"].clone()),
        (json!("room"), json!("svc"), json!(7))
    );
    assert!(m["id"].as_str().is_some_and(|id| !id.is_empty()));
    n.api("GET", &path("?since=x"), None)
        .await
        .assert_error(400, "bad_request");
    n.api("GET", &path("?cursor=1"), None)
        .await
        .assert_error(400, "bad_request");
    n.api("GET", "/api/v1/rooms/a%20b/history", None)
        .await
        .assert_error(400, "bad_request");
    let unauthorized = http(n.admin, "GET", &path(""), &[], None).await;
    unauthorized.assert_error(401, "unauthorized");
    assert!(
        n.metric("wsgate_api_requests_total{route=\"history\",status=\"200\"}")
            .await
            >= 6.0
    );
    let spec = n.api("GET", "/api/v1/openapi.json", None).await.json();
    assert!(spec["paths"]["/api/v1/rooms/{room}/history"]["get"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_frames_during_a_join_wait_behind_the_reply() {
    // A join's position and the live stream meet exactly: whatever is
    // published while others join, each joiner's first live message is the
    // offset after its reply's.
    let n = start(with_history(100)).await;
    let room = unique("room");
    let mut alice = n.connect("alice").await;
    alice.request(join(&room)).await.unwrap();
    let publisher = {
        let room = room.clone();
        tokio::spawn(async move {
            for i in 1..=200u64 {
                alice.request(publish(&room, json!(i))).await.unwrap();
            }
        })
    };
    let mut joiners = Vec::new();
    for j in 0..10 {
        let mut c = n.connect(&format!("j{j}")).await;
        let r = c.request(join(&room)).await.unwrap();
        joiners.push((c, r.offset.unwrap()));
    }
    publisher.await.unwrap();
    for (mut c, at) in joiners {
        if at == 200 {
            continue;
        }
        let got = messages_until(&mut c, 200).await;
        assert_eq!(offsets(&got), (at + 1..=200).collect::<Vec<_>>());
    }
}

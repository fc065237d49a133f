//! Delivery on one node (contract section 5): direct messages at-least-once
//! through the inbox (stored before the reply, replayed first on reconnect,
//! removed by ack, trimmed, expired, redelivered after the ack timeout),
//! receipts, per-sender order, room and broadcast messages, presence events,
//! and slow consumers.

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use wsgate_client::{Kind, ServerFrame};

/// A test config without a practical rate limit: these tests send fast.
fn cfg() -> wsgate::config::Config {
    let mut c = config();
    c.rate_limit = 100_000;
    c
}

/// Version nibble of a UUID string.
fn uuid_version(id: &str) -> Option<char> {
    id.chars().nth(14)
}

#[tokio::test]
async fn a_direct_message_to_an_online_user_and_its_receipt() {
    let node = start(cfg()).await;
    let mut alice = node.connect("alice").await;
    let mut alice2 = node.connect("alice").await;
    let mut bob1 = node.connect("bob").await;
    let mut bob2 = node.connect("bob").await;
    let stored = node.metric("wsgate_inbox_stored_total").await;
    let reply = alice
        .request(send("bob", json!({"text": "hi"})))
        .await
        .unwrap();
    let id = reply.id.clone().unwrap();
    assert_eq!(reply.online, Some(true));
    assert_eq!(uuid_version(&id), Some('7'), "{id}");
    // Stored before the reply.
    assert_eq!(node.metric("wsgate_inbox_stored_total").await, stored + 1.0);
    for bob in [&mut bob1, &mut bob2] {
        let m = bob.next_message(T).await.unwrap();
        assert_eq!(m.id, id);
        assert_eq!(m.kind, Kind::Direct);
        assert_eq!(m.from, "alice");
        assert_eq!(m.to.as_deref(), Some("bob"));
        assert!(m.room.is_none());
        assert_eq!(m.content, json!({"text": "hi"}));
        assert!(!m.replay);
        assert!(m.time.abs_diff(now_secs() * 1000) < 60_000);
    }
    bob2.ack(&id).await.unwrap();
    for a in [&mut alice, &mut alice2] {
        let f = a
            .next_frame_where(T, |f| matches!(f, ServerFrame::Receipt { .. }))
            .await
            .unwrap();
        assert_eq!(
            f,
            ServerFrame::Receipt {
                id: id.clone(),
                by: "bob".into(),
                status: "delivered".into()
            }
        );
    }
    eventually("the ack is counted", WAIT, || async {
        node.metric("wsgate_inbox_acked_total").await == 1.0
    })
    .await;
    assert!(
        node.metric("wsgate_messages_delivered_total{kind=\"direct\"}")
            .await
            >= 2.0
    );
    // Acked: nothing is replayed to a new connection.
    let mut bob3 = node.connect("bob").await;
    let r = bob3.request(json!({"type": "ping"})).await.unwrap();
    assert!(r.ok);
    assert!(bob3.next_value(SHORT).await.is_err(), "no replay after ack");
}

#[tokio::test]
async fn offline_messages_are_replayed_in_order_then_removed_by_ack() {
    let node = start(cfg()).await;
    let mut alice = node.connect("alice").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = alice.request(send("carol", json!(i))).await.unwrap();
        assert_eq!(r.online, Some(false));
        ids.push(r.id.unwrap());
    }
    let mut carol = node.connect("carol").await;
    for (i, id) in ids.iter().enumerate() {
        let m = carol.next_message(T).await.unwrap();
        assert!(m.replay, "replayed messages carry replay: true");
        assert_eq!((&m.id, &m.content), (id, &json!(i)));
    }
    // Not acked: replayed again on the next connection.
    drop(carol);
    let mut carol = node.connect("carol").await;
    let first = carol.next_message(T).await.unwrap();
    assert_eq!(first.id, ids[0]);
    carol
        .request(json!({"type": "ack", "ids": ids[..4].to_vec()}))
        .await
        .unwrap();
    carol.ack(&ids[4]).await.unwrap();
    eventually("every ack is applied", WAIT, || async {
        node.metric("wsgate_inbox_acked_total").await == 5.0
    })
    .await;
    let mut carol = node.connect("carol").await;
    carol.request(json!({"type": "ping"})).await.unwrap();
    assert!(carol.next_value(SHORT).await.is_err(), "inbox is empty");
    assert!(node.metric("wsgate_inbox_replayed_total").await >= 6.0);
}

#[tokio::test]
async fn the_replay_comes_before_any_live_message() {
    let node = start(cfg()).await;
    let mut sender = node.connect("sender").await;
    for i in 0..20 {
        sender.request(send("dan", json!(i))).await.unwrap();
    }
    // Live messages flow while dan connects.
    let live = tokio::spawn(async move {
        for i in 20..60 {
            sender.request(send("dan", json!(i))).await.unwrap();
        }
        sender
    });
    let mut dan = node.connect("dan").await;
    let mut seen_live = false;
    let mut last_live = -1;
    let mut replayed = Vec::new();
    while last_live < 59 {
        let m = dan.next_message(T).await.unwrap();
        let n = m.content.as_i64().unwrap();
        if m.replay {
            assert!(!seen_live, "a replayed message came after a live one");
            replayed.push(n);
        } else {
            seen_live = true;
            assert!(n > last_live, "live order: {n} after {last_live}");
            last_live = n;
        }
    }
    // The replay holds every message stored before the connect, in order.
    assert_eq!(replayed[..20], (0..20).collect::<Vec<_>>()[..]);
    assert!(replayed.windows(2).all(|w| w[0] < w[1]), "{replayed:?}");
    live.await.unwrap();
}

#[tokio::test]
async fn with_drop_oldest_the_inbox_keeps_the_newest_inbox_max_messages() {
    let mut cfg = cfg();
    cfg.inbox_max = 3;
    cfg.inbox_overflow = wsgate::config::InboxOverflow::DropOldest;
    let node = start(cfg).await;
    let mut alice = node.connect("alice").await;
    for i in 0..5 {
        alice.request(send("erin", json!(i))).await.unwrap();
    }
    assert_eq!(
        node.metric("wsgate_inbox_dropped_total{reason=\"trimmed\"}")
            .await,
        2.0
    );
    let mut erin = node.connect("erin").await;
    for i in 2..5 {
        let m = erin.next_message(T).await.unwrap();
        assert_eq!((m.content, m.replay), (json!(i), true));
    }
    erin.request(json!({"type": "ping"})).await.unwrap();
    assert!(erin.next_value(SHORT).await.is_err());
}

#[tokio::test]
async fn an_inbox_expires_after_inbox_ttl() {
    let mut cfg = cfg();
    cfg.inbox_ttl = Duration::from_millis(300);
    let node = start(cfg).await;
    let mut alice = node.connect("alice").await;
    alice.request(send("frank", json!(1))).await.unwrap();
    alice.request(send("frank", json!(2))).await.unwrap();
    eventually("the inbox expires", WAIT, || async {
        node.metric("wsgate_inbox_dropped_total{reason=\"expired\"}")
            .await
            == 2.0
    })
    .await;
    let mut frank = node.connect("frank").await;
    frank.request(json!({"type": "ping"})).await.unwrap();
    assert!(frank.next_value(SHORT).await.is_err(), "nothing replayed");
}

#[tokio::test]
async fn an_unacked_live_message_is_redelivered_after_ack_timeout() {
    let mut cfg = cfg();
    cfg.ack_timeout = Duration::from_millis(300);
    let node = start(cfg).await;
    let mut alice = node.connect("alice").await;
    let mut gina = node.connect("gina").await;
    let id = alice
        .request(send("gina", json!("once")))
        .await
        .unwrap()
        .id
        .unwrap();
    let live = gina.next_message(T).await.unwrap();
    assert_eq!((live.id.as_str(), live.replay), (id.as_str(), false));
    let again = gina.next_message(T).await.unwrap();
    assert_eq!(again.id, id);
    assert!(again.replay, "the redelivery carries replay: true");
    assert_eq!(again.content, json!("once"));

    // An acked live message is not redelivered: the next message gina sees
    // is a later one, sent after the ack timeout has passed.
    let id2 = alice
        .request(send("gina", json!("acked")))
        .await
        .unwrap()
        .id
        .unwrap();
    let m = gina
        .next_frame_where(T, |f| matches!(f, ServerFrame::Message(m) if m.id == id2))
        .await
        .unwrap();
    assert!(matches!(m, ServerFrame::Message(_)));
    gina.ack(&id2).await.unwrap();
    gina.ack(&id).await.unwrap();
    eventually("both acks are applied", WAIT, || async {
        node.metric("wsgate_inbox_acked_total").await == 2.0
    })
    .await;
    // Nothing more arrives for longer than the ack timeout.
    let r = gina.next_value(Duration::from_millis(600)).await;
    assert!(r.as_ref().map_or(true, |v| v["type"] != "message"), "{r:?}");
}

#[tokio::test]
async fn messages_from_one_sender_keep_their_order() {
    let node = start(cfg()).await;
    let mut a = node.connect("a").await;
    let mut b = node.connect("b").await;
    a.request(join("ordered")).await.unwrap();
    b.request(join("ordered")).await.unwrap();
    for i in 0..50 {
        a.send_frame(&send("b", json!(i))).await.unwrap();
        a.send_frame(&publish("ordered", json!(i))).await.unwrap();
    }
    let (mut direct, mut room) = (0, 0);
    while direct < 50 || room < 50 {
        let m = b.next_message(T).await.unwrap();
        match m.kind {
            Kind::Direct => {
                assert_eq!(m.content, json!(direct));
                direct += 1;
            }
            Kind::Room => {
                assert_eq!(m.content, json!(room));
                room += 1;
            }
            Kind::Broadcast => panic!("unexpected broadcast"),
        }
    }
}

#[tokio::test]
async fn room_and_broadcast_messages_reach_who_is_there() {
    let node = start(cfg()).await;
    let mut a = node.connect("a").await;
    let mut b = node.connect("b").await;
    let mut outsider = node.connect("c").await;
    a.request(join("news")).await.unwrap();
    b.request(join("news")).await.unwrap();
    let id = a
        .request(publish("news", json!("headline")))
        .await
        .unwrap()
        .id
        .unwrap();
    for c in [&mut a, &mut b] {
        let m = c.next_message(T).await.unwrap();
        assert_eq!(m.id, id);
        assert_eq!(m.kind, Kind::Room);
        assert_eq!(m.room.as_deref(), Some("news"));
        assert!(m.to.is_none());
        assert_eq!((m.from.as_str(), &m.content), ("a", &json!("headline")));
    }
    let mut caster = node.connect_token(&broadcaster("caster")).await.unwrap();
    let bid = caster
        .request(json!({"type": "broadcast", "content": "to all"}))
        .await
        .unwrap()
        .id
        .unwrap();
    for c in [&mut a, &mut b, &mut outsider, &mut caster] {
        let m = c.next_message(T).await.unwrap();
        assert_eq!((m.id.as_str(), m.kind), (bid.as_str(), Kind::Broadcast));
    }
    // The outsider's first message was the broadcast: it never saw the room message.
    // Room messages are not stored: a later member gets nothing from before.
    let mut late = node.connect("late").await;
    late.request(join("news")).await.unwrap();
    late.request(json!({"type": "ping"})).await.unwrap();
    assert!(late.next_value(SHORT).await.is_err());
    assert_eq!(
        node.metric("wsgate_messages_published_total{kind=\"room\"}")
            .await,
        1.0
    );
    assert_eq!(
        node.metric("wsgate_messages_published_total{kind=\"broadcast\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn presence_events_and_online_status() {
    let node = start(cfg()).await;
    let mut a = node.connect("alice").await;
    a.request(join("hall")).await.unwrap();
    let mut b1 = node.connect("bob").await;
    b1.request(join("hall")).await.unwrap();
    let join_event = ServerFrame::Presence {
        room: "hall".into(),
        event: wsgate_client::PresenceEvent::Join,
        user: "bob".into(),
    };
    assert_eq!(a.next_frame(T).await.unwrap(), join_event);
    // A second connection of bob joining is not a new member: no event.
    let mut b2 = node.connect("bob").await;
    b2.request(join("hall")).await.unwrap();
    b1.request(json!({"type": "leave", "room": "hall"}))
        .await
        .unwrap();
    // bob is still in the room through b2; his leave comes when b2 goes.
    let r = a
        .request(json!({"type": "presence", "room": "hall"}))
        .await
        .unwrap();
    assert_eq!(r.members, Some(vec!["alice".into(), "bob".into()]));
    assert!(a.next_value(SHORT).await.is_err(), "no event yet");
    b2.close(1000).await.unwrap();
    let f = a.next_frame(T).await.unwrap();
    assert_eq!(
        f,
        ServerFrame::Presence {
            room: "hall".into(),
            event: wsgate_client::PresenceEvent::Leave,
            user: "bob".into(),
        }
    );
    let r = a
        .request(json!({"type": "presence", "user": "bob"}))
        .await
        .unwrap();
    assert_eq!((r.online, r.connections), (Some(true), Some(1)));
    drop(b1);
    eventually("bob goes offline", WAIT, || async {
        let r = node.api("GET", "/api/v1/users/bob", None).await.json();
        r["online"] == false
    })
    .await;
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_1013_and_others_are_unaffected() {
    let mut cfg = cfg();
    cfg.outbox_size = 8;
    let node = start(cfg).await;
    let mut stuck = node
        .connect_with(node.opts("stuck").recv_buffer_bytes(4096))
        .await
        .unwrap();
    let reader = node.connect("reader").await;
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    let reading = tokio::spawn(async move {
        let mut reader = reader;
        while reader.next_message(T).await.is_ok() {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        reader
    });
    let chunk = "x".repeat(16 * 1024);
    let kicked = |node: &TestNode| {
        node.node.hub().all().iter().any(|c| {
            &*c.user == "stuck" && c.kicked() == Some(wsgate_protocol::CloseCode::TryAgainLater)
        })
    };
    let mut sent = 0;
    while !kicked(&node) {
        assert!(sent < 2000, "the slow consumer was never closed");
        let res = node
            .api(
                "POST",
                "/api/v1/publish",
                Some(&json!({"broadcast": true, "content": chunk})),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        sent += 1;
    }
    // The stuck client, reading at last, gets what was written, then 1013.
    let info = stuck.wait_closed(Duration::from_secs(15)).await.unwrap();
    assert_eq!(info.code, Some(1013), "{info:?}");
    eventually("the slow consumer is counted", WAIT, || async {
        node.metric("wsgate_slow_consumer_disconnects_total").await == 1.0
            && node.metric("wsgate_disconnects_total{code=\"1013\"}").await == 1.0
    })
    .await;
    // The reader got every broadcast and is still connected.
    eventually("the reader has every broadcast", WAIT, || async {
        count.load(std::sync::atomic::Ordering::Relaxed) == sent
    })
    .await;
    assert_eq!(node.node.hub().user_connections("reader"), 1);
    assert_eq!(node.node.hub().user_connections("stuck"), 0);
    reading.abort();
}

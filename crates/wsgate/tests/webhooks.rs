//! Webhooks in standalone mode (contract section 10), against a real HTTP
//! receiver started by the test: signed batches, one `user.online` /
//! `user.offline` per transition, the offline delay, retries of 500s,
//! room transitions, and `message.*` events carrying the message frame.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::*;

const HOOK_SECRET: &str = "webhook-test-secret";

async fn node(receiver: &Receiver, extra: &[&str]) -> WsgateProc {
    let url = receiver.url();
    let mut args = vec![
        "--allow-anonymous",
        "--node-id",
        "wsgate",
        "--webhook-url",
        url.as_str(),
        "--webhook-secret",
        HOOK_SECRET,
        "--webhook-backoff-max",
        "1s",
    ];
    args.extend_from_slice(extra);
    WsgateProc::start(&args).await
}

const ALL: &str = "user.online,user.offline,room.occupied,room.vacated,member.joined,member.left,message.room,message.direct";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_online_and_one_offline_per_transition_signed() {
    let receiver = Receiver::start(HOOK_SECRET).await;
    let node = node(&receiver, &["--webhook-offline-delay", "300ms"]).await;

    let mut a1 = node.connect("alice").await;
    let online = receiver
        .wait("alice's user.online", |e| !types(e).is_empty())
        .await;
    assert_eq!(types(&online), ["user.online"]);
    let e = &online[0];
    assert_eq!(e["user"], "alice");
    assert!(e["id"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
    assert!(e["time"].as_u64().is_some(), "{e}");

    // A second connection is no transition; closing one of two is none either.
    let mut a2 = node.connect("alice").await;
    a1.close(1000).await.expect("close a1");
    // bob's transitions come after: once they arrive, alice's would have.
    let mut bob = node.connect("bob").await;
    bob.close(1000).await.expect("close bob");
    receiver
        .wait("bob's user.offline", |e| {
            e.iter()
                .any(|x| x["type"] == "user.offline" && x["user"] == "bob")
        })
        .await;
    assert_eq!(receiver.of("user.online", "alice").len(), 1);
    assert!(receiver.of("user.offline", "alice").is_empty());

    a2.close(1000).await.expect("close a2");
    receiver
        .wait("alice's user.offline", |e| {
            e.iter()
                .any(|x| x["type"] == "user.offline" && x["user"] == "alice")
        })
        .await;
    assert_eq!(receiver.of("user.online", "alice").len(), 1);
    assert_eq!(receiver.of("user.offline", "alice").len(), 1);

    let batches = receiver.batches();
    assert!(!batches.is_empty());
    for b in &batches {
        assert!(b.verified, "signature of {}", b.body);
        assert!(b.body["id"].as_str().is_some(), "batch id: {}", b.body);
        assert!(b.body["time"].as_u64().is_some(), "batch time: {}", b.body);
    }
    assert_eq!(
        node.metric(r#"wsgate_webhook_deliveries_total{result="ok"}"#)
            .await,
        batches.len() as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_within_the_delay_sends_neither_offline_nor_online() {
    let receiver = Receiver::start(HOOK_SECRET).await;
    let node = node(&receiver, &["--webhook-offline-delay", "1s"]).await;

    let mut a = node.connect("alice").await;
    receiver
        .wait("alice's user.online", |e| !e.is_empty())
        .await;
    a.close(1000).await.expect("close");
    // A page reload: back at once.
    let mut a = node.connect("alice").await;
    // Gone for good this time.
    a.close(1000).await.expect("close");
    let events = receiver
        .wait("alice's user.offline", |e| {
            e.iter().any(|x| x["type"] == "user.offline")
        })
        .await;
    // Exactly one of each: the reload sent no offline and no second online.
    assert_eq!(types(&events), ["user.online", "user.offline"]);

    // Online and offline alternate on the next real return.
    let mut a = node.connect("alice").await;
    receiver
        .wait("alice's second user.online", |e| e.len() == 3)
        .await;
    a.close(1000).await.expect("close");
    let events = receiver
        .wait("alice's second offline", |e| e.len() == 4)
        .await;
    assert_eq!(
        types(&events),
        ["user.online", "user.offline", "user.online", "user.offline"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_until_the_receiver_takes_the_batch() {
    let receiver = Receiver::start(HOOK_SECRET).await;
    receiver.answer_next(&[500, 503, 500]);
    let node = node(&receiver, &[]).await;
    let _alice = node.connect("alice").await;
    let events = receiver
        .wait("alice's user.online", |e| !e.is_empty())
        .await;
    assert_eq!(types(&events), ["user.online"]);
    let batches = receiver.batches();
    assert_eq!(
        batches.iter().map(|b| b.status).collect::<Vec<_>>(),
        [500, 503, 500, 200]
    );
    // The same batch each time, signed each time.
    assert!(batches
        .iter()
        .all(|b| b.body == batches[0].body && b.verified));
    assert_eq!(
        node.metric(r#"wsgate_webhook_deliveries_total{result="retry"}"#)
            .await,
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_dropped_and_counted_after_max_attempts() {
    let receiver = Receiver::start(HOOK_SECRET).await;
    receiver.answer_next(&[500, 500]);
    let node = node(&receiver, &["--webhook-max-attempts", "2"]).await;
    let _alice = node.connect("alice").await;
    eventually("the dropped batch is counted", WAIT, || async {
        node.metric(r#"wsgate_webhook_deliveries_total{result="dropped"}"#)
            .await
            == 1.0
    })
    .await;
    assert_eq!(
        node.metric(r#"wsgate_webhook_events_dropped_total{reason="max_attempts"}"#)
            .await,
        1.0
    );
    // The next event goes through.
    let _bob = node.connect("bob").await;
    let events = receiver.wait("bob's user.online", |e| !e.is_empty()).await;
    assert_eq!(events[0]["user"], "bob");
    assert!(receiver.of("user.online", "alice").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_and_message_events_carry_what_happened() {
    let receiver = Receiver::start(HOOK_SECRET).await;
    let node = node(&receiver, &["--webhook-events", ALL]).await;
    let mut alice = node.connect("alice").await;
    let mut bob = node.connect("bob").await;
    alice.request(join("den")).await.expect("join");
    bob.request(join("den")).await.expect("join");
    let content = json!({"text": "hello den", "n": 1});
    let room_reply = alice
        .request(publish("den", content.clone()))
        .await
        .expect("publish");
    let direct = json!({"text": "psst"});
    let direct_reply = alice
        .request(send("bob", direct.clone()))
        .await
        .expect("send");
    alice
        .request(json!({"type": "leave", "room": "den"}))
        .await
        .expect("leave");
    bob.request(json!({"type": "leave", "room": "den"}))
        .await
        .expect("leave");

    let events = receiver
        .wait("the room's vacated event", |e| {
            e.iter().any(|x| x["type"] == "room.vacated")
        })
        .await;
    let room_events: Vec<Value> = events
        .iter()
        .filter(|e| e["room"] == "den")
        .cloned()
        .collect();
    assert_eq!(
        types(&room_events),
        [
            "room.occupied",
            "member.joined",
            "member.joined",
            "member.left",
            "member.left",
            "room.vacated"
        ]
    );
    assert_eq!(room_events[1]["user"], "alice");
    assert_eq!(room_events[2]["user"], "bob");
    assert_eq!(room_events[3]["user"], "alice");

    let m = events
        .iter()
        .find(|e| e["type"] == "message.room")
        .expect("message.room");
    let frame = &m["message"];
    assert_eq!(frame["type"], "message");
    assert_eq!(frame["kind"], "room");
    assert_eq!(frame["id"].as_str(), room_reply.id.as_deref());
    assert_eq!(frame["from"], "alice");
    assert_eq!(frame["room"], "den");
    assert_eq!(frame["content"], content);
    assert!(frame["time"].as_u64().is_some());
    assert_eq!(frame["offset"], 1);
    assert_ne!(m["id"], frame["id"], "the event has its own id");

    let d = events
        .iter()
        .find(|e| e["type"] == "message.direct")
        .expect("message.direct");
    let frame = &d["message"];
    assert_eq!(frame["kind"], "direct");
    assert_eq!(frame["id"].as_str(), direct_reply.id.as_deref());
    assert_eq!(frame["from"], "alice");
    assert_eq!(frame["to"], "bob");
    assert_eq!(frame["content"], direct);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_types_are_sent() {
    let receiver = Receiver::start(HOOK_SECRET).await;
    let node = node(&receiver, &["--webhook-events", "member.joined"]).await;
    let mut alice = node.connect("alice").await;
    alice.request(join("den")).await.expect("join");
    let events = receiver.wait("member.joined", |e| !e.is_empty()).await;
    assert_eq!(types(&events), ["member.joined"]);
}

#[test]
fn a_webhook_url_without_a_secret_stops_start_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args([
            "--allow-anonymous",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--webhook-url",
            "http://127.0.0.1:9/hooks",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run wsgate");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--webhook-secret"), "{err}");

    for (flag, value) in [
        ("--webhook-url", "ftp://x/"),
        ("--webhook-events", "user.online,user.nope"),
        ("--webhook-offline-delay", "soon"),
    ] {
        let mut args = vec![
            "--allow-anonymous",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--webhook-secret",
            "s",
        ];
        if flag != "--webhook-url" {
            args.extend(["--webhook-url", "http://127.0.0.1:9/"]);
        }
        args.extend([flag, value]);
        let out = Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run wsgate");
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag.trim_start_matches('-')), "{flag}: {err}");
    }
}

//! The Rust client's [`Session`] against the real binary: after the
//! connection is lost it reconnects by itself, re-joins its rooms with
//! `since`, reports `Recovered` / `NotRecovered` per room and hands over the
//! missed messages once, in order, then live ones (contract 5.4); its `send`
//! carries an id. Standalone (the server API disconnects the user) and two
//! nodes over Redis (the member's node is killed with SIGKILL and the
//! session lands on the survivor).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use wsgate_client::{
    Backoff, Client, Kind, MessageFrame, Options, ServerFrame, Session, SessionEvent,
    SessionOptions,
};

fn publish(room: &str, content: Value) -> Value {
    json!({"type": "publish", "room": room, "content": content})
}

/// Session options for `user` over `urls` (with a token when `tokens`, else
/// the URLs name the user), reconnecting quickly.
fn session_options(user: &str, urls: &[String], tokens: bool) -> SessionOptions {
    let endpoint = |url: &String| {
        let o = Options::new(url);
        if tokens {
            o.token(token(user))
        } else {
            o
        }
    };
    let mut opts = SessionOptions::new(endpoint(&urls[0]));
    for url in &urls[1..] {
        opts = opts.endpoint(endpoint(url));
    }
    opts.reconnect = Backoff::new(Duration::from_millis(50), Duration::from_millis(400));
    opts.max_attempts = Some(50);
    opts
}

/// Events until the room message with offset `last`; the messages among them.
async fn events_until(s: &mut Session, last: u64) -> (Vec<SessionEvent>, Vec<MessageFrame>) {
    let (mut events, mut messages) = (Vec::new(), Vec::new());
    loop {
        let e = s
            .next_event(Duration::from_secs(15))
            .await
            .unwrap_or_else(|e| panic!("waiting for offset {last} after {events:?}: {e}"));
        if let SessionEvent::Message(m) = &e {
            messages.push(m.clone());
            if m.offset == Some(last) {
                events.push(e);
                return (events, messages);
            }
        }
        events.push(e);
    }
}

fn offsets(messages: &[MessageFrame]) -> Vec<u64> {
    messages.iter().map(|m| m.offset.unwrap()).collect()
}

fn room_events(events: &[SessionEvent]) -> Vec<&SessionEvent> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                SessionEvent::Recovered { .. }
                    | SessionEvent::NotRecovered { .. }
                    | SessionEvent::RejoinFailed { .. }
            )
        })
        .collect()
}

async fn publisher(opts: Options, room: &str) -> Client {
    let mut bob = Client::connect(opts).await.unwrap();
    bob.request(json!({"type": "join", "room": room}))
        .await
        .unwrap();
    bob
}

#[tokio::test]
async fn standalone_a_dropped_session_rejoins_and_recovers_what_it_missed() {
    let node = WsgateProc::start(&[]).await;
    let room = "sess-a";
    let mut alice = Session::connect(session_options("alice", &[node.ws_url()], true))
        .await
        .unwrap();
    let r = alice.join(room).await.unwrap();
    assert_eq!(r.offset, Some(0));
    let mut bob = publisher(Options::new(node.ws_url()).token(token("bob")), room).await;
    for i in 1..=3 {
        bob.request(publish(room, json!(i))).await.unwrap();
    }
    let (_, got) = events_until(&mut alice, 3).await;
    assert_eq!(offsets(&got), [1, 2, 3]);

    // The server drops alice; bob goes on while she is away.
    let (status, _) = node
        .api_post("/api/v1/users/alice/disconnect", &json!({}))
        .await;
    assert_eq!(status, 200);
    for i in 4..=6 {
        bob.request(publish(room, json!(i))).await.unwrap();
    }
    let (events, replayed) = events_until(&mut alice, 6).await;
    assert!(
        matches!(events.first(), Some(SessionEvent::Disconnected(_))),
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, SessionEvent::Reconnected(_))));
    assert_eq!(
        room_events(&events),
        [&SessionEvent::Recovered { room: room.into() }]
    );
    assert_eq!(offsets(&replayed), [4, 5, 6], "exactly the missed ones");
    assert!(replayed.iter().all(|m| m.replay));
    bob.request(publish(room, json!(7))).await.unwrap();
    let m = alice.next_message(T).await.unwrap();
    assert_eq!((m.offset, m.replay), (Some(7), false), "then live");

    // send carries an id and works on the new connection; the same id
    // again (what a retry after `unavailable` sends) is a duplicate, not a
    // second message.
    let reply = alice.send("bob", json!("hi")).await.unwrap();
    let id = reply.id.clone().expect("the reply names the id");
    assert!(reply.ok && reply.duplicate != Some(true));
    let again = alice.send_with_id("bob", json!("hi"), &id).await.unwrap();
    assert_eq!((again.ok, again.duplicate), (true, Some(true)));
    let m = bob
        .next_frame_where(
            T,
            |f| matches!(f, ServerFrame::Message(m) if m.kind == Kind::Direct),
        )
        .await
        .unwrap();
    let ServerFrame::Message(m) = m else {
        unreachable!()
    };
    assert_eq!((m.content, m.from.as_str()), (json!("hi"), "alice"));
    assert_eq!(m.id, id, "the client's id");
    bob.ack(&m.id).await.unwrap();
}

#[tokio::test]
async fn standalone_a_session_too_far_behind_is_told_not_recovered() {
    let node = WsgateProc::start(&["--history-size", "2"]).await;
    let room = "sess-old";
    let mut alice = Session::connect(session_options("alice", &[node.ws_url()], true))
        .await
        .unwrap();
    alice.join(room).await.unwrap();
    let mut bob = publisher(Options::new(node.ws_url()).token(token("bob")), room).await;
    bob.request(publish(room, json!(1))).await.unwrap();
    events_until(&mut alice, 1).await;
    node.api_post("/api/v1/users/alice/disconnect", &json!({}))
        .await;
    for i in 2..=6 {
        bob.request(publish(room, json!(i))).await.unwrap();
    }
    // Reconnect happens on this read; nothing is replayed, live goes on.
    let mut events = Vec::new();
    loop {
        let e = alice.next_event(T).await.unwrap();
        let done = matches!(e, SessionEvent::NotRecovered { .. });
        events.push(e);
        if done {
            break;
        }
    }
    assert_eq!(
        room_events(&events),
        [&SessionEvent::NotRecovered { room: room.into() }]
    );
    bob.request(publish(room, json!(7))).await.unwrap();
    let m = alice.next_message(T).await.unwrap();
    assert_eq!(
        (m.offset, m.replay),
        (Some(7), false),
        "no replay, then live"
    );
    assert_eq!(alice.positions().get(room).map(|p| p.offset), Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_a_session_on_a_killed_node_recovers_on_the_survivor() {
    let mut cluster = Cluster::start(2).await;
    let room = "sess-crash";
    let urls = [
        cluster.nodes[0].user_url("alice"),
        cluster.nodes[1].user_url("alice"),
    ];
    let mut alice = Session::connect(session_options("alice", &urls, false))
        .await
        .unwrap();
    assert_eq!(alice.welcome().unwrap().node, cluster.nodes[0].id);
    alice.join(room).await.unwrap();
    let mut bob = publisher(Options::new(cluster.nodes[1].user_url("bob")), room).await;
    for i in 1..=5 {
        bob.request(publish(room, json!(i))).await.unwrap();
    }
    let (_, got) = events_until(&mut alice, 5).await;
    assert_eq!(offsets(&got), [1, 2, 3, 4, 5]);

    cluster.nodes[0].kill9();
    for i in 6..=15 {
        bob.request(publish(room, json!(i))).await.unwrap();
    }
    let (events, replayed) = events_until(&mut alice, 15).await;
    let node = events
        .iter()
        .find_map(|e| match e {
            SessionEvent::Reconnected(w) => Some(w.node.clone()),
            _ => None,
        })
        .expect("reconnected");
    assert_eq!(node, cluster.nodes[1].id, "landed on the survivor");
    assert_eq!(
        room_events(&events),
        [&SessionEvent::Recovered { room: room.into() }]
    );
    assert_eq!(offsets(&replayed), (6..=15).collect::<Vec<_>>());
    assert!(replayed.iter().all(|m| m.replay));
    bob.request(publish(room, json!(16))).await.unwrap();
    let m = alice.next_message(T).await.unwrap();
    assert_eq!((m.offset, m.replay), (Some(16), false));
}

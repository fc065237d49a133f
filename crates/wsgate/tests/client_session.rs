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

/// `INFO memory`'s `used_memory`.
async fn used_memory(redis: &RedisServer) -> u64 {
    let mut conn = redis.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .expect("INFO memory");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory")
}

async fn set_maxmemory(redis: &RedisServer, bytes: u64) {
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(bytes)
        .query_async(&mut conn)
        .await
        .expect("CONFIG SET maxmemory");
}

/// `Session::send` retries `unavailable` with the same id against the real
/// binary: Redis sits inside `--redis-memory-reserve`, so the node refuses
/// stores (`unavailable`, nothing stored); once Redis has room again the
/// retry stores the message, once, under the id the session chose.
#[tokio::test]
async fn session_send_retries_unavailable_with_the_same_id() {
    let cluster = Cluster::start_on(
        RedisServer::start().await,
        1,
        &["--redis-memory-reserve", "50%"],
    )
    .await;
    let node = &cluster.nodes[0];
    // maxmemory just above what Redis uses: inside the 50% reserve.
    set_maxmemory(
        &cluster.redis,
        used_memory(&cluster.redis).await + (1 << 20),
    )
    .await;
    let mut probe = node.connect("probe").await;
    poll!("the node refuses stores (unavailable)", WAIT, {
        let r = probe.request(send("nobody", json!("probe"))).await;
        matches!(r, Err(ref e) if e.code() == Some(wsgate_client::ErrorCode::Unavailable))
            .then_some(())
    });
    let refused = "wsgate_inbox_refused_total{reason=\"redis_memory\"}";
    let before = node.metric(refused).await;

    let mut opts = session_options("alice", &[node.ws_url()], false);
    opts.endpoints[0] = Options::new(node.user_url("alice"));
    opts.send_attempts = 100;
    opts.send_retry = Backoff::new(Duration::from_millis(100), Duration::from_millis(200));
    let mut alice = Session::connect(opts).await.expect("alice's session");
    let id = "018f6b8e-6a2c-7cc0-8000-00000000c11e";
    let sending = tokio::spawn(async move {
        let r = alice.send_with_id("bob", json!("kept"), id).await;
        (alice, r)
    });
    // The session's first attempt was refused...
    eventually(
        "the session's send is refused at least once",
        WAIT,
        || async { node.metric(refused).await > before },
    )
    .await;
    // ...and once Redis has room, a retry with the same id is stored.
    set_maxmemory(&cluster.redis, 0).await;
    let (_alice, reply) = sending.await.expect("sender task");
    let reply = reply.expect("the retried send is answered ok");
    assert_eq!(reply.id.as_deref(), Some(id));
    assert_eq!(reply.duplicate, None, "the refused attempts stored nothing");
    assert_eq!(cluster.redis.inbox_len("bob").await, 1, "stored once");
    let mut bob = node.connect("bob").await;
    let m = bob.next_message(T).await.expect("bob gets the message");
    assert_eq!((m.id.as_str(), m.replay), (id, true));
}

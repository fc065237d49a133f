//! Webhooks in cluster mode (contract section 10): real nodes on a real
//! Redis, a real HTTP receiver in the test. Transitions are sent once per
//! cluster (a user on two nodes fires one `user.online` and one
//! `user.offline`), survive a `kill -9` of the node that saw them, and a
//! receiver that was down for a minute gets everything afterwards, in order
//! per user.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const HOOK_SECRET: &str = "cluster-webhook-secret";

fn hook_args(receiver: &Receiver, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--webhook-url",
        &receiver.url(),
        "--webhook-secret",
        HOOK_SECRET,
        "--webhook-backoff-max",
        "1s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn cluster(receiver: &Receiver, n: usize, extra: &[&str]) -> Cluster {
    let args = hook_args(receiver, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Cluster::start_on(RedisServer::start().await, n, &args).await
}

/// Raw count of delivered events of `kind` about `user`, repeats included.
fn raw_count(receiver: &Receiver, kind: &str, user: &str) -> usize {
    receiver
        .batches()
        .iter()
        .filter(|b| b.status == 200)
        .flat_map(|b| b.body["events"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["type"] == kind && e["user"] == user)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_two_nodes_fires_one_online_and_one_offline() {
    let receiver = Receiver::start(HOOK_SECRET).await;
    let c = cluster(&receiver, 2, &["--webhook-offline-delay", "300ms"]).await;
    let (n1, n2) = (&c.nodes[0], &c.nodes[1]);

    let mut a1 = n1.connect("alice").await;
    receiver
        .wait("alice's user.online", |e| !e.is_empty())
        .await;
    let mut a2 = n2.connect("alice").await;
    a1.close(1000).await.expect("close on n1");
    // A fence: bob's whole cycle on n1 arrives after anything alice's
    // steps queued before it.
    let mut bob = n1.connect("bob").await;
    bob.close(1000).await.expect("close bob");
    receiver
        .wait("bob's user.offline", |e| {
            e.iter()
                .any(|x| x["type"] == "user.offline" && x["user"] == "bob")
        })
        .await;
    assert_eq!(raw_count(&receiver, "user.online", "alice"), 1);
    assert_eq!(raw_count(&receiver, "user.offline", "alice"), 0);

    a2.close(1000).await.expect("close on n2");
    receiver
        .wait("alice's user.offline", |e| {
            e.iter()
                .any(|x| x["type"] == "user.offline" && x["user"] == "alice")
        })
        .await;
    assert_eq!(raw_count(&receiver, "user.online", "alice"), 1);
    assert_eq!(raw_count(&receiver, "user.offline", "alice"), 1);
    assert!(receiver.batches().iter().all(|b| b.verified));

    // A reconnect within the delay, through the other node, sends neither.
    let mut a = n1.connect("alice").await;
    receiver
        .wait("alice back online", |_| {
            raw_count(&receiver, "user.online", "alice") == 2
        })
        .await;
    a.close(1000).await.expect("close");
    let a = n2.connect("alice").await;
    drop(a);
    receiver
        .wait("alice's second offline", |_| {
            raw_count(&receiver, "user.offline", "alice") == 2
        })
        .await;
    let alice: Vec<String> = receiver
        .events()
        .iter()
        .filter(|e| e["user"] == "alice")
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        alice,
        ["user.online", "user.offline", "user.online", "user.offline"]
    );
}

/// The Redis key holding the webhook reader lease (default prefix).
const READER: &str = "wsgate:webhook-reader";

async fn reader(redis: &RedisServer) -> Option<String> {
    let mut conn = redis.conn().await;
    redis::cmd("GET")
        .arg(READER)
        .query_async(&mut conn)
        .await
        .expect("GET the reader lease")
}

async fn pending(redis: &RedisServer) -> u64 {
    let mut conn = redis.conn().await;
    let summary: redis::Value = redis::cmd("XPENDING")
        .arg("wsgate:events")
        .arg("wsgate")
        .query_async(&mut conn)
        .await
        .unwrap_or(redis::Value::Nil);
    match summary {
        redis::Value::Array(p) => match p.first() {
            Some(redis::Value::Int(n)) => *n as u64,
            _ => 0,
        },
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_delivers_what_a_killed_node_saw() {
    let mut receiver = Receiver::start(HOOK_SECRET).await;
    receiver.down();
    let redis = RedisServer::start().await;
    let dir = temp_dir("webhooks-kill");
    let args = hook_args(&receiver, &["--webhook-offline-delay", "300ms"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // n1 alone first, so it is the reader.
    let mut n1 = WsgateProc::spawn(&redis.url(), "n1", &dir, &args);
    n1.wait_ready().await;
    eventually("n1 reads the events", WAIT, || async {
        reader(&redis).await.as_deref() == Some("n1")
    })
    .await;
    let mut n2 = WsgateProc::spawn(&redis.url(), "n2", &dir, &args);
    n2.wait_ready().await;

    // n1 decides alice's user.online and reads it, but cannot deliver it.
    let alice = n1.connect("alice").await;
    eventually("n1 holds alice's online unacknowledged", WAIT, || async {
        pending(&redis).await >= 1
    })
    .await;
    n1.kill9();
    let killed = Instant::now();
    drop(alice);
    receiver.up().await;

    // n2 takes the lease, claims n1's pending entry, delivers it; reaping
    // n1 causes alice's user.offline, delivered after it.
    let limit = NODE_TTL + Duration::from_secs(10);
    let events = receiver
        .wait_for("alice's online and offline from n2", limit + WAIT, |e| {
            e.iter().any(|x| x["type"] == "user.offline")
        })
        .await;
    assert_eq!(types(&events), ["user.online", "user.offline"]);
    assert!(events.iter().all(|e| e["user"] == "alice"));
    let online_by = receiver
        .batches()
        .iter()
        .position(|b| b.status == 200)
        .expect("a delivered batch");
    assert_eq!(online_by, 0, "the first batch after the outage carries it");
    assert!(
        killed.elapsed() < limit + Duration::from_secs(5),
        "a dead node's pending events are delivered within node-ttl + 10 s (took {:?})",
        killed.elapsed()
    );
    assert_eq!(reader(&redis).await.as_deref(), Some("n2"));
    assert!(
        n2.metric(r#"wsgate_webhook_deliveries_total{result="ok"}"#)
            .await
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_minute_gets_everything_in_order_per_user() {
    let mut receiver = Receiver::start(HOOK_SECRET).await;
    let all = "user.online,user.offline,member.joined,member.left,message.direct";
    let c = cluster(
        &receiver,
        2,
        &[
            "--webhook-events",
            all,
            "--webhook-offline-delay",
            "200ms",
            "--webhook-max-attempts",
            "1000",
        ],
    )
    .await;
    // Something delivered first, so the outage begins on a working path.
    let _sink = c.nodes[0].connect("sink").await;
    receiver.wait("sink online", |e| !e.is_empty()).await;
    receiver.down();
    let down = Instant::now();

    let users = ["u0", "u1", "u2"];
    let mut sent: HashMap<&str, Vec<i64>> = HashMap::new();
    for round in 0..3 {
        for (i, user) in users.iter().enumerate() {
            let node = &c.nodes[(i + round) % 2];
            let mut client = node.connect(user).await;
            client.request(join("lobby")).await.expect("join");
            for k in 0..3 {
                let seq = round * 10 + k;
                client
                    .request(send("sink", json!({"seq": seq})))
                    .await
                    .expect("send");
                sent.entry(user).or_default().push(seq as i64);
            }
            client.close(1000).await.expect("close");
        }
        // Each user stays away longer than the offline delay: both of its
        // transitions count. The sleep is the behaviour under test (the
        // delay), not a wait for the server.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // The receiver stays down for a minute in all.
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(down.elapsed())).await;
    let pending = c.nodes[0]
        .metric("wsgate_webhook_pending")
        .await
        .max(c.nodes[1].metric("wsgate_webhook_pending").await);
    assert!(pending >= 1.0, "events wait while the receiver is down");
    receiver.up().await;

    let events = receiver
        .wait_for("every user's last offline", Duration::from_secs(30), |e| {
            users.iter().all(|u| {
                e.iter()
                    .filter(|x| x["type"] == "user.offline" && x["user"] == *u)
                    .count()
                    == 3
            })
        })
        .await;
    for user in users {
        let mine: Vec<&Value> = events
            .iter()
            .filter(|e| e["user"] == user || e["message"]["from"] == user)
            .collect();
        let presence: Vec<&str> = mine
            .iter()
            .filter_map(|e| e["type"].as_str())
            .filter(|t| t.starts_with("user."))
            .collect();
        assert_eq!(
            presence,
            [
                "user.online",
                "user.offline",
                "user.online",
                "user.offline",
                "user.online",
                "user.offline"
            ],
            "{user}"
        );
        let seqs: Vec<i64> = mine
            .iter()
            .filter(|e| e["type"] == "message.direct")
            .filter_map(|e| e["message"]["content"]["seq"].as_i64())
            .collect();
        assert_eq!(seqs, sent[user], "{user}'s messages, in order");
        // Each round: online, join, the messages, then leave and offline.
        let kinds: Vec<&str> = mine.iter().filter_map(|e| e["type"].as_str()).collect();
        let round = [
            "user.online",
            "member.joined",
            "message.direct",
            "message.direct",
            "message.direct",
            "member.left",
            "user.offline",
        ];
        assert_eq!(kinds, round.repeat(3), "{user}'s events, in order");
    }
    assert_eq!(
        c.nodes[0]
            .metric(r#"wsgate_webhook_deliveries_total{result="dropped"}"#)
            .await
            + c.nodes[1]
                .metric(r#"wsgate_webhook_deliveries_total{result="dropped"}"#)
                .await,
        0.0
    );
}

async fn redis_int(redis: &RedisServer, cmd: &str, key: &str) -> i64 {
    let mut conn = redis.conn().await;
    redis::cmd(cmd)
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap_or(0)
}

/// The sweeper (architecture.md, webhooks): a node that dies after the
/// registry script decided a transition (the event is in the user's outbox,
/// the count changed) and before its writer moved the event to
/// `{p}:events` leaves an index entry; a survivor's sweeper moves the
/// outbox and delivers the event, long before the dead node is reaped.
///
/// The window is held open for real: n1 talks to Redis as a user whose ACL
/// refuses `XADD`, so its writer cannot move anything; then it is killed
/// with -9. `--node-ttl 60s` keeps the survivor from reaping n1 (a reaper's
/// step would move the outbox too) within the wait, so only the sweeper can
/// deliver it in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_sweeps_a_transition_a_killed_node_decided_but_never_moved() {
    let receiver = Receiver::start(HOOK_SECRET).await;
    let redis = RedisServer::start().await;
    let mut conn = redis.conn().await;
    redis::cmd("ACL")
        .arg(&[
            "SETUSER", "noxadd", "on", ">pw", "~*", "&*", "+@all", "-xadd",
        ])
        .query_async::<()>(&mut conn)
        .await
        .expect("ACL SETUSER");
    let dir = temp_dir("webhooks-sweep");
    let args = hook_args(&receiver, &["--node-ttl", "60s"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // n2 first, so it is the reader: n1's death costs no lease takeover.
    let mut n2 = WsgateProc::spawn(&redis.url(), "n2", &dir, &args);
    n2.wait_ready().await;
    eventually("n2 reads the events", WAIT, || async {
        reader(&redis).await.as_deref() == Some("n2")
    })
    .await;
    let blocked = redis.url().replace("redis://", "redis://noxadd:pw@");
    let mut n1 = WsgateProc::spawn(&blocked, "n1", &dir, &args);
    n1.wait_ready().await;

    // n1 decides alice's user.online: it is in her outbox, not the stream.
    let alice = n1.connect("alice").await;
    let outbox = "wsgate:webhook-user-outbox:{alice}";
    eventually("alice's online in her outbox", WAIT, || async {
        redis_int(&redis, "LLEN", outbox).await == 1
    })
    .await;
    assert_eq!(redis_int(&redis, "XLEN", "wsgate:events").await, 0);
    assert!(redis_int(&redis, "ZCARD", "wsgate:webhook-outbox-index").await >= 1);
    assert!(receiver.of("user.online", "alice").is_empty());
    n1.kill9();
    drop(alice);

    // n2's sweeper: entries older than 5 s, every 2 s.
    let events = receiver
        .wait_for(
            "alice's online, swept by n2",
            Duration::from_secs(20),
            |e| {
                e.iter()
                    .any(|x| x["type"] == "user.online" && x["user"] == "alice")
            },
        )
        .await;
    assert_eq!(types(&events), ["user.online"]);
    assert!(receiver.batches().iter().all(|b| b.verified));
    assert_eq!(redis_int(&redis, "LLEN", outbox).await, 0);
    assert_eq!(
        redis_int(&redis, "ZCARD", "wsgate:webhook-outbox-index").await,
        0
    );
    // Not the reaper's doing: n1 is not reaped yet, alice still counts
    // its connection.
    assert_eq!(redis_int(&redis, "HLEN", "wsgate:user:{alice}").await, 1);
    n2.assert_alive().await;
}

/// A connect whose first registry write fails and whose retry (absolute
/// counts) succeeds still queues its `user.online`, once: the retry decides
/// the transition in the same script as the first attempt would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_recorded_by_the_registry_retry_fires_one_online() {
    let receiver = Receiver::start(HOOK_SECRET).await;
    let c = cluster(&receiver, 1, &["--webhook-offline-delay", "300ms"]).await;
    let node = &c.nodes[0];
    // bob's first registry write gets WRONGTYPE (his registry key holds a
    // string); the key goes as soon as that failure is counted, so one of
    // the retries (100 ms and 400 ms later) succeeds.
    let mut conn = c.redis.conn().await;
    let _: () = redis::cmd("SET")
        .arg("wsgate:user:{bob}")
        .arg("not-a-hash")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let unblock = async {
        eventually("bob's first registry write failed", WAIT, || async {
            node.metric("wsgate_broker_errors_total{op=\"registry\"}")
                .await
                >= 1.0
        })
        .await;
        let _: () = redis::cmd("DEL")
            .arg("wsgate:user:{bob}")
            .query_async(&mut conn)
            .await
            .expect("DEL");
    };
    let (mut bob, ()) = tokio::join!(node.connect("bob"), unblock);
    assert_eq!(
        node.metric("wsgate_connections_rejected_total{reason=\"registry\"}")
            .await,
        0.0,
        "the retry recorded bob"
    );
    receiver
        .wait("bob's user.online", |e| {
            e.iter()
                .any(|x| x["type"] == "user.online" && x["user"] == "bob")
        })
        .await;
    bob.close(1000).await.expect("close bob");
    receiver
        .wait("bob's user.offline", |e| {
            e.iter()
                .any(|x| x["type"] == "user.offline" && x["user"] == "bob")
        })
        .await;
    assert_eq!(raw_count(&receiver, "user.online", "bob"), 1);
    assert_eq!(raw_count(&receiver, "user.offline", "bob"), 1);
}

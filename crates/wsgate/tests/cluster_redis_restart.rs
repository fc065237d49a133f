//! Redis restart under traffic (contract 5.2 and 6): Redis with AOF
//! (`appendfsync always`) is killed and started again while a sender streams
//! direct messages across nodes. Every node reports not ready, then ready
//! again; inboxes survive; routing recovers; no ok'd direct message is lost.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use wsgate_client::{Client, ClientError, Options, ServerFrame};
use wsgate_protocol::Kind;

/// Sends to `bob` until `stop`; returns the client and the ok'd ids.
async fn sender(
    mut alice: Client,
    stop: Arc<AtomicBool>,
    oks: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
) -> (Client, Vec<String>) {
    let mut ids = Vec::new();
    let mut seq = 0u64;
    while !stop.load(Ordering::Acquire) {
        match alice
            .request(json!({"type": "send", "to": "bob", "content": {"seq": seq}}))
            .await
        {
            Ok(reply) => {
                ids.push(reply.id.expect("id"));
                oks.fetch_add(1, Ordering::AcqRel);
            }
            Err(ClientError::Server { .. }) => {
                refused.fetch_add(1, Ordering::AcqRel);
                // Refusals come fast while Redis is down; do not spin.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("send {seq} while Redis restarts: {e}"),
        }
        seq += 1;
    }
    (alice, ids)
}

/// Reads and acks direct messages until `stop`; returns the client.
async fn receiver(mut bob: Client, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) -> Client {
    while !stop.load(Ordering::Acquire) {
        match bob.next_frame(Duration::from_millis(100)).await {
            Ok(ServerFrame::Message(m)) if m.kind == Kind::Direct => {
                {
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    if seen.ids.insert(m.id.clone()) {
                        seen.firsts
                            .push(m.content["seq"].as_u64().unwrap_or(u64::MAX));
                    }
                }
                let _ = bob.ack(&m.id).await;
            }
            Ok(_) | Err(ClientError::Timeout) => {}
            Err(e) => panic!("bob's connection must survive a Redis restart: {e}"),
        }
    }
    bob
}

/// What bob's one connection received: ids, and the seq of each first arrival.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    firsts: Vec<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_with_aof_loses_no_acked_direct_message() {
    let redis = RedisServer::start_with(true).await;
    let mut cluster = Cluster::start_on(redis, 3, &[]).await;
    let patient = |url: String| Options::new(url).timeout(Duration::from_secs(15));
    let alice = Client::connect(patient(cluster.nodes[0].user_url("alice")))
        .await
        .expect("alice");
    let bob = cluster.nodes[1].connect("bob").await;

    // Messages for an offline user, stored before the restart.
    let mut alice = alice;
    let mut erin_ids = Vec::new();
    for i in 0..20 {
        let reply = alice
            .request(json!({"type": "send", "to": "erin", "content": {"seq": i}}))
            .await
            .expect("send to erin");
        erin_ids.push(reply.id.expect("id"));
    }

    let stop_send = Arc::new(AtomicBool::new(false));
    let stop_recv = Arc::new(AtomicBool::new(false));
    let oks = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let send_task = tokio::spawn(sender(
        alice,
        stop_send.clone(),
        oks.clone(),
        refused.clone(),
    ));
    let recv_task = tokio::spawn(receiver(bob, seen.clone(), stop_recv.clone()));
    let ok_count = || oks.load(Ordering::Acquire);
    poll!("traffic flows before the restart", T, {
        (ok_count() >= 50).then_some(())
    });

    cluster.redis.kill();
    let killed = Instant::now();
    cluster.all_ready(503, Duration::from_secs(10)).await;
    let not_ready_after = killed.elapsed();
    // Down: the nodes stay up and refuse what they cannot store.
    let refused_count = || refused.load(Ordering::Acquire);
    poll!(
        "sends refused with `unavailable`",
        Duration::from_secs(15),
        { (refused_count() >= 5).then_some(()) }
    );
    for node in &cluster.nodes {
        let status = http(node.admin, "GET", "/healthz", &[], None).await.status;
        assert_eq!(status, 200, "{} stays up without Redis", node.id);
    }
    cluster.redis.restart().await;
    let restarted = Instant::now();
    cluster.all_ready(200, Duration::from_secs(30)).await;
    let recovery = restarted.elapsed();
    let outage = killed.elapsed();

    // Inboxes came back from the AOF.
    assert_eq!(
        cluster.redis.inbox_len("erin").await,
        20,
        "erin's inbox survived"
    );

    let after = ok_count();
    poll!("sends accepted after recovery", Duration::from_secs(10), {
        (ok_count() >= after + 50).then_some(())
    });
    stop_send.store(true, Ordering::Release);
    let (mut alice, ids) = send_task.await.expect("sender");

    // Every ok'd message reaches bob's connection, which outlived the
    // restart, without a reconnect; first arrivals keep the send order.
    let wanted: HashSet<String> = ids.iter().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    let missing = loop {
        let missing = {
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            wanted.difference(&seen.ids).count()
        };
        if missing == 0 || Instant::now() >= deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop_recv.store(true, Ordering::Release);
    let mut bob = recv_task.await.expect("receiver");
    let out_of_order: Vec<(u64, u64)> = {
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.firsts
            .windows(2)
            .filter(|w| w[1] <= w[0])
            .map(|w| (w[0], w[1]))
            .collect()
    };

    // Live cross-node routing works again.
    alice
        .request(json!({"type": "send", "to": "bob", "content": "after"}))
        .await
        .expect("send after recovery");
    let live = loop {
        let m = bob
            .next_message(T)
            .await
            .expect("live message after recovery");
        if m.content == json!("after") {
            break m;
        }
    };
    assert!(!live.replay, "delivered live, not from the inbox");
    bob.ack(&live.id).await.expect("ack");
    poll!("bob's acks emptied his inbox", T, {
        (cluster.redis.inbox_len("bob").await == 0).then_some(())
    });

    // Erin's messages from before the restart are replayed, in order.
    let mut erin = cluster.nodes[2].connect("erin").await;
    let mut replayed = Vec::new();
    while replayed.len() < erin_ids.len() {
        let m = erin.next_message(T).await.expect("erin's replay");
        assert!(m.replay, "from the inbox: {m:?}");
        replayed.push(m.id);
    }
    assert_eq!(replayed, erin_ids);

    let line = format!(
        "redis restart (AOF): all nodes not ready {:.2}s after kill; ready again {:.2}s after \
         restart ({:.2}s outage); sends ok'd {}, refused {}, missing {missing}",
        not_ready_after.as_secs_f64(),
        recovery.as_secs_f64(),
        outage.as_secs_f64(),
        ids.len(),
        refused.load(Ordering::Acquire),
    );
    report(&line);
    assert_eq!(missing, 0, "ok'd direct messages lost: {line}");
    assert!(
        out_of_order.is_empty(),
        "first arrivals out of send order at {out_of_order:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_longer_than_node_ttl_reaps_no_live_node() {
    let redis = RedisServer::start_with(true).await;
    let mut cluster = Cluster::start_on(redis, 3, &[]).await;
    let users = ["alice", "bob", "carol"];
    let mut clients = Vec::new();
    for (node, user) in cluster.nodes.iter().zip(users) {
        let mut c = node.connect(user).await;
        c.request(json!({"type": "join", "room": "r"}))
            .await
            .expect("join");
        clients.push(c);
    }
    const SUBSCRIBE_ERRORS: &str = "wsgate_broker_errors_total{op=\"subscribe\"}";
    let mut before = Vec::new();
    for node in &cluster.nodes {
        before.push(node.metric_required(SUBSCRIBE_ERRORS).await);
    }

    cluster.redis.kill();
    cluster.all_ready(503, Duration::from_secs(10)).await;
    // Down much longer than node-ttl: every node failed six reconnects (0.1 +
    // 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s of backoff), so the next attempts, 6.4 s
    // apart at most, spread the nodes' return over seconds: the first back
    // sees the others' heartbeats older than node-ttl.
    for (node, before) in cluster.nodes.iter().zip(&before) {
        poll!("six failed reconnects", Duration::from_secs(30), {
            (node.metric_required(SUBSCRIBE_ERRORS).await >= before + 6.0).then_some(())
        });
    }
    let restarted = Instant::now();
    cluster.redis.restart().await;
    cluster.all_ready(200, Duration::from_secs(30)).await;
    report(&format!(
        "redis outage > node-ttl: ready again {:.2}s after restart",
        restarted.elapsed().as_secs_f64()
    ));

    // No live node was declared dead: no leave events, presence intact.
    for (user, client) in users.iter().zip(clients.iter_mut()) {
        loop {
            match client.next_frame(Duration::from_millis(500)).await {
                Ok(ServerFrame::Presence {
                    event: wsgate_protocol::PresenceEvent::Leave,
                    user: left,
                    ..
                }) => panic!("{user} got a leave event for {left}, who never left"),
                Ok(_) => {}
                Err(ClientError::Timeout) => break,
                Err(e) => panic!("{user}: {e}"),
            }
        }
        let reply = client
            .request(json!({"type": "presence", "room": "r"}))
            .await
            .expect("room presence");
        assert_eq!(
            reply.members.unwrap_or_default(),
            users,
            "members seen by {user}"
        );
    }
    for node in &cluster.nodes {
        assert!(
            !node.log_text().contains("Reaped a dead node"),
            "{} reaped a live node after the outage",
            node.id
        );
    }
    // Routing works: a direct message crosses nodes live.
    clients[0]
        .request(json!({"type": "send", "to": "carol", "content": "back"}))
        .await
        .expect("send");
    let m = clients[2].next_message(T).await.expect("carol's message");
    assert_eq!(m.content, json!("back"));
    assert!(!m.replay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_without_persistence_the_nodes_register_again() {
    let mut cluster = Cluster::start(3).await;
    let users = ["alice", "bob", "carol"];
    let mut clients = Vec::new();
    for (node, user) in cluster.nodes.iter().zip(users) {
        let mut c = node.connect(user).await;
        c.request(json!({"type": "join", "room": "r"}))
            .await
            .expect("join");
        clients.push(c);
    }

    // Redis comes back empty: every node re-registers what it holds.
    cluster.redis.restart().await;
    cluster.all_ready(200, Duration::from_secs(30)).await;
    let mut conn = cluster.redis.conn().await;
    let members: Vec<String> = redis::cmd("HKEYS")
        .arg("wsgate:members:{r}")
        .query_async(&mut conn)
        .await
        .expect("HKEYS");
    assert_eq!(
        members.len(),
        3,
        "room members registered again: {members:?}"
    );

    let reply = clients[0]
        .request(json!({"type": "presence", "user": "carol"}))
        .await
        .expect("user presence");
    assert_eq!(reply.online, Some(true), "carol's registry entry is back");
    let reply = clients[1]
        .request(json!({"type": "presence", "room": "r"}))
        .await
        .expect("room presence");
    assert_eq!(reply.members.unwrap_or_default(), users);

    // Direct and room traffic cross nodes again.
    let reply = clients[0]
        .request(json!({"type": "send", "to": "carol", "content": "d"}))
        .await
        .expect("send");
    assert_eq!(reply.online, Some(true));
    let m = clients[2].next_message(T).await.expect("direct on n3");
    assert_eq!(m.content, json!("d"));
    clients[2]
        .request(json!({"type": "publish", "room": "r", "content": "room"}))
        .await
        .expect("publish");
    for (user, client) in users.iter().zip(clients.iter_mut()).take(2) {
        let m = client
            .next_frame_where(
                T,
                |f| matches!(f, ServerFrame::Message(m) if m.kind == Kind::Room),
            )
            .await
            .unwrap_or_else(|e| panic!("room message at {user}: {e}"));
        assert!(matches!(m, ServerFrame::Message(m) if m.content == json!("room")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_makes_nodes_unready_and_refuse_then_recover() {
    let cluster = Cluster::start(2).await;
    let patient = Options::new(cluster.nodes[0].user_url("alice")).timeout(Duration::from_secs(20));
    let mut alice = Client::connect(patient).await.expect("alice");
    let mut bob = cluster.nodes[1].connect("bob").await;

    // Connections stay open but nothing answers: the node must notice.
    cluster.redis.pause();
    let paused = Instant::now();
    let asked = Instant::now();
    let refused = alice
        .request(json!({"type": "send", "to": "bob", "content": "frozen"}))
        .await;
    let answered = asked.elapsed();
    match refused {
        Err(ClientError::Server { code, .. }) => {
            assert_eq!(code, wsgate_client::ErrorCode::Unavailable)
        }
        other => panic!("a send with Redis frozen must be refused: {other:?}"),
    }
    cluster.all_ready(503, Duration::from_secs(15)).await;
    let unready = paused.elapsed();
    for node in &cluster.nodes {
        let status = http(node.admin, "GET", "/healthz", &[], None).await.status;
        assert_eq!(status, 200, "{} stays up", node.id);
    }

    cluster.redis.resume();
    let resumed = Instant::now();
    cluster.all_ready(200, Duration::from_secs(30)).await;
    let ready = resumed.elapsed();
    alice
        .request(json!({"type": "send", "to": "bob", "content": "thawed"}))
        .await
        .expect("send after the thaw");
    let m = loop {
        let m = bob
            .next_message(Duration::from_secs(10))
            .await
            .expect("bob's message");
        if m.content == json!("thawed") {
            break m;
        }
    };
    assert!(!m.replay);
    report(&format!(
        "redis frozen (SIGSTOP): send refused after {:.2}s; all nodes not ready after {:.2}s; \
         ready {:.2}s after SIGCONT",
        answered.as_secs_f64(),
        unready.as_secs_f64(),
        ready.as_secs_f64()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connecting_while_redis_is_down_gets_its_inbox_before_live_messages() {
    let redis = RedisServer::start_with(true).await;
    let mut cluster = Cluster::start_on(redis, 2, &[]).await;
    let mut alice = cluster.nodes[0].connect("alice").await;
    let mut stored = Vec::new();
    for i in 0..3 {
        let reply = alice
            .request(json!({"type": "send", "to": "gina", "content": {"seq": i}}))
            .await
            .expect("send to gina");
        stored.push(reply.id.expect("id"));
    }

    cluster.redis.kill();
    cluster.all_ready(503, Duration::from_secs(10)).await;
    // A not-ready node may refuse the upgrade; if it accepts, it owes the replay.
    let url = cluster.nodes[1].user_url("gina");
    let during = Client::connect(Options::new(url.clone())).await.ok();
    cluster.redis.restart().await;
    cluster.all_ready(200, Duration::from_secs(30)).await;

    let mut gina = match during {
        Some(c) => c,
        None => Client::connect(Options::new(url.clone()))
            .await
            .expect("gina connects after recovery"),
    };
    alice
        .request(json!({"type": "send", "to": "gina", "content": "live"}))
        .await
        .expect("send live");
    let mut firsts: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < deadline,
            "gina never got the live message; got {firsts:?}"
        );
        match gina.next_frame(Duration::from_millis(200)).await {
            Ok(ServerFrame::Message(m)) if m.kind == Kind::Direct => {
                if m.content == json!("live") {
                    break;
                }
                if !firsts.contains(&m.id) {
                    firsts.push(m.id.clone());
                }
            }
            Ok(_) | Err(ClientError::Timeout) => {}
            Err(_) => {
                gina = Client::connect(Options::new(url.clone()))
                    .await
                    .expect("gina reconnects");
            }
        }
    }
    assert_eq!(
        firsts, stored,
        "the inbox comes before new live direct messages (contract 5.1)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_before_the_recipients_node_resubscribed_still_arrive_in_order() {
    let redis = RedisServer::start_with(true).await;
    let mut cluster = Cluster::start_on(redis, 2, &[]).await;
    let mut alice = cluster.nodes[0].connect("alice").await;
    let mut bob = cluster.nodes[1].connect("bob").await;

    // bob's node is paused through the Redis restart, so it comes back to
    // Redis after n1 does: n1 accepts sends to bob while n2 is not listening.
    cluster.nodes[1].pause();
    cluster.redis.kill();
    cluster.redis.restart().await;
    let n1 = cluster.nodes[0].admin;
    eventually("n1 ready", Duration::from_secs(30), || async move {
        (ready(n1).await == Some(200)).then_some(())
    })
    .await;
    let early = alice
        .request(json!({"type": "send", "to": "bob", "content": "early"}))
        .await
        .expect("send while n2 is away")
        .id
        .expect("id");
    cluster.nodes[1].resume();
    cluster.all_ready(200, Duration::from_secs(30)).await;
    alice
        .request(json!({"type": "send", "to": "bob", "content": "late"}))
        .await
        .expect("send after n2 is back");

    // On bob's one connection: "early" (stored, ok'd) comes before "late".
    let mut order = Vec::new();
    while !order.contains(&json!("late")) {
        let m = bob
            .next_message(T)
            .await
            .unwrap_or_else(|e| panic!("bob got {order:?}, then: {e}"));
        if m.kind == Kind::Direct && !order.contains(&m.content) {
            if m.content == json!("early") {
                assert_eq!(m.id, early);
            }
            order.push(m.content);
        }
    }
    assert_eq!(
        order,
        [json!("early"), json!("late")],
        "per-sender order on a connection that outlived the restart (contract 5.1)"
    );
}

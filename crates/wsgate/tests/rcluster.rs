//! Redis Cluster mode (contract 6, `--redis-mode cluster`): six
//! cluster-enabled `redis-server`s (three primaries, three replicas) and
//! three real `wsgate` nodes given all six as seeds. Direct, room, broadcast
//! and presence traffic crosses the nodes; the node, room and broadcast
//! channels are shard channels (`PUBSUB SHARDCHANNELS`), never classic ones
//! (`PUBSUB CHANNELS`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use wsgate_client::{Client, ServerFrame};
use wsgate_protocol::{Kind, PresenceEvent};

async fn message(client: &mut Client, what: &str, kind: Kind, content: &Value) -> ServerFrame {
    expect_frame(
        client,
        what,
        |f| matches!(f, ServerFrame::Message(m) if m.kind == kind && &m.content == content),
    )
    .await
}

async fn join(client: &mut Client, room: &str) -> Vec<String> {
    let reply = client
        .request(json!({"type": "join", "room": room}))
        .await
        .expect("join");
    reply.members.expect("join reply has members")
}

/// Three nodes on a fresh six-node Redis Cluster, all ready.
pub async fn cluster_nodes(redis: &RedisCluster, dir: &TempDir, extra: &[&str]) -> Vec<WsgateProc> {
    let mut flags = vec!["--redis-mode", "cluster"];
    flags.extend_from_slice(extra);
    let urls = redis.urls();
    let mut nodes: Vec<WsgateProc> = (1..=3)
        .map(|i| WsgateProc::spawn(&urls, &format!("n{i}"), dir, &flags))
        .collect();
    for n in &mut nodes {
        n.wait_ready().await;
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_a_redis_cluster_route_every_kind_of_traffic_on_shard_channels() {
    let redis = RedisCluster::start().await;
    let dir = temp_dir("rcluster");
    let nodes = cluster_nodes(&redis, &dir, &[]).await;
    let [n1, n2, n3] = &nodes[..] else {
        unreachable!()
    };

    let mut alice = n1.connect("alice").await;
    let mut bob = n2.connect("bob").await;
    let mut carol = n3.connect("carol").await;

    // User presence across nodes.
    let reply = alice
        .request(json!({"type": "presence", "user": "bob"}))
        .await
        .expect("presence of bob");
    assert_eq!(reply.online, Some(true), "bob (on n2) is online for n1");
    let (status, body) = n3.api_get("/api/v1/users/alice").await;
    assert_eq!(status, 200);
    assert_eq!(body["online"], true, "alice (on n1) is online for n3's API");

    // Direct n1 -> n2 with its receipt back, and n3 -> n1.
    let content = json!({"text": "hi bob"});
    let reply = alice
        .request(json!({"type": "send", "to": "bob", "content": content}))
        .await
        .expect("send to bob");
    assert_eq!(reply.online, Some(true));
    let id = reply.id.expect("message id");
    message(
        &mut bob,
        "alice's direct message on n2",
        Kind::Direct,
        &content,
    )
    .await;
    bob.ack(&id).await.expect("ack");
    expect_frame(
        &mut alice,
        "receipt from bob",
        |f| matches!(f, ServerFrame::Receipt { id: i, by, .. } if *i == id && by == "bob"),
    )
    .await;
    let content = json!("from carol");
    carol
        .request(json!({"type": "send", "to": "alice", "content": content}))
        .await
        .expect("send to alice");
    message(
        &mut alice,
        "carol's direct message on n1",
        Kind::Direct,
        &content,
    )
    .await;

    // Rooms: membership and presence events across nodes.
    assert_eq!(join(&mut alice, "lobby").await, ["alice"]);
    assert_eq!(join(&mut bob, "lobby").await, ["alice", "bob"]);
    assert_eq!(join(&mut carol, "lobby").await, ["alice", "bob", "carol"]);
    expect_frame(&mut alice, "presence join of carol on n1", |f| {
        matches!(f, ServerFrame::Presence { room, event: PresenceEvent::Join, user }
            if room == "lobby" && user == "carol")
    })
    .await;
    let reply = bob
        .request(json!({"type": "presence", "room": "lobby"}))
        .await
        .expect("room presence");
    assert_eq!(reply.member_count, Some(3));
    assert_eq!(reply.members.unwrap_or_default(), ["alice", "bob", "carol"]);
    let content = json!({"room": "hello"});
    alice
        .request(json!({"type": "publish", "room": "lobby", "content": content}))
        .await
        .expect("publish");
    message(&mut bob, "room message on n2", Kind::Room, &content).await;
    message(&mut carol, "room message on n3", Kind::Room, &content).await;

    // Broadcast from the API of n2 reaches n1 and n3.
    let content = json!({"api": "broadcast"});
    let (status, body) = n2
        .api_post(
            "/api/v1/publish",
            &json!({"broadcast": true, "content": content}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    message(&mut alice, "broadcast on n1", Kind::Broadcast, &content).await;
    message(&mut carol, "broadcast on n3", Kind::Broadcast, &content).await;

    // Every channel is a shard channel.
    let (shard, plain) = redis.channels().await;
    let shard: HashSet<String> = shard.into_iter().collect();
    for want in [
        "wsgate:node:{n1}",
        "wsgate:node:{n2}",
        "wsgate:node:{n3}",
        "wsgate:broadcast",
        "wsgate:room:{lobby}",
    ] {
        assert!(
            shard.contains(want),
            "{want} in PUBSUB SHARDCHANNELS: {shard:?}"
        );
    }
    assert!(
        plain.iter().all(|c| !c.starts_with("wsgate:")),
        "no wsgate channel in PUBSUB CHANNELS: {plain:?}"
    );

    // A last leave unsubscribes the room on every node.
    let mut reconnects = Vec::new();
    for n in &nodes {
        reconnects.push(
            n.metric("wsgate_broker_errors_total{op=\"subscribe\"}")
                .await,
        );
    }
    for c in [&mut alice, &mut bob, &mut carol] {
        c.request(json!({"type": "leave", "room": "lobby"}))
            .await
            .expect("leave");
    }
    eventually(
        "wsgate:room:{lobby} leaves PUBSUB SHARDCHANNELS",
        Duration::from_secs(10),
        || async {
            let (shard, _) = redis.channels().await;
            (!shard.iter().any(|c| c == "wsgate:room:{lobby}")).then_some(())
        },
    )
    .await;
    // The bus is still live after the SUNSUBSCRIBEs (they were this node's own).
    let content = json!("still here");
    carol
        .request(json!({"type": "send", "to": "bob", "content": content}))
        .await
        .expect("send after the leaves");
    message(
        &mut bob,
        "a direct message after the leaves",
        Kind::Direct,
        &content,
    )
    .await;
    for (n, before) in nodes.iter().zip(reconnects) {
        assert_eq!(
            n.metric("wsgate_broker_errors_total{op=\"subscribe\"}")
                .await,
            before,
            "{}: its own SUNSUBSCRIBE did not make the subscriber reconnect",
            n.id
        );
    }
}

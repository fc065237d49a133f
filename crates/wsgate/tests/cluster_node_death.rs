//! Node death (contract 6): after `kill -9` of a node, the survivors reap it
//! once it has been silent for `node-ttl`: its users go offline, leave its
//! rooms, and the room's members on other nodes get a `presence` leave event.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use wsgate_client::ServerFrame;
use wsgate_protocol::PresenceEvent;

/// Reaping happens within `node-ttl` plus one heartbeat period, plus this.
const MARGIN: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_nodes_presence_is_removed_within_node_ttl() {
    let mut cluster = Cluster::start(3).await;
    let mut alice = cluster.nodes[0].connect("alice").await;
    let mut bob = cluster.nodes[1].connect("bob").await;
    let mut carol = cluster.nodes[2].connect("carol").await;
    for c in [&mut alice, &mut bob, &mut carol] {
        c.request(json!({"type": "join", "room": "den"}))
            .await
            .expect("join");
    }
    let reply = alice
        .request(json!({"type": "presence", "room": "den"}))
        .await
        .expect("presence");
    assert_eq!(reply.members.unwrap_or_default(), ["alice", "bob", "carol"]);

    cluster.nodes[1].kill9();
    let killed = Instant::now();
    drop(bob);

    // The leave event reaches members on both surviving nodes.
    let limit = NODE_TTL + MARGIN + Duration::from_secs(3);
    for (who, client) in [("alice", &mut alice), ("carol", &mut carol)] {
        client
            .next_frame_where(limit, |f| {
                matches!(f, ServerFrame::Presence { room, event: PresenceEvent::Leave, user }
                    if room == "den" && user == "bob")
            })
            .await
            .unwrap_or_else(|e| panic!("bob's leave event at {who}: {e}"));
    }
    let event_after = killed.elapsed();

    // User and room presence exclude bob.
    poll!("bob offline and out of the room", limit, {
        let user = alice
            .request(json!({"type": "presence", "user": "bob"}))
            .await
            .expect("user presence");
        let room = carol
            .request(json!({"type": "presence", "room": "den"}))
            .await
            .expect("room presence");
        (user.online == Some(false) && room.members.unwrap_or_default() == ["alice", "carol"])
            .then_some(())
    });
    let gone_after = killed.elapsed();
    let (_, nodes) = cluster.nodes[0].api_get("/api/v1/nodes").await;
    let ids: Vec<&str> = nodes
        .as_array()
        .map(|a| a.iter().filter_map(|n| n["node"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["n1", "n3"], "the dead node left /api/v1/nodes");

    report(&format!(
        "node death: presence removed {:.2}s after kill -9 (leave events {:.2}s; node-ttl {:.0}s)",
        gone_after.as_secs_f64(),
        event_after.as_secs_f64(),
        NODE_TTL.as_secs_f64()
    ));
    assert!(
        event_after <= NODE_TTL + MARGIN,
        "leave events took {event_after:?}, more than node-ttl {NODE_TTL:?} + {MARGIN:?}"
    );
    // The last heartbeat came up to node-ttl / 3 before the kill.
    assert!(
        event_after >= NODE_TTL * 2 / 3 - Duration::from_millis(100),
        "reaped long before node-ttl: {event_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_after_a_crash_announces_its_old_users_leaves() {
    let mut cluster = Cluster::start(3).await;
    let mut alice = cluster.nodes[0].connect("alice").await;
    let mut bob = cluster.nodes[1].connect("bob").await;
    let mut carol = cluster.nodes[2].connect("carol").await;
    for c in [&mut alice, &mut bob, &mut carol] {
        c.request(json!({"type": "join", "room": "den"}))
            .await
            .expect("join");
    }

    // Crash and come back at once with the same id, before anyone reaps.
    cluster.nodes[1].kill9();
    let killed = Instant::now();
    drop(bob);
    cluster.nodes[1].restart();
    cluster.nodes[1].wait_ready().await;

    let limit = NODE_TTL + MARGIN + Duration::from_secs(3);
    for (who, client) in [("alice", &mut alice), ("carol", &mut carol)] {
        client
            .next_frame_where(limit, |f| {
                matches!(f, ServerFrame::Presence { room, event: PresenceEvent::Leave, user }
                    if room == "den" && user == "bob")
            })
            .await
            .unwrap_or_else(|e| panic!("bob's leave event at {who}: {e}"));
    }
    let reply = alice
        .request(json!({"type": "presence", "room": "den"}))
        .await
        .expect("room presence");
    assert_eq!(reply.members.unwrap_or_default(), ["alice", "carol"]);
    let reply = carol
        .request(json!({"type": "presence", "user": "bob"}))
        .await
        .expect("user presence");
    assert_eq!(reply.online, Some(false));
    report(&format!(
        "node restarted after a crash: leave events {:.2}s after kill -9",
        killed.elapsed().as_secs_f64()
    ));
}

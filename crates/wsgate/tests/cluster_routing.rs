//! Cluster routing over a real Redis with three real `wsgate` processes
//! (contract sections 4 and 6): direct, room, broadcast, typing, receipts and
//! presence across nodes; the HTTP API from any node; and direct messages
//! published only to the nodes holding the recipient.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use serde_json::{json, Value};
use support::*;
use wsgate_client::{Client, ServerFrame};
use wsgate_protocol::{Kind, PresenceEvent};

async fn join(client: &mut Client, room: &str) -> Vec<String> {
    let reply = client
        .request(json!({"type": "join", "room": room}))
        .await
        .expect("join");
    reply.members.expect("join reply has members")
}

async fn presence_join(client: &mut Client, room: &str, user: &str) {
    expect_frame(client, &format!("presence join of {user}"), |f| {
        matches!(f, ServerFrame::Presence { room: r, event: PresenceEvent::Join, user: u }
            if r == room && u == user)
    })
    .await;
}

async fn message(client: &mut Client, what: &str, kind: Kind, content: &Value) -> ServerFrame {
    expect_frame(
        client,
        what,
        |f| matches!(f, ServerFrame::Message(m) if m.kind == kind && &m.content == content),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_route_every_kind_of_traffic_across_the_cluster() {
    let cluster = Cluster::start(3).await;
    let [n1, n2, n3] = &cluster.nodes[..] else {
        unreachable!()
    };

    // The nodes see each other.
    let nodes = eventually("/api/v1/nodes lists three nodes", T, || async {
        let (status, body) = n1.api_get("/api/v1/nodes").await;
        let ids: Vec<String> = body
            .as_array()?
            .iter()
            .filter_map(|n| n["node"].as_str().map(str::to_owned))
            .collect();
        (status == 200 && ids.len() == 3).then_some(ids)
    })
    .await;
    assert_eq!(nodes, ["n1", "n2", "n3"]);

    let mut alice = n1.connect("alice").await;
    let mut bob = n2.connect("bob").await;
    let mut carol = n3.connect("carol").await;

    // User presence across nodes.
    let reply = alice
        .request(json!({"type": "presence", "user": "bob"}))
        .await
        .expect("presence of bob");
    assert_eq!(reply.online, Some(true), "bob (on n2) is online for n1");
    assert_eq!(reply.connections, Some(1));
    let reply = carol
        .request(json!({"type": "presence", "user": "nobody"}))
        .await
        .expect("presence of nobody");
    assert_eq!(reply.online, Some(false));
    let (status, body) = n3.api_get("/api/v1/users/alice").await;
    assert_eq!(status, 200);
    assert_eq!(body["online"], true, "alice (on n1) is online for n3's API");

    // Direct n1 -> n2, ack, receipt n2 -> n1.
    let content = json!({"text": "hi bob"});
    let reply = alice
        .request(json!({"type": "send", "to": "bob", "content": content}))
        .await
        .expect("send to bob");
    assert_eq!(reply.online, Some(true));
    let id = reply.id.expect("message id");
    match message(&mut bob, "alice's direct message", Kind::Direct, &content).await {
        ServerFrame::Message(m) => {
            assert_eq!(m.id, id);
            assert_eq!(m.from, "alice");
            assert!(!m.replay);
        }
        _ => unreachable!(),
    }
    bob.ack(&id).await.expect("ack");
    expect_frame(&mut alice, "receipt from bob", |f| {
        matches!(f, ServerFrame::Receipt { id: i, by, status } if *i == id && by == "bob" && status == "delivered")
    })
    .await;

    // Direct n3 -> n1.
    let content = json!("from carol");
    carol
        .request(json!({"type": "send", "to": "alice", "content": content}))
        .await
        .expect("send to alice");
    message(&mut alice, "carol's direct message", Kind::Direct, &content).await;

    // Rooms: members cluster-wide and join events across nodes.
    assert_eq!(join(&mut alice, "lobby").await, ["alice"]);
    assert_eq!(join(&mut bob, "lobby").await, ["alice", "bob"]);
    presence_join(&mut alice, "lobby", "bob").await;
    assert_eq!(join(&mut carol, "lobby").await, ["alice", "bob", "carol"]);
    presence_join(&mut alice, "lobby", "carol").await;
    presence_join(&mut bob, "lobby", "carol").await;
    let reply = bob
        .request(json!({"type": "presence", "room": "lobby"}))
        .await
        .expect("room presence");
    assert_eq!(reply.members.unwrap_or_default(), ["alice", "bob", "carol"]);

    // Room message from n1 reaches n2 and n3.
    let content = json!({"room": "hello"});
    alice
        .request(json!({"type": "publish", "room": "lobby", "content": content}))
        .await
        .expect("publish");
    message(&mut bob, "room message on n2", Kind::Room, &content).await;
    message(&mut carol, "room message on n3", Kind::Room, &content).await;

    // Typing: to a user (n2 -> n1) and to a room (n3 -> n1, n2).
    bob.request(json!({"type": "typing", "to": "alice"}))
        .await
        .expect("typing to alice");
    expect_frame(&mut alice, "typing from bob", |f| {
        matches!(f, ServerFrame::Typing { from, to: Some(to), .. } if from == "bob" && to == "alice")
    })
    .await;
    carol
        .request(json!({"type": "typing", "room": "lobby"}))
        .await
        .expect("typing in lobby");
    for (who, client) in [("alice", &mut alice), ("bob", &mut bob)] {
        expect_frame(client, &format!("room typing at {who}"), |f| {
            matches!(f, ServerFrame::Typing { from, room: Some(r), .. } if from == "carol" && r == "lobby")
        })
        .await;
    }

    // Broadcast from a client on n2 reaches n1 and n3.
    let content = json!("everyone");
    bob.request(json!({"type": "broadcast", "content": content}))
        .await
        .expect("broadcast");
    message(&mut alice, "broadcast on n1", Kind::Broadcast, &content).await;
    message(&mut carol, "broadcast on n3", Kind::Broadcast, &content).await;

    // The HTTP API of any node reaches users on every node.
    let content = json!({"api": "to alice"});
    let (status, body) = n3
        .api_post(
            "/api/v1/publish",
            &json!({"to": "alice", "content": content}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["online"], true);
    match message(&mut alice, "API direct from n3", Kind::Direct, &content).await {
        ServerFrame::Message(m) => assert_eq!(m.from, "server"),
        _ => unreachable!(),
    }
    let content = json!({"api": "to the lobby"});
    let (status, body) = n2
        .api_post(
            "/api/v1/publish",
            &json!({"room": "lobby", "content": content}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for (who, client) in [
        ("alice", &mut alice),
        ("bob", &mut bob),
        ("carol", &mut carol),
    ] {
        message(
            client,
            &format!("API room message at {who}"),
            Kind::Room,
            &content,
        )
        .await;
    }
    let content = json!({"api": "broadcast"});
    let (status, body) = n1
        .api_post(
            "/api/v1/publish",
            &json!({"broadcast": true, "content": content}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for (who, client) in [
        ("alice", &mut alice),
        ("bob", &mut bob),
        ("carol", &mut carol),
    ] {
        message(
            client,
            &format!("API broadcast at {who}"),
            Kind::Broadcast,
            &content,
        )
        .await;
    }
    let (status, body) = n2.api_get("/api/v1/rooms/lobby").await;
    assert_eq!(status, 200);
    assert_eq!(body["members"], json!(["alice", "bob", "carol"]));

    // Leaving: a leave event reaches the other nodes, members shrink.
    carol
        .request(json!({"type": "leave", "room": "lobby"}))
        .await
        .expect("leave");
    for (who, client) in [("alice", &mut alice), ("bob", &mut bob)] {
        expect_frame(client, &format!("carol's leave at {who}"), |f| {
            matches!(f, ServerFrame::Presence { event: PresenceEvent::Leave, user, .. } if user == "carol")
        })
        .await;
    }
    let reply = alice
        .request(json!({"type": "presence", "room": "lobby"}))
        .await
        .expect("room presence");
    assert_eq!(reply.members.unwrap_or_default(), ["alice", "bob"]);

    // The API of n1 disconnects carol on n3.
    let (status, body) = n1
        .api_post("/api/v1/users/carol/disconnect", &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disconnected"], 1);
    let closed = carol.wait_closed(T).await.expect("carol is closed");
    assert_eq!(closed.code, Some(1008), "{closed:?}");

    // Disconnecting: bob's status goes offline for the other nodes.
    bob.close(1000).await.expect("close");
    poll!("bob offline for n1", T, {
        let reply = alice
            .request(json!({"type": "presence", "user": "bob"}))
            .await
            .expect("presence of bob");
        (reply.online == Some(false)).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_reach_only_the_node_holding_the_recipient() {
    let cluster = Cluster::start(3).await;
    let [n1, n2, n3] = &cluster.nodes[..] else {
        unreachable!()
    };
    let mut alice = n1.connect("alice").await;
    let mut bob = n2.connect("bob").await;
    let mut carol = n3.connect("carol").await;

    // Each node listens on its own channel; n3 holds only carol.
    let mut redis = cluster.redis.conn().await;
    let numsub: Vec<(String, u64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(&["wsgate:node:{n1}", "wsgate:node:{n2}", "wsgate:node:{n3}"])
        .query_async(&mut redis)
        .await
        .expect("PUBSUB NUMSUB");
    assert!(numsub.iter().all(|(_, n)| *n == 1), "{numsub:?}");

    let b_before = n2.metric_required("wsgate_broker_received_total").await;
    let c_before = n3.metric_required("wsgate_broker_received_total").await;
    const N: usize = 20;
    for i in 0..N {
        alice
            .request(json!({"type": "send", "to": "bob", "content": i}))
            .await
            .expect("send to bob");
    }
    for i in 0..N {
        let content = json!(i);
        message(&mut bob, "direct message", Kind::Direct, &content).await;
    }
    eventually("n2 counted the bus messages", T, || async {
        (n2.metric_required("wsgate_broker_received_total").await >= b_before + N as f64)
            .then_some(())
    })
    .await;
    let c_after = n3.metric_required("wsgate_broker_received_total").await;
    assert_eq!(
        c_after, c_before,
        "n3 received bus traffic for direct messages to a user on n2"
    );

    // The counter does move on n3 when n3 holds the recipient.
    alice
        .request(json!({"type": "send", "to": "carol", "content": "c"}))
        .await
        .expect("send to carol");
    message(&mut carol, "direct message", Kind::Direct, &json!("c")).await;
    eventually("n3 counted carol's message", T, || async {
        (n3.metric_required("wsgate_broker_received_total").await > c_before).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_two_nodes_leaves_a_room_only_when_both_connections_left() {
    let cluster = Cluster::start(3).await;
    let [n1, n2, n3] = &cluster.nodes[..] else {
        unreachable!()
    };
    let mut alice1 = n1.connect("alice").await;
    let mut alice2 = n2.connect("alice").await;
    let mut bob = n3.connect("bob").await;
    join(&mut bob, "hall").await;
    join(&mut alice1, "hall").await;
    presence_join(&mut bob, "hall", "alice").await;
    assert_eq!(join(&mut alice2, "hall").await, ["alice", "bob"]);
    let reply = bob
        .request(json!({"type": "presence", "user": "alice"}))
        .await
        .expect("presence");
    assert_eq!(reply.connections, Some(2), "two connections on two nodes");

    // A direct message reaches both of alice's connections.
    bob.request(json!({"type": "send", "to": "alice", "content": "both"}))
        .await
        .expect("send");
    for a in [&mut alice1, &mut alice2] {
        message(
            a,
            "direct to both connections",
            Kind::Direct,
            &json!("both"),
        )
        .await;
    }

    // One connection leaves: alice is still a member, no leave event.
    alice1
        .request(json!({"type": "leave", "room": "hall"}))
        .await
        .expect("leave");
    let reply = bob
        .request(json!({"type": "presence", "room": "hall"}))
        .await
        .expect("room presence");
    assert_eq!(reply.members.unwrap_or_default(), ["alice", "bob"]);
    // The other one leaves (by closing): now the leave event comes, once.
    alice2.close(1000).await.expect("close");
    match expect_frame(&mut bob, "alice's leave", |f| {
        matches!(
            f,
            ServerFrame::Presence {
                event: PresenceEvent::Leave,
                ..
            }
        )
    })
    .await
    {
        ServerFrame::Presence { user, .. } => assert_eq!(user, "alice"),
        _ => unreachable!(),
    }
    let second = bob
        .next_frame_where(std::time::Duration::from_millis(500), |f| {
            matches!(
                f,
                ServerFrame::Presence {
                    event: PresenceEvent::Leave,
                    ..
                }
            )
        })
        .await;
    assert!(second.is_err(), "one leave event only: {second:?}");
    let reply = bob
        .request(json!({"type": "presence", "room": "hall"}))
        .await
        .expect("room presence");
    assert_eq!(reply.members.unwrap_or_default(), ["bob"]);
}

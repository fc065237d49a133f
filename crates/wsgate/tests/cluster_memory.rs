//! Three nodes in one process on a shared `MemoryBus`: what crosses nodes
//! (direct messages, receipts, rooms, broadcast, typing, presence, the user
//! registry, the node list, API disconnect, the shared inbox) works as on one
//! node.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use serde_json::json;
use support::*;
use wsgate::cluster::memory::MemoryBus;
use wsgate::Backend;
use wsgate_client::{Kind, PresenceEvent, ServerFrame};

async fn three_nodes() -> [TestNode; 3] {
    let bus = MemoryBus::new();
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3"] {
        let mut c = config();
        c.node_id = unique(name);
        nodes.push(start_with(c, Backend::Memory(bus.clone())).await);
    }
    let [a, b, c] = <[TestNode; 3]>::try_from(nodes).ok().expect("three");
    [a, b, c]
}

#[tokio::test]
async fn direct_messages_and_receipts_cross_nodes() {
    let [n1, n2, n3] = three_nodes().await;
    let mut alice = n1.connect("alice").await;
    let mut bob2 = n2.connect("bob").await;
    let mut bob3 = n3.connect("bob").await;
    let r = alice.request(send("bob", json!("hi"))).await.unwrap();
    assert_eq!(r.online, Some(true));
    let id = r.id.unwrap();
    for bob in [&mut bob2, &mut bob3] {
        let m = bob.next_message(T).await.unwrap();
        assert_eq!(
            (m.id.as_str(), m.kind, m.from.as_str()),
            (id.as_str(), Kind::Direct, "alice")
        );
    }
    bob3.ack(&id).await.unwrap();
    let f = alice
        .next_frame_where(T, |f| matches!(f, ServerFrame::Receipt { .. }))
        .await
        .unwrap();
    assert_eq!(
        f,
        ServerFrame::Receipt {
            id,
            by: "bob".into(),
            status: "delivered".into()
        }
    );
    // Order from one sender holds across nodes.
    for i in 0..30 {
        alice.send_frame(&send("bob", json!(i))).await.unwrap();
    }
    for i in 0..30 {
        assert_eq!(bob2.next_message(T).await.unwrap().content, json!(i));
    }
    // Typing to a user on another node.
    alice
        .request(json!({"type": "typing", "to": "bob"}))
        .await
        .unwrap();
    let f = bob3
        .next_frame_where(T, |f| matches!(f, ServerFrame::Typing { .. }))
        .await
        .unwrap();
    assert!(matches!(f, ServerFrame::Typing { from, .. } if from == "alice"));
}

#[tokio::test]
async fn rooms_presence_and_broadcast_cross_nodes() {
    let [n1, n2, n3] = three_nodes().await;
    let mut a = n1.connect("alice").await;
    let mut b = n2.connect("bob").await;
    let mut c = n3.connect_token(&broadcaster("carol")).await.unwrap();
    a.request(join("war-room")).await.unwrap();
    let r = b.request(join("war-room")).await.unwrap();
    assert_eq!(r.members, Some(vec!["alice".into(), "bob".into()]));
    assert_eq!(
        a.next_frame(T).await.unwrap(),
        ServerFrame::Presence {
            room: "war-room".into(),
            event: PresenceEvent::Join,
            user: "bob".into()
        }
    );
    // Presence queries are cluster-wide, from any node.
    let r = c
        .request(json!({"type": "presence", "room": "war-room"}))
        .await
        .unwrap();
    assert_eq!(r.members, Some(vec!["alice".into(), "bob".into()]));
    let r = c
        .request(json!({"type": "presence", "user": "alice"}))
        .await
        .unwrap();
    assert_eq!((r.online, r.connections), (Some(true), Some(1)));
    let users = n3.api("GET", "/api/v1/users/bob", None).await.json();
    assert_eq!(users["connections"], 1);
    let room = n3.api("GET", "/api/v1/rooms/war-room", None).await.json();
    assert_eq!(room["members"], json!(["alice", "bob"]));

    // Room messages reach members on other nodes, and not non-members.
    let id = b
        .request(publish("war-room", json!("plan")))
        .await
        .unwrap()
        .id
        .unwrap();
    for x in [&mut a, &mut b] {
        let m = x.next_message(T).await.unwrap();
        assert_eq!((m.id.as_str(), m.kind), (id.as_str(), Kind::Room));
    }
    // Typing in a room reaches the other members on other nodes.
    b.request(json!({"type": "typing", "room": "war-room"}))
        .await
        .unwrap();
    let f = a
        .next_frame_where(T, |f| matches!(f, ServerFrame::Typing { .. }))
        .await
        .unwrap();
    assert!(matches!(f, ServerFrame::Typing { room: Some(r), .. } if r == "war-room"));

    // Broadcast reaches every node, exactly once per connection.
    let bid = c
        .request(json!({"type": "broadcast", "content": "all hands"}))
        .await
        .unwrap()
        .id
        .unwrap();
    for x in [&mut a, &mut b, &mut c] {
        let m = x.next_message(T).await.unwrap();
        assert_eq!((m.id.as_str(), m.kind), (bid.as_str(), Kind::Broadcast));
    }
    // carol's first message was the broadcast: the room message never reached her.
    for x in [&mut a, &mut b, &mut c] {
        x.request(json!({"type": "ping"})).await.unwrap();
        let next = x.next_value(SHORT).await;
        assert!(
            next.as_ref().map_or(true, |v| v["type"] != "message"),
            "duplicate: {next:?}"
        );
    }

    // Leaving on one node is seen on the others.
    b.close(1000).await.unwrap();
    let f = a
        .next_frame_where(T, |f| matches!(f, ServerFrame::Presence { .. }))
        .await
        .unwrap();
    assert_eq!(
        f,
        ServerFrame::Presence {
            room: "war-room".into(),
            event: PresenceEvent::Leave,
            user: "bob".into()
        }
    );
    eventually("bob is offline everywhere", WAIT, || async {
        n1.api("GET", "/api/v1/users/bob", None).await.json()["online"] == false
    })
    .await;
}

#[tokio::test]
async fn inbox_api_publish_disconnect_and_node_list_cross_nodes() {
    let [n1, n2, n3] = three_nodes().await;
    // The API of any node reaches users on the others.
    let mut dave = n2.connect("dave").await;
    let res = n1
        .api(
            "POST",
            "/api/v1/publish",
            Some(&json!({"to": "dave", "content": 1})),
        )
        .await
        .json();
    assert_eq!(res["online"], true);
    assert_eq!(dave.next_message(T).await.unwrap().content, json!(1));
    let res = n3
        .api(
            "POST",
            "/api/v1/publish",
            Some(&json!({"broadcast": true, "content": 2})),
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(dave.next_message(T).await.unwrap().content, json!(2));

    let nodes = n1.api("GET", "/api/v1/nodes", None).await.json();
    let mut ids: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![n1.node.id(), n2.node.id(), n3.node.id()];
    want.sort();
    assert_eq!(ids, want);

    // An offline message stored through one node is replayed on another,
    // and the ack there sends the receipt back.
    let mut erin = n1.connect("erin").await;
    let r = erin.request(send("fay", json!("later"))).await.unwrap();
    assert_eq!(r.online, Some(false));
    let mut fay = n3.connect("fay").await;
    let m = fay.next_message(T).await.unwrap();
    assert_eq!((m.content, m.replay), (json!("later"), true));
    fay.ack(&m.id).await.unwrap();
    let f = erin
        .next_frame_where(T, |f| matches!(f, ServerFrame::Receipt { .. }))
        .await
        .unwrap();
    assert!(matches!(f, ServerFrame::Receipt { id, .. } if id == m.id));
    let mut fay2 = n2.connect("fay").await;
    fay2.request(json!({"type": "ping"})).await.unwrap();
    assert!(fay2.next_value(SHORT).await.is_err(), "acked everywhere");

    let res = n3
        .api("POST", "/api/v1/users/dave/disconnect", None)
        .await
        .json();
    assert_eq!(res["disconnected"], 1);
    assert_eq!(dave.wait_closed(T).await.unwrap().code, Some(1008));
}

#[tokio::test]
async fn draining_one_node_leaves_the_others_serving() {
    let bus = MemoryBus::new();
    let mut nodes = Vec::new();
    for name in ["d1", "d2"] {
        let mut c = config();
        c.node_id = unique(name);
        c.drain_timeout = std::time::Duration::from_millis(200);
        nodes.push(start_with(c, Backend::Memory(bus.clone())).await);
    }
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let mut alice = n1.connect("alice").await;
    let mut bob = n2.connect("bob").await;
    alice.request(join("ops")).await.unwrap();
    bob.request(join("ops")).await.unwrap();
    let drained = n2.node.clone();
    let drain = tokio::spawn(async move { wsgate::drain(&drained).await });
    assert_eq!(bob.wait_closed(T).await.unwrap().code, Some(1012));
    let f = alice
        .next_frame_where(T, |f| {
            matches!(
                f,
                ServerFrame::Presence {
                    event: PresenceEvent::Leave,
                    ..
                }
            )
        })
        .await
        .unwrap();
    assert!(matches!(f, ServerFrame::Presence { user, .. } if user == "bob"));
    tokio::time::timeout(T, drain).await.unwrap().unwrap();
    let list = n1.api("GET", "/api/v1/nodes", None).await.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["node"], n1.node.id());
    // bob reconnects to the surviving node and gets his direct messages there.
    let r = alice.request(send("bob", json!("after"))).await.unwrap();
    assert_eq!(r.online, Some(false));
    let mut bob = n1.connect("bob").await;
    let m = bob.next_message(T).await.unwrap();
    assert_eq!((m.content, m.replay), (json!("after"), true));
}

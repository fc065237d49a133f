//! `refresh` to a token whose `rooms` claim is narrower leaves the rooms the
//! new claim no longer allows, with every side effect of a `leave`: the
//! other members see a presence `leave`, the member count drops, the room's
//! messages stop reaching the connection, and a node with no member left
//! drops the room (`wsgate_rooms`). Standalone and across two nodes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use serde_json::{json, Value};
use support::{now_secs, token_with, Cluster, Peer, RedisServer, WsgateProc, SECRET, WAIT};

fn alice_token(rooms: &[&str], exp_in: u64) -> String {
    token_with(
        SECRET.as_bytes(),
        &json!({"sub": "alice", "exp": now_secs() + exp_in, "rooms": rooms}),
    )
}

async fn connect(url: &str, token: &str) -> Peer {
    Peer::connect(url, Some(token), None)
        .await
        .expect("connect")
}

async fn reply_to(peer: &mut Peer, frame: Value) -> Value {
    peer.send(&frame);
    let r = frame["ref"].clone();
    loop {
        let v = peer.next().await;
        if v["ref"] == r && (v["type"] == "reply" || v["type"] == "error") {
            return v;
        }
    }
}

async fn join(peer: &mut Peer, room: &str) -> Value {
    let r = reply_to(
        peer,
        json!({"type": "join", "room": room, "ref": format!("j-{room}")}),
    )
    .await;
    assert_eq!(r["ok"], true, "join {room}: {r}");
    r
}

/// Alice (rooms `team-*` and `lobby`) and bob (any room) share `team-a` and
/// `lobby`; alice refreshes to a token allowing only `lobby`. `alone`: alice
/// is the only member on her node (which then drops team-a).
async fn narrowing_refresh(alice_url: &str, bob_url: &str, alice_node: &WsgateProc, alone: bool) {
    let mut alice = connect(alice_url, &alice_token(&["team-*", "lobby"], 600)).await;
    let mut bob = connect(bob_url, &support::token("bob")).await;
    join(&mut bob, "team-a").await;
    join(&mut bob, "lobby").await;
    join(&mut alice, "team-a").await;
    join(&mut alice, "lobby").await;
    let joined = bob.next_of("presence").await;
    assert_eq!(
        (joined["event"].as_str(), joined["room"].as_str()),
        (Some("join"), Some("team-a"))
    );
    let joined = bob.next_of("presence").await;
    assert_eq!(
        (joined["event"].as_str(), joined["room"].as_str()),
        (Some("join"), Some("lobby"))
    );
    alice_node.wait_metric("wsgate_rooms", 2.0).await;

    let narrower = alice_token(&["lobby"], 1200);
    let r = reply_to(
        &mut alice,
        json!({"type": "refresh", "token": narrower, "ref": "r1"}),
    )
    .await;
    assert_eq!(r["ok"], true, "refresh: {r}");

    // The other member sees alice leave team-a (and only team-a).
    let left = bob.next_of("presence").await;
    assert_eq!(
        (
            left["event"].as_str(),
            left["room"].as_str(),
            left["user"].as_str()
        ),
        (Some("leave"), Some("team-a"), Some("alice")),
        "{left}"
    );
    let view = reply_to(
        &mut bob,
        json!({"type": "presence", "room": "team-a", "ref": "p1"}),
    )
    .await;
    assert_eq!(view["member_count"], 1, "{view}");
    assert_eq!(view["members"], json!(["bob"]), "{view}");
    let view = reply_to(
        &mut bob,
        json!({"type": "presence", "room": "lobby", "ref": "p2"}),
    )
    .await;
    assert_eq!(view["member_count"], 2, "lobby is still allowed: {view}");

    // team-a's messages no longer reach alice; lobby's still do, in order,
    // so the lobby message arriving first proves team-a's was not delivered.
    let p = reply_to(
        &mut bob,
        json!({"type": "publish", "room": "team-a", "content": "after", "ref": "m1"}),
    )
    .await;
    assert_eq!(p["ok"], true, "{p}");
    let p = reply_to(
        &mut bob,
        json!({"type": "publish", "room": "lobby", "content": "lobby-after", "ref": "m2"}),
    )
    .await;
    assert_eq!(p["ok"], true, "{p}");
    let m = alice.next_of("message").await;
    assert_eq!(
        (m["room"].as_str(), m["content"].as_str()),
        (Some("lobby"), Some("lobby-after")),
        "{m}"
    );

    // Alice is no member any more: publishing there is refused, and so is
    // joining again under the new token.
    let e = reply_to(
        &mut alice,
        json!({"type": "publish", "room": "team-a", "content": 1, "ref": "x1"}),
    )
    .await;
    assert_eq!(e["code"], "forbidden", "{e}");
    let e = reply_to(
        &mut alice,
        json!({"type": "join", "room": "team-a", "ref": "x2"}),
    )
    .await;
    assert_eq!(e["code"], "forbidden", "{e}");
    // Alice's node has no member of team-a left: it dropped the room.
    if alone {
        support::eventually("alice's node drops team-a", WAIT, || async {
            alice_node.metric("wsgate_rooms").await == 1.0
        })
        .await;
    }
    // The refresh's reply named the room it left.
    assert_eq!(
        r["left"],
        json!(["team-a"]),
        "the reply names the rooms left: {r}"
    );
    // A refresh that narrows nothing leaves nothing.
    let same = alice_token(&["lobby"], 1800);
    let r2 = reply_to(
        &mut alice,
        json!({"type": "refresh", "token": same, "ref": "r2"}),
    )
    .await;
    assert_eq!(r2["ok"], true, "{r2}");
    assert!(r2.get("left").is_none(), "{r2}");
}

#[tokio::test]
async fn narrower_refresh_leaves_rooms_standalone() {
    let server = WsgateProc::start(&[]).await;
    let url = server.ws_url();
    narrowing_refresh(&url, &url, &server, false).await;
}

#[tokio::test]
async fn narrower_refresh_leaves_rooms_across_two_nodes() {
    let cluster = Cluster::start_on(RedisServer::start().await, 2, &["--jwt-secret", SECRET]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    narrowing_refresh(&a.ws_url(), &b.ws_url(), a, true).await;
}

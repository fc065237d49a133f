//! The gRPC server API in cluster mode: two real `wsgate` processes over a
//! real `redis-server`, a tonic client on one node acting on users of the
//! other, and `UNAVAILABLE` plus health `NOT_SERVING` while Redis is down.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use support::*;
use tonic::transport::Channel;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use wsgate::grpc::content;
use wsgate::grpc::proto::gateway_client::GatewayClient;
use wsgate::grpc::proto::{self, publish_request::Target};
use wsgate_client::ServerFrame;
use wsgate_protocol::Kind;

async fn health(ch: &Channel) -> Option<ServingStatus> {
    let res = HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: "wsgate.v1.Gateway".into(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(res.into_inner().status).ok()
}

fn publish(target: Target, content: serde_json::Value) -> proto::PublishRequest {
    proto::PublishRequest {
        target: Some(target),
        content: Some(content::from_json(content)),
        from: String::new(),
        id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_on_one_node_acts_on_the_whole_cluster() {
    let mut redis = RedisServer::start().await;
    let dir = temp_dir("grpc-cluster");
    let grpc: Vec<SocketAddr> = (0..2)
        .map(|_| ([127, 0, 0, 1], free_port()).into())
        .collect();
    let mut nodes = Vec::new();
    for (i, addr) in grpc.iter().enumerate() {
        let addr = addr.to_string();
        let mut node = WsgateProc::spawn(
            &redis.url(),
            &format!("g{}", i + 1),
            &dir,
            &["--grpc-listen", &addr],
        );
        node.wait_ready().await;
        nodes.push(node);
    }
    let ch = grpc_channel(grpc[0]).await;
    let mut api = GatewayClient::new(ch.clone());
    let mut alice = nodes[1].connect("alice").await;
    let mut bob = nodes[0].connect("bob").await;
    alice
        .request(json!({"type": "join", "room": "r"}))
        .await
        .unwrap();
    bob.request(json!({"type": "join", "room": "r"}))
        .await
        .unwrap();

    let u = api
        .get_user(authed(proto::GetUserRequest {
            user: "alice".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (u.online, u.connections),
        (true, 1),
        "alice is on the other node"
    );

    let res = api
        .publish(authed(publish(Target::To("alice".into()), json!({"n": 1}))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.online, Some(true));
    let m = alice.next_message(T).await.unwrap();
    assert_eq!(
        (m.id.as_str(), m.kind, &m.content),
        (res.id.as_str(), Kind::Direct, &json!({"n": 1}))
    );
    alice.ack(&m.id).await.unwrap();

    let page = api
        .get_room(authed(proto::GetRoomRequest {
            room: "r".into(),
            limit: 1,
            cursor: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (page.member_count, page.members.clone()),
        (2, vec!["alice".to_owned()])
    );
    let page = api
        .get_room(authed(proto::GetRoomRequest {
            room: "r".into(),
            limit: 1,
            cursor: page.next_cursor.expect("a second page"),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (page.members, page.next_cursor),
        (vec!["bob".to_owned()], None)
    );

    let res = api
        .publish(authed(publish(
            Target::Room("r".into()),
            json!("to the room"),
        )))
        .await
        .unwrap()
        .into_inner();
    for c in [&mut alice, &mut bob] {
        let m = c.next_message(T).await.unwrap();
        assert_eq!((m.id.as_str(), m.kind), (res.id.as_str(), Kind::Room));
    }
    // The history lives in Redis: the other node reads it.
    let h = GatewayClient::new(grpc_channel(grpc[1]).await)
        .room_history(authed(proto::RoomHistoryRequest {
            room: "r".into(),
            since: 0,
            limit: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((h.offset, res.offset), (1, Some(1)));
    assert_eq!(h.epoch, res.epoch.unwrap());
    assert_eq!(h.messages.len(), 1);
    assert_eq!(h.messages[0].id, res.id);

    let mut listed: Vec<String> = api
        .list_nodes(authed(proto::ListNodesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .nodes
        .into_iter()
        .map(|n| n.node)
        .collect();
    listed.sort();
    assert_eq!(listed, ["g1", "g2"]);

    let d = api
        .disconnect_user(authed(proto::DisconnectUserRequest {
            user: "alice".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.disconnected, 1);
    assert_eq!(alice.wait_closed(T).await.unwrap().code, Some(1008));

    // Redis down: the node cannot confirm anything, and says so.
    redis.kill();
    eventually(
        "health NOT_SERVING without Redis",
        Duration::from_secs(15),
        || {
            let ch = ch.clone();
            async move { (health(&ch).await == Some(ServingStatus::NotServing)).then_some(()) }
        },
    )
    .await;
    let e = api
        .publish(authed(publish(Target::To("bob".into()), json!(1))))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert_eq!(e.metadata().get("wsgate-error").unwrap(), "unavailable");
    let e = api
        .publish(authed(publish(Target::Room("r".into()), json!(1))))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");

    redis.restart().await;
    eventually(
        "health SERVING after Redis is back",
        Duration::from_secs(20),
        || {
            let ch = ch.clone();
            async move { (health(&ch).await == Some(ServingStatus::Serving)).then_some(()) }
        },
    )
    .await;
    let res = api
        .publish(authed(publish(Target::To("bob".into()), json!("back"))))
        .await
        .unwrap()
        .into_inner();
    expect_frame(
        &mut bob,
        "the direct message after the outage",
        |f| matches!(f, ServerFrame::Message(m) if m.id == res.id),
    )
    .await;
}

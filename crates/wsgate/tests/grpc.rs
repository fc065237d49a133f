//! The gRPC server API (contract section 8.1) with a real tonic client
//! against a standalone node: every RPC, the status codes, health and
//! reflection, and the same answers as the HTTP door.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::time::Duration;

use prost_types::value::Kind as ValueKind;
use serde_json::json;
use support::*;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use wsgate::config::Config;
use wsgate::grpc::content;
use wsgate::grpc::proto::gateway_client::GatewayClient;
use wsgate::grpc::proto::{self, publish_request::Target};
use wsgate_client::Kind;

fn grpc_config() -> Config {
    Config {
        grpc_listen: Some(([127, 0, 0, 1], 0).into()),
        ..config()
    }
}

async fn channel(node: &TestNode) -> Channel {
    let addr = node.grpc.expect("the node has a gRPC listener");
    grpc_channel(addr).await
}

fn publish_to(target: Target, content: serde_json::Value) -> proto::PublishRequest {
    proto::PublishRequest {
        target: Some(target),
        content: Some(content::from_json(content)),
        from: String::new(),
        id: None,
    }
}

fn room_req(room: &str, limit: u32, cursor: &str) -> proto::GetRoomRequest {
    proto::GetRoomRequest {
        room: room.into(),
        limit,
        cursor: cursor.into(),
    }
}

#[tokio::test]
async fn every_rpc_reaches_websocket_clients() {
    let node = start(grpc_config()).await;
    let mut api = GatewayClient::new(channel(&node).await);
    let mut alice = node.connect("alice").await;
    let mut bob = node.connect("bob").await;
    alice.request(join("ops")).await.unwrap();
    bob.request(join("ops")).await.unwrap();

    // Publish: direct (stored and live), room, broadcast.
    let mut req = publish_to(
        Target::To("alice".into()),
        json!({"a": 1, "b": [true, null]}),
    );
    req.from = "billing".into();
    let res = api.publish(authed(req)).await.unwrap().into_inner();
    assert_eq!(res.online, Some(true));
    let m = alice.next_message(T).await.unwrap();
    assert_eq!((m.id.as_str(), m.kind), (res.id.as_str(), Kind::Direct));
    assert_eq!(m.from, "billing");
    assert_eq!(
        m.content,
        json!({"a": 1, "b": [true, null]}),
        "integers stay integers"
    );
    alice.ack(&m.id).await.unwrap();

    let res = api
        .publish(authed(publish_to(Target::To("nobody".into()), json!("hi"))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.online, Some(false));
    let mut nobody = node.connect("nobody").await;
    let m = nobody.next_message(T).await.unwrap();
    assert_eq!(
        (m.id.as_str(), m.from.as_str(), m.replay),
        (res.id.as_str(), "server", true)
    );

    let res = api
        .publish(authed(publish_to(Target::Room("ops".into()), json!(2.5))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.online, None, "room messages have no online flag");
    assert_eq!(res.offset, Some(1), "the room's first message");
    let epoch = res.epoch.clone().expect("room messages have an epoch");
    let room_message = res.id.clone();
    for c in [&mut alice, &mut bob] {
        let m = c.next_message(T).await.unwrap();
        assert_eq!((m.id.as_str(), m.kind), (res.id.as_str(), Kind::Room));
        assert_eq!(m.content, json!(2.5));
    }

    let res = api
        .publish(authed(publish_to(
            Target::Broadcast(true),
            json!({"all": "yes"}),
        )))
        .await
        .unwrap()
        .into_inner();
    for c in [&mut alice, &mut bob, &mut nobody] {
        let m = c.next_message(T).await.unwrap();
        assert_eq!((m.id.as_str(), m.kind), (res.id.as_str(), Kind::Broadcast));
    }

    // RoomHistory: what the room kept, paged by offset.
    let history = |since: u64, limit: Option<u32>| proto::RoomHistoryRequest {
        room: "ops".into(),
        since,
        limit,
    };
    let h = api
        .room_history(authed(history(0, None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (h.room.as_str(), h.epoch.as_str(), h.offset),
        ("ops", epoch.as_str(), 1)
    );
    assert_eq!(h.messages.len(), 1);
    let m = &h.messages[0];
    assert_eq!(
        (m.id.as_str(), m.kind(), m.from.as_str()),
        (room_message.as_str(), proto::Kind::Room, "server")
    );
    assert_eq!(
        (m.room.as_deref(), m.offset, m.epoch.as_deref()),
        (Some("ops"), Some(1), Some(epoch.as_str()))
    );
    assert_eq!(
        content::to_json(m.content.clone()).unwrap(),
        Some(json!(2.5))
    );
    let h = api
        .room_history(authed(history(1, None)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (h.offset, h.messages.len()),
        (1, 0),
        "nothing after the last offset"
    );
    let h = api
        .room_history(authed(history(0, Some(0))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (h.offset, h.messages.len()),
        (1, 0),
        "limit 0: the position only"
    );
    let res = node.api("GET", "/api/v1/rooms/ops/history", None).await;
    assert_eq!(
        res.json()["messages"][0]["id"],
        room_message.as_str(),
        "the HTTP door agrees"
    );

    // GetUser, GetRoom, ListNodes.
    let u = api
        .get_user(authed(proto::GetUserRequest {
            user: "alice".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (u.user.as_str(), u.online, u.connections),
        ("alice", true, 1)
    );
    let u = api
        .get_user(authed(proto::GetUserRequest {
            user: "ghost".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (u.online, u.connections),
        (false, 0),
        "an unknown user is offline, not NOT_FOUND"
    );

    let r = api
        .get_room(authed(room_req("ops", 0, "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.room.as_str(), r.member_count), ("ops", 2));
    assert_eq!(r.members, ["alice", "bob"]);
    assert_eq!(r.next_cursor, None);

    let nodes = api
        .list_nodes(authed(proto::ListNodesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].node, node.node.id());
    assert_eq!(nodes[0].connections, 3);
    assert!(nodes[0].started_at > 0);

    // DisconnectUser closes the user's connections with 1008.
    let d = api
        .disconnect_user(authed(proto::DisconnectUserRequest { user: "bob".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.disconnected, 1);
    let closed = bob.wait_closed(T).await.unwrap();
    assert_eq!(closed.code, Some(1008));

    // Every call is counted by method and code.
    let ok = node
        .metric(r#"wsgate_grpc_requests_total{code="OK",method="Publish"}"#)
        .await;
    assert_eq!(ok, 4.0);
}

#[tokio::test]
async fn rooms_page_alike_on_both_doors() {
    let node = start(grpc_config()).await;
    let mut api = GatewayClient::new(channel(&node).await);
    let mut clients = Vec::new();
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        let mut c = node.connect(user).await;
        c.request(join("big")).await.unwrap();
        clients.push(c);
    }
    let (mut grpc_pages, mut cursor) = (Vec::new(), String::new());
    loop {
        let page = api
            .get_room(authed(room_req("big", 2, &cursor)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.member_count, 5);
        grpc_pages.push(page.members);
        match page.next_cursor {
            Some(c) => cursor = c,
            None => break,
        }
    }
    assert_eq!(grpc_pages, [vec!["u1", "u2"], vec!["u3", "u4"], vec!["u5"]]);

    let (mut http_pages, mut query) = (Vec::new(), "limit=2".to_owned());
    loop {
        let res = node
            .api("GET", &format!("/api/v1/rooms/big?{query}"), None)
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
        let body = res.json();
        assert_eq!(body["member_count"], 5);
        http_pages.push(serde_json::from_value::<Vec<String>>(body["members"].clone()).unwrap());
        match body["next_cursor"].as_str() {
            Some(c) => query = format!("limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(http_pages, grpc_pages, "both doors answer the same pages");

    // An empty room is an empty page, on both doors.
    let empty = api
        .get_room(authed(room_req("none", 0, "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((empty.member_count, empty.members.len()), (0, 0));
    let res = node.api("GET", "/api/v1/rooms/none", None).await;
    assert_eq!(
        res.json(),
        json!({"room": "none", "member_count": 0, "members": []})
    );
}

#[tokio::test]
async fn bad_keys_and_bad_arguments_get_their_status_codes() {
    let node = start(grpc_config()).await;
    let mut api = GatewayClient::new(channel(&node).await);
    let user = || proto::GetUserRequest {
        user: "alice".into(),
    };

    let e = api.get_user(Request::new(user())).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    for wrong in ["Bearer wrong", API_KEY, "Basic abc"] {
        let e = api.get_user(with_key(user(), wrong)).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{wrong}: {e:?}");
        assert_eq!(e.metadata().get("wsgate-error").unwrap(), "unauthorized");
    }
    // The key is checked before anything else: a bad request without it is
    // UNAUTHENTICATED, not INVALID_ARGUMENT.
    let e = api
        .get_user(Request::new(proto::GetUserRequest { user: "a/b".into() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    let bad_publishes = [
        proto::PublishRequest {
            target: None,
            content: Some(content::from_json(json!(1))),
            from: String::new(),
            id: None,
        },
        proto::PublishRequest {
            target: Some(Target::To("bob".into())),
            content: None,
            from: String::new(),
            id: None,
        },
        publish_to(Target::To("a b".into()), json!(1)),
        publish_to(Target::Room(String::new()), json!(1)),
        publish_to(Target::Room("x".repeat(129)), json!(1)),
        publish_to(Target::Broadcast(false), json!(1)),
        proto::PublishRequest {
            target: Some(Target::To("bob".into())),
            content: Some(content::from_json(json!(1))),
            from: "bad from".into(),
            id: None,
        },
        proto::PublishRequest {
            target: Some(Target::To("bob".into())),
            content: Some(prost_types::Value {
                kind: Some(ValueKind::NumberValue(f64::NAN)),
            }),
            from: String::new(),
            id: None,
        },
        proto::PublishRequest {
            target: Some(Target::To("bob".into())),
            content: Some(prost_types::Value { kind: None }),
            from: String::new(),
            id: None,
        },
    ];
    for req in bad_publishes {
        let shown = format!("{req:?}");
        let e = api.publish(authed(req)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{shown}: {e:?}");
        assert_eq!(e.metadata().get("wsgate-error").unwrap(), "bad_request");
        assert!(!e.message().is_empty());
    }
    for req in [
        room_req("ops", 10_001, ""),
        room_req("a/b", 0, ""),
        room_req("ops", 0, "no spaces"),
    ] {
        let shown = format!("{req:?}");
        let e = api.get_room(authed(req)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{shown}: {e:?}");
    }
    let e = api
        .disconnect_user(authed(proto::DisconnectUserRequest {
            user: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = api
        .room_history(authed(proto::RoomHistoryRequest {
            room: "no room".into(),
            since: 0,
            limit: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // A request over api-max-body-bytes is refused before it is decoded,
    // with tonic's OUT_OF_RANGE (RESOURCE_EXHAUSTED means `inbox_full`).
    let big = publish_to(Target::To("bob".into()), json!("x".repeat(2 << 20)));
    let e = api.publish(authed(big)).await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");

    let refused = node
        .metric(r#"wsgate_grpc_requests_total{code="UNAUTHENTICATED",method="GetUser"}"#)
        .await;
    assert_eq!(refused, 5.0);
}

#[tokio::test]
async fn without_an_api_key_the_gateway_is_unavailable_but_health_answers() {
    let node = start(Config {
        api_key: None,
        ..grpc_config()
    })
    .await;
    let ch = channel(&node).await;
    let e = GatewayClient::new(ch.clone())
        .list_nodes(authed(proto::ListNodesRequest {}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert_eq!(e.metadata().get("wsgate-error").unwrap(), "unavailable");
    let status = health(&ch, "").await;
    assert_eq!(status, ServingStatus::Serving);
}

async fn health(ch: &Channel, service: &str) -> ServingStatus {
    let res = HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health check")
        .into_inner();
    ServingStatus::try_from(res.status).expect("a known status")
}

#[tokio::test]
async fn health_follows_readiness_without_a_key() {
    // Two connections drained over 20 s: the second is closed 10 s in,
    // so the node stays up, draining, long enough to look at.
    let node = start(Config {
        drain_timeout: Duration::from_secs(20),
        ..grpc_config()
    })
    .await;
    let ch = channel(&node).await;
    eventually("health SERVING", WAIT, || async {
        health(&ch, "").await == ServingStatus::Serving
            && health(&ch, "wsgate.v1.Gateway").await == ServingStatus::Serving
    })
    .await;
    let e = HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::NotFound,
        "the health service's own NOT_FOUND"
    );

    // Draining: /readyz turns 503 and health NOT_SERVING.
    let _a = node.connect("a").await;
    let _b = node.connect("b").await;
    let server = node.node.clone();
    tokio::spawn(async move { wsgate::drain(&server).await });
    eventually("/readyz 503 while draining", WAIT, || async {
        http(node.admin, "GET", "/readyz", &[], None).await.status == 503
    })
    .await;
    eventually("health NOT_SERVING while draining", WAIT, || async {
        health(&ch, "").await == ServingStatus::NotServing
            && health(&ch, "wsgate.v1.Gateway").await == ServingStatus::NotServing
    })
    .await;
}

#[tokio::test]
async fn reflection_describes_the_services_without_a_key() {
    let node = start(grpc_config()).await;
    let mut client = ServerReflectionClient::new(channel(&node).await);
    let ask = |req: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(req),
    };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "wsgate.v1.Gateway".into(),
        )),
    ];
    let mut answers = tokio::time::timeout(
        T,
        client.server_reflection_info(tokio_stream::iter(requests)),
    )
    .await
    .expect("reflection answers in time")
    .expect("reflection")
    .into_inner();

    let first = tokio::time::timeout(T, answers.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("not a service list: {first:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in ["wsgate.v1.Gateway", "grpc.health.v1.Health"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }

    let second = tokio::time::timeout(T, answers.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = second.message_response else {
        panic!("not a file descriptor: {second:?}");
    };
    use prost::Message as _;
    let file = prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice())
        .unwrap();
    assert_eq!(file.name(), "wsgate/v1/gateway.proto");
    let methods: Vec<_> = file.service[0].method.iter().map(|m| m.name()).collect();
    assert_eq!(
        methods,
        [
            "Publish",
            "GetRoom",
            "GetUser",
            "DisconnectUser",
            "ListNodes",
            "RoomHistory"
        ]
    );

    // OpenAPI and proto in step: every HTTP operation but the document
    // itself is a Gateway method of the same name.
    let doc = http(node.admin, "GET", "/api/v1/openapi.json", &[], None)
        .await
        .json();
    let mut operations: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| p.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .filter(|id| *id != "openapi")
        .map(|id| id[..1].to_uppercase() + &id[1..])
        .collect();
    operations.sort();
    let mut methods: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
    methods.sort();
    assert_eq!(
        operations, methods,
        "openapi.json and gateway.proto list the same operations"
    );
}

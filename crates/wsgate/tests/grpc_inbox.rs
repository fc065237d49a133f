//! gRPC `Publish` of direct messages and the inbox limits, against the real
//! binary (standalone and on a real Redis): a full inbox answers
//! `RESOURCE_EXHAUSTED` (`inbox_full`) and stores nothing; a publish with an
//! `id` already stored for that user reports `duplicate` and is neither
//! stored nor delivered again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::net::SocketAddr;

use serde_json::json;
use support::*;
use tonic::transport::Channel;
use tonic::Code;
use wsgate::grpc::content;
use wsgate::grpc::proto::gateway_client::GatewayClient;
use wsgate::grpc::proto::{self, publish_request::Target};

fn to_bob(text: &str, id: Option<&str>) -> proto::PublishRequest {
    proto::PublishRequest {
        target: Some(Target::To("bob".into())),
        content: Some(content::from_json(json!(text))),
        from: String::new(),
        id: id.map(str::to_owned),
    }
}

async fn gateway(addr: SocketAddr) -> GatewayClient<Channel> {
    GatewayClient::new(grpc_channel(addr).await)
}

/// Bob's inbox holds two messages (`--inbox-max 2`).
async fn full_inbox_and_duplicates(node: &WsgateProc, grpc: SocketAddr) {
    let mut api = gateway(grpc).await;
    let first_id = "018f6b8e-6a2c-7cc0-8000-0000000000a1";
    let first = api
        .publish(authed(to_bob("one", Some(first_id))))
        .await
        .expect("stored")
        .into_inner();
    assert_eq!((first.id.as_str(), first.duplicate), (first_id, false));
    // The same id again: ok, duplicate, nothing stored (the inbox keeps
    // room for the second message).
    let again = api
        .publish(authed(to_bob("one again", Some(first_id))))
        .await
        .expect("a repeat is ok")
        .into_inner();
    assert_eq!(
        (again.id.as_str(), again.duplicate),
        (first_id, true),
        "{again:?}"
    );
    assert_eq!(again.online, None, "{again:?}");
    api.publish(authed(to_bob("two", None)))
        .await
        .expect("the second fits");
    // Full: RESOURCE_EXHAUSTED, and nothing stored.
    let e = api
        .publish(authed(to_bob("three", None)))
        .await
        .expect_err("a full inbox refuses");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(
        node.metric("wsgate_inbox_refused_total{reason=\"full\"}")
            .await
            >= 1.0
    );
    // A repeat of a stored id is still a duplicate, even with the inbox full.
    let full_repeat = api
        .publish(authed(to_bob("one", Some(first_id))))
        .await
        .expect("a repeat of a stored id is ok when full")
        .into_inner();
    assert!(full_repeat.duplicate);
    // Bob gets each stored message once: "one" (not "one again") and "two".
    let mut bob = wsgate_client::Client::connect(wsgate_client::Options::new(node.user_url("bob")))
        .await
        .expect("bob connects");
    let a = bob.next_message(T).await.expect("first");
    let b = bob.next_message(T).await.expect("second");
    assert_eq!(
        (a.id.as_str(), a.content.clone(), b.content.clone()),
        (first_id, json!("one"), json!("two"))
    );
}

#[tokio::test]
async fn grpc_publish_to_a_full_inbox_and_a_repeated_id_standalone() {
    let grpc: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let addr = grpc.to_string();
    let node = WsgateProc::start(&[
        "--allow-anonymous",
        "--grpc-listen",
        &addr,
        "--inbox-max",
        "2",
    ])
    .await;
    full_inbox_and_duplicates(&node, grpc).await;
}

#[tokio::test]
async fn grpc_publish_to_a_full_inbox_and_a_repeated_id_on_redis() {
    let grpc: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let addr = grpc.to_string();
    let cluster = Cluster::start_on(
        RedisServer::start().await,
        1,
        &["--grpc-listen", &addr, "--inbox-max", "2"],
    )
    .await;
    full_inbox_and_duplicates(&cluster.nodes[0], grpc).await;
    assert_eq!(cluster.redis.inbox_len("bob").await, 2);
}

//! Large rooms in cluster mode (issue #11 item 7), two nodes on a real
//! redis-server: a room over `--presence-max-members` gets `member_count`
//! without member lists or presence events, every publish reaches every
//! member on both nodes, and the API pages members with `HSCAN`.

#[macro_use]
mod support;

use serde_json::{json, Value};
use support::{Cluster, RedisServer, T};
use wsgate_client::{Client, Options, ServerFrame};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_room_over_presence_max_members_across_two_nodes() {
    const PER_NODE: usize = 150;
    let extra = [
        "--presence-max-members",
        "50",
        "--max-connections-per-ip",
        "10000",
    ];
    let cluster = Cluster::start_on(RedisServer::start().await, 2, &extra).await;
    let mut tasks = Vec::new();
    for (n, node) in cluster.nodes.iter().enumerate() {
        let urls: Vec<String> = (0..PER_NODE)
            .map(|i| node.user_url(&format!("c{n}-{i:03}")))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut clients = Vec::new();
            for url in urls {
                let mut c = Client::connect(Options::new(url)).await.expect("connect");
                let reply = c
                    .request(json!({"type": "join", "room": "arena"}))
                    .await
                    .expect("join");
                let count = reply.member_count.expect("member_count");
                assert_eq!(reply.members.is_some(), count <= 50, "count {count}");
                clients.push(c);
            }
            clients
        }));
    }
    let mut clients: Vec<Client> = Vec::new();
    for t in tasks {
        clients.extend(t.await.expect("join task"));
    }
    let total = 2 * PER_NODE;
    let (status, v) = cluster.nodes[0]
        .api_get("/api/v1/rooms/arena?limit=64")
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["member_count"], total);

    // Pages through HSCAN: every member once, next_cursor absent at the end.
    let mut seen: Vec<String> = Vec::new();
    let mut path = "/api/v1/rooms/arena?limit=64".to_owned();
    for _ in 0..100 {
        let (status, v) = cluster.nodes[1].api_get(&path).await;
        assert_eq!(status, 200, "{v}");
        let page = v["members"].as_array().expect("members");
        assert!(page.len() <= 64, "{}", page.len());
        seen.extend(page.iter().filter_map(Value::as_str).map(str::to_owned));
        match v.get("next_cursor").and_then(Value::as_str) {
            Some(c) => path = format!("/api/v1/rooms/arena?limit=64&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "every member listed once");

    // One publish from each node reaches every member (the presence events
    // of the first 50 joins are skipped on the way).
    let (status, v) = cluster.nodes[0]
        .api_post("/api/v1/publish", &json!({"room": "arena", "content": "a"}))
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = cluster.nodes[1]
        .api_post("/api/v1/publish", &json!({"room": "arena", "content": "b"}))
        .await;
    assert_eq!(status, 200, "{v}");
    for c in clients.iter_mut() {
        let mut got = Vec::new();
        while got.len() < 2 {
            match c.next_frame(T).await.expect("every publish arrives") {
                ServerFrame::Message(m) => got.push(m.content),
                ServerFrame::Presence { .. } | ServerFrame::Pong { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        got.sort_by_key(|v| v.to_string());
        assert_eq!(got, vec![json!("a"), json!("b")]);
    }
    for node in &cluster.nodes {
        assert_eq!(
            node.metric_required("wsgate_slow_consumer_disconnects_total")
                .await,
            0.0
        );
    }
}

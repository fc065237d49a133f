//! Large rooms (issue #11 item 7): presence events and member lists only up
//! to `--presence-max-members`; above it a join costs O(1) in the room's size
//! and the server API lists members in pages.

#[macro_use]
mod support;

use serde_json::{json, Value};
use support::{config, start, T};
use wsgate_client::Client;

/// 2,000 members join one room on one node: nobody is closed as a slow
/// consumer (no presence storm, no member lists of 2,000), and every publish
/// reaches every member.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_members_join_one_room_and_every_publish_arrives() {
    const MEMBERS: usize = 2000;
    const TASKS: usize = 8;
    let mut c = config();
    c.max_connections_per_ip = 10_000;
    let node = start(c).await;
    let mut joins = Vec::new();
    for t in 0..TASKS {
        let opts: Vec<_> = (0..MEMBERS / TASKS)
            .map(|i| node.opts(&format!("m{t}-{i}")))
            .collect();
        joins.push(tokio::spawn(async move {
            let mut clients = Vec::new();
            let mut big_replies = 0;
            for o in opts {
                let mut client = Client::connect(o).await.expect("connect");
                let reply = client
                    .request(json!({"type": "join", "room": "stadium"}))
                    .await
                    .expect("join");
                let count = reply
                    .member_count
                    .expect("member_count in every join reply");
                if count > 200 {
                    assert!(
                        reply.members.is_none(),
                        "no member list above 200 ({count})"
                    );
                    big_replies += 1;
                } else {
                    // Other tasks join meanwhile: the list is read after the count.
                    assert!(reply.members.is_some(), "a member list up to 200 ({count})");
                }
                clients.push(client);
            }
            (clients, big_replies)
        }));
    }
    let mut clients: Vec<Client> = Vec::new();
    let mut big = 0;
    for j in joins {
        let (c, b) = j.await.expect("join task");
        clients.extend(c);
        big += b;
    }
    assert_eq!(clients.len(), MEMBERS);
    assert!(big > 0, "some joins saw a room over presence-max-members");

    // The room as a presence query and the API see it.
    let reply = clients[0]
        .request(json!({"type": "presence", "room": "stadium"}))
        .await
        .expect("presence");
    assert_eq!(reply.member_count, Some(MEMBERS as u64));
    assert!(reply.members.is_none());

    for seq in 0..3 {
        let res = node
            .api(
                "POST",
                "/api/v1/publish",
                Some(&json!({"room": "stadium", "content": {"seq": seq}})),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
    }
    let mut tasks = Vec::new();
    for chunk in clients
        .chunks(MEMBERS / TASKS)
        .map(|c| c.len())
        .collect::<Vec<_>>()
    {
        let mut mine: Vec<Client> = clients.drain(..chunk).collect();
        tasks.push(tokio::spawn(async move {
            for c in mine.iter_mut() {
                for seq in 0..3 {
                    let m = c
                        .next_message(T)
                        .await
                        .expect("every member gets every publish");
                    assert_eq!(m.content, json!({"seq": seq}));
                }
            }
            mine
        }));
    }
    for t in tasks {
        t.await.expect("receive task");
    }
    assert_eq!(
        node.metric("wsgate_slow_consumer_disconnects_total").await,
        0.0
    );
    assert_eq!(
        node.metric("wsgate_disconnects_total{code=\"1013\"}").await,
        0.0
    );
}

/// `GET /api/v1/rooms/{room}` pages members; `next_cursor` is absent on the
/// last page, and the pages together hold every member once.
#[tokio::test]
async fn the_api_lists_room_members_in_pages() {
    let node = start(config()).await;
    let mut clients = Vec::new();
    for i in 0..25 {
        let mut c = node.connect(&format!("p{i:02}")).await;
        c.request(json!({"type": "join", "room": "paged"}))
            .await
            .expect("join");
        clients.push(c);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/api/v1/rooms/paged?limit=10".to_owned(),
            Some(c) => format!("/api/v1/rooms/paged?limit=10&cursor={c}"),
        };
        let res = node.api("GET", &path, None).await;
        assert_eq!(res.status, 200, "{}", res.text());
        let v: Value = res.json();
        assert_eq!(v["room"], "paged");
        assert_eq!(v["member_count"], 25);
        let members = v["members"].as_array().expect("members");
        assert!(members.len() <= 10, "{v}");
        seen.extend(members.iter().map(|m| m.as_str().unwrap_or("").to_owned()));
        pages += 1;
        match v.get("next_cursor") {
            Some(Value::String(c)) => cursor = Some(c.clone()),
            None => break,
            Some(other) => panic!("next_cursor {other}"),
        }
        assert!(pages < 10, "paging does not end");
    }
    seen.sort();
    let want: Vec<String> = (0..25).map(|i| format!("p{i:02}")).collect();
    assert_eq!(seen, want);
    assert_eq!(pages, 3);
    // Default page (1000): one page, no next_cursor; bad limits are 400.
    let v: Value = node.api("GET", "/api/v1/rooms/paged", None).await.json();
    assert_eq!(v["members"].as_array().map(Vec::len), Some(25));
    assert!(v.get("next_cursor").is_none(), "{v}");
    for bad in ["limit=0", "limit=abc", "limit=100000", "cursor=a%20b"] {
        let res = node
            .api("GET", &format!("/api/v1/rooms/paged?{bad}"), None)
            .await;
        assert_eq!(res.status, 400, "{bad}: {}", res.text());
    }
    drop(clients);
}

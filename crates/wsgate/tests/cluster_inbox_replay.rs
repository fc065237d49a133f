//! The inbox replay against a real Redis (issue 11, items 3 and 4): it is
//! paged through the connection's write bound, so clients that never read
//! cost the node a bounded amount of memory however full the inbox; and a
//! connection either gets its whole replay, in order, before anything live,
//! or is closed with 1013 (the inbox could not be read): it never goes on
//! live without it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use wsgate_client::{Client, ClientError, Options, ServerFrame};

/// Fills `user`'s inbox through the server API: `n` messages of `bytes`.
async fn fill(node: &WsgateProc, user: &str, n: usize, bytes: usize) -> Vec<String> {
    let pad = "z".repeat(bytes);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let (status, body) = node
            .api_post(
                "/api/v1/publish",
                &json!({"to": user, "content": {"i": i, "pad": pad}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_never_reading_connections_cost_a_bounded_amount_of_memory() {
    let cluster = Cluster::start_on(
        RedisServer::start().await,
        1,
        &["--inbox-max-bytes", "64MiB"],
    )
    .await;
    let node = &cluster.nodes[0];
    // 300 messages of 60 KB: 18 MB waiting for the user.
    fill(node, "hoarder", 300, 60_000).await;
    let before = node.proc_status("VmRSS");
    // Ten connections that read the welcome and nothing else, with small
    // socket buffers.
    let mut clients = Vec::new();
    for _ in 0..10 {
        let opts = Options::new(node.user_url("hoarder")).recv_buffer_bytes(4096);
        clients.push(Client::connect(opts).await.expect("connect"));
    }
    // Every replay has started (and stopped at the full sockets).
    node.wait_metric("wsgate_inbox_replayed_total", 10.0).await;
    let mut peak = 0;
    for _ in 0..20 {
        peak = peak.max(node.proc_status("VmRSS"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let grown_mb = peak.saturating_sub(before) / 1024;
    report(&format!(
        "ten never-reading connections of an 18 MB inbox: VmRSS {} MB -> peak {} MB (+{grown_mb} MB)",
        before / 1024,
        peak / 1024
    ));
    // The bound is the behaviour: a page (256 KiB as stored, a few times that
    // decoded and encoded) and the socket buffers per connection, not the
    // inbox (the old replay held 18 MB several times over per connection).
    assert!(
        grown_mb < 80,
        "ten never-reading connections grew the node by {grown_mb} MB (bound: 80 MB)"
    );
    drop(clients);
}

/// What one connection saw: the replay's ids in order then a pong, or a
/// close with this code.
enum Seen {
    Replay(Vec<String>),
    Closed(Option<u16>, Vec<String>),
}

async fn connect_and_read(url: String, n: usize) -> Seen {
    let mut client = match Client::connect(Options::new(url).timeout(WAIT)).await {
        Ok(c) => c,
        Err(ClientError::Closed(info)) => return Seen::Closed(info.code, Vec::new()),
        Err(e) => panic!("connect: {e}"),
    };
    let mut ids = Vec::new();
    // Asked right away: the pong is the first frame after the replay.
    if let Err(e) = client
        .send_frame(&json!({"type": "ping", "ref": "after"}))
        .await
    {
        panic!("ping: {e}");
    }
    loop {
        match client.next_frame(WAIT).await {
            Ok(ServerFrame::Message(m)) => {
                assert!(m.replay, "a live frame during the replay: {m:?}");
                ids.push(m.id);
            }
            Ok(ServerFrame::Pong { .. }) => {
                assert_eq!(
                    ids.len(),
                    n,
                    "went on live after {} of {n} replayed messages",
                    ids.len()
                );
                return Seen::Replay(ids);
            }
            Ok(other) => panic!("unexpected frame {other:?}"),
            Err(ClientError::Closed(info)) => return Seen::Closed(info.code, ids),
            Err(e) => panic!("read: {e} after {} messages", ids.len()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_connects_get_the_whole_replay_or_1013() {
    let cluster = Cluster::start_on(
        RedisServer::start().await,
        1,
        &["--inbox-max-bytes", "64MiB"],
    )
    .await;
    let node = &cluster.nodes[0];
    let ids = fill(node, "popular", 300, 30_000).await;
    // Four at once; Redis freezes meanwhile (longer than a command may
    // take), then comes back.
    let readers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(connect_and_read(node.user_url("popular"), ids.len())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.redis.pause();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.redis.resume();
    let mut replayed = 0;
    for r in readers {
        match r.await.expect("reader") {
            Seen::Replay(got) => {
                assert_eq!(got, ids, "the whole replay, in order");
                replayed += 1;
            }
            Seen::Closed(code, got) => {
                assert_eq!(code, Some(1013), "closed after {} messages", got.len());
                assert_eq!(got[..], ids[..got.len()], "what came was in order");
            }
        }
    }
    report(&format!("simultaneous connects with Redis frozen: {replayed} of 4 got the whole replay, the rest 1013"));
    // Once Redis is back, a new connection gets everything.
    cluster.all_ready(200, WAIT).await;
    match connect_and_read(node.user_url("popular"), ids.len()).await {
        Seen::Replay(got) => assert_eq!(got, ids),
        Seen::Closed(code, _) => panic!("closed with {code:?} after Redis came back"),
    }
}

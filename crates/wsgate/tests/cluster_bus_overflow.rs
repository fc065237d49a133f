//! The bus reader's queue overflow (issue 11 item 5, `cluster/redis/inbound.rs`):
//! a node that falls behind its bus by more than the queue's bound
//! (`QUEUE_LEN`, 16,384 payloads) ends its subscription as if Redis had dropped it
//! (`wsgate_bus_queue_overflows_total`), resubscribes and catches up from
//! the inboxes: no direct message whose sender got `ok` is lost to a
//! recipient that stayed connected.
//!
//! How it falls behind, honestly: node n2 is frozen (SIGSTOP) while Redis
//! keeps publishing to it (the pub/sub output buffer limit lifted, so Redis
//! keeps the backlog rather than dropping n2): direct messages from alice
//! to bob, then 40,000 envelopes whose content is costlier to decode than
//! to read, then more of alice's messages. Thawed, n2's reader copies the
//! backlog faster than its dispatcher decodes it, and the queue fills.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::collections::HashSet;

use serde_json::{json, Value};
use support::*;

/// How long bob may wait for one message while n2 works through its backlog.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(60);
use wsgate_protocol::bus::{BusEvent, Envelope, Route};
use wsgate_protocol::{Kind, MessageFrame, ServerFrame};

/// A filler envelope for a user nobody is: 200 two-element arrays of
/// content (about 600 bytes of MessagePack, 600 JSON values to build).
fn filler(i: usize) -> Vec<u8> {
    let content = Value::Array((0..200).map(|_| json!([0, 0])).collect());
    Envelope {
        origin: "filler".into(),
        route: Route::User("nobody".into()),
        event: BusEvent::Frame {
            frame: ServerFrame::Message(MessageFrame {
                id: format!("filler-{i}"),
                kind: Kind::Direct,
                from: "filler".into(),
                to: Some("nobody".into()),
                room: None,
                content,
                time: 0,
                replay: false,
                offset: None,
                epoch: None,
            }),
            accepted_ms: None,
        },
        sent_ms: None,
    }
    .encode()
    .expect("encode the filler")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_bus_queue_overflows_resubscribes_and_loses_no_direct_message() {
    let redis = RedisServer::start_flags(&["--client-output-buffer-limit", "pubsub 0 0 0"]).await;
    // A long node-ttl: n2 is frozen for a while and must not be reaped
    // meanwhile (a reap would catch it up by another path).
    let cluster = Cluster::start_on(redis, 2, &["--node-ttl", "60s"]).await;
    let (n1, n2) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut bob = n2.connect("bob").await;
    let mut alice = n1.connect("alice").await;
    alice
        .request(send("bob", json!("before")))
        .await
        .expect("send");
    bob.next_message(T).await.expect("live before the freeze");

    let mut sent = HashSet::new();
    n2.pause();
    for i in 0..20 {
        let r = alice
            .request(send("bob", json!(format!("early-{i}"))))
            .await
            .expect("send");
        sent.insert(r.id.expect("id"));
    }
    let mut conn = cluster.redis.conn().await;
    let channel = format!("wsgate:node:{{{}}}", n2.id);
    let payload = filler(0);
    for _ in 0..40 {
        let mut pipe = redis::pipe();
        for _ in 0..1000 {
            pipe.cmd("PUBLISH").arg(&channel).arg(&payload).ignore();
        }
        let () = pipe
            .query_async(&mut conn)
            .await
            .expect("PUBLISH the filler");
    }
    for i in 0..5 {
        let r = alice
            .request(send("bob", json!(format!("late-{i}"))))
            .await
            .expect("send");
        sent.insert(r.id.expect("id"));
    }
    n2.resume();

    eventually("n2 counts a bus queue overflow", WAIT, || async {
        n2.metric("wsgate_bus_queue_overflows_total").await >= 1.0
    })
    .await;
    // Every message whose sender got ok reaches bob, who never reconnected
    // (live, or from the inbox by the catch-up; repeats dropped by id). The
    // catch-up runs after the dispatcher has worked through what the queue
    // held (16,384 filler envelopes, in order): a generous bound for a
    // debug build on a busy machine.
    let mut got = HashSet::new();
    while !sent.is_subset(&got) {
        let m = bob.next_message(CATCH_UP).await.unwrap_or_else(|e| {
            panic!(
                "bob has {} of {}: {e}",
                got.intersection(&sent).count(),
                sent.len()
            )
        });
        got.insert(m.id);
    }
    cluster.all_ready(200, WAIT).await;
    report(&format!(
        "bus queue overflow: {} overflow(s) on n2, {} of {} direct messages delivered",
        n2.metric("wsgate_bus_queue_overflows_total").await,
        got.intersection(&sent).count(),
        sent.len()
    ));
}

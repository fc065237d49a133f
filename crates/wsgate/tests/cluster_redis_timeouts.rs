//! Redis timeouts are the documented ones (issue 11 item 4,
//! `docs/operations.md` "Redis timeouts"): a command is a failure only after
//! 2 s (`OP_TIMEOUT`), never after redis-rs's own 500 ms default. One real
//! node on a real Redis that stalls (SIGSTOP) for about a second while a
//! `send` is in flight: the send is stored and answered `ok`, once.

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_stall_shorter_than_the_operation_timeout_is_not_a_failure() {
    let cluster = Cluster::start(1).await;
    let node = &cluster.nodes[0];
    let mut alice = node.connect("alice").await;
    alice
        .request(send("bob", json!("warm-up")))
        .await
        .expect("a send with Redis answering");

    cluster.redis.pause();
    let sending = tokio::spawn(async move {
        let reply = alice.request(send("bob", json!("stalled"))).await;
        (alice, reply)
    });
    // The stall itself is the scenario: Redis answers nothing for 1.2 s,
    // well past redis-rs's default 500 ms, well before OP_TIMEOUT (2 s).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    cluster.redis.resume();
    let (_alice, reply) = sending.await.expect("sender");
    let reply = reply.expect("a send held up by a 1.2 s Redis stall is answered ok");
    assert!(reply.id.is_some(), "the reply carries the message id");

    // Stored once: the warm-up and the stalled message, nothing more.
    assert_eq!(cluster.redis.inbox_len("bob").await, 2);
    let errors = node
        .metric("wsgate_broker_errors_total{op=\"inbox\"}")
        .await;
    assert_eq!(errors, 0.0, "no inbox operation counted as failed");
}

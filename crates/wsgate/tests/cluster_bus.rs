//! The bus reader under churn (issue 11 item 5), two real nodes on a real
//! Redis: room subscriptions coming and going on one node never hold up
//! the traffic that node reads from the bus. Room messages published on the
//! other node all arrive, in order, while one-member rooms are joined and
//! left as fast as the churners can; and `wsgate_bus_lag_seconds` counts
//! what was read.

#[macro_use]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::json;
use support::*;
use tokio::time::Instant;
use wsgate_client::ServerFrame;
use wsgate_protocol::Kind;

/// Room messages published by the other node.
const MESSAGES: u64 = 1000;
/// Connections on the reading node joining and leaving their own rooms.
const CHURNERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_churn_on_one_node_does_not_hold_up_room_messages_from_another() {
    let cluster = Cluster::start(2).await;
    let [n1, n2] = &cluster.nodes[..] else {
        unreachable!()
    };
    let room = unique("main");
    let mut reader = n1.connect("reader").await;
    reader.request(join(&room)).await.expect("reader joins");
    let mut writer = n2.connect("writer").await;
    writer.request(join(&room)).await.expect("writer joins");

    // Churn on n1: each join subscribes a fresh channel, each leave
    // unsubscribes it (after the debounce), all the time.
    let stop = Arc::new(AtomicBool::new(false));
    let churned = Arc::new(AtomicU64::new(0));
    let mut churners = Vec::new();
    for i in 0..CHURNERS {
        let mut c = n1.connect(&format!("churner-{i}")).await;
        let (stop, churned) = (stop.clone(), churned.clone());
        churners.push(tokio::spawn(async move {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = format!("churn-{i}-{k}");
                c.request(join(&r)).await.expect("churner joins");
                c.request(json!({"type": "leave", "room": r}))
                    .await
                    .expect("churner leaves");
                churned.fetch_add(1, Ordering::Relaxed);
                k += 1;
            }
        }));
    }
    eventually("the churn has started", T, || async {
        churned.load(Ordering::Relaxed) >= CHURNERS as u64
    })
    .await;

    // The writer publishes; the reader gets every message, in order. The
    // bound per message is the generous T: a reader stalled behind the
    // churn (the old code) falls further behind with every message.
    let started = Instant::now();
    let publisher = tokio::spawn(async move {
        for i in 1..=MESSAGES {
            writer
                .request(publish(&room, json!({ "n": i })))
                .await
                .expect("publish");
        }
        writer
    });
    let mut delays = Vec::with_capacity(MESSAGES as usize);
    for want in 1..=MESSAGES {
        let frame = expect_frame(
            &mut reader,
            &format!("room message {want}"),
            |f| matches!(f, ServerFrame::Message(m) if m.kind == Kind::Room),
        )
        .await;
        let ServerFrame::Message(m) = frame else {
            unreachable!()
        };
        assert_eq!(m.content["n"], want, "room messages arrive in order");
        delays.push(wsgate::clock::now_ms().saturating_sub(m.time));
    }
    let elapsed = started.elapsed();
    publisher.await.expect("publisher");
    stop.store(true, Ordering::Relaxed);
    for c in churners {
        c.await.expect("churner");
    }
    let churn = churned.load(Ordering::Relaxed);

    delays.sort_unstable();
    report(&format!(
        "bus churn: {MESSAGES} room messages n2->n1 in {:.2}s while {churn} join+leave \
         ({:.0}/s) churned on n1; delay p50 {} ms, max {} ms",
        elapsed.as_secs_f64(),
        churn as f64 / elapsed.as_secs_f64(),
        delays[delays.len() / 2],
        delays[delays.len() - 1],
    ));

    // The lag histogram counted what n1 read from the bus.
    let lag = n1.metric_required("wsgate_bus_lag_seconds_count").await;
    assert!(
        lag >= MESSAGES as f64,
        "wsgate_bus_lag_seconds counted {lag} envelopes, fewer than the {MESSAGES} room messages"
    );
}

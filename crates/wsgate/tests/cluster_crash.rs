//! No loss under a crash (contract 5.1 and 5.2): a sender on n1 streams direct
//! messages to a recipient on n2; midway n2 is killed with SIGKILL and the
//! recipient reconnects to n3. Every message whose sender got `ok` arrives
//! (duplicates allowed, dropped by id) and first arrivals keep the send order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use wsgate_client::{Client, ClientError, Options, ServerFrame};
use wsgate_protocol::Kind;

const MESSAGES: u64 = 1200;
/// Messages sent while the recipient is away.
const GAP: u64 = 100;

/// What the recipient saw: every arrival (id, seq, replay), in order.
#[derive(Default)]
struct Seen {
    arrivals: Vec<(String, u64, bool)>,
    ids: HashSet<String>,
}

/// Reads and acks direct messages until `stop`; on a dead connection,
/// waits until the sender has sent `GAP` more messages (so they wait in the
/// inbox), then reconnects to `fallback`. Returns how often it reconnected.
async fn recipient(
    mut client: Client,
    fallback: String,
    seen: Arc<Mutex<Seen>>,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> u32 {
    let mut reconnects = 0;
    while !stop.load(Ordering::Acquire) {
        match client.next_frame(Duration::from_millis(200)).await {
            Ok(ServerFrame::Message(m)) if m.kind == Kind::Direct => {
                let seq = m.content["seq"].as_u64().expect("seq in content");
                {
                    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                    seen.ids.insert(m.id.clone());
                    seen.arrivals.push((m.id.clone(), seq, m.replay));
                }
                // A failed ack shows up as a dead connection on the next read.
                let _ = client.ack(&m.id).await;
            }
            Ok(_) | Err(ClientError::Timeout) => {}
            Err(e) => {
                assert!(is_closed(&e), "recipient read: {e}");
                let from = sent.load(Ordering::Acquire);
                let wait = Instant::now() + T;
                while sent.load(Ordering::Acquire) < (from + GAP).min(MESSAGES)
                    && Instant::now() < wait
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let deadline = Instant::now() + Duration::from_secs(10);
                client = loop {
                    match Client::connect(Options::new(fallback.clone())).await {
                        Ok(c) => break c,
                        Err(e) => {
                            assert!(Instant::now() < deadline, "reconnect to n3: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                };
                assert_eq!(client.welcome().node, "n3");
                reconnects += 1;
            }
        }
    }
    reconnects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acked_direct_message_is_lost_when_the_recipients_node_is_killed() {
    // One sender streams to one recipient whose acks lag behind while its
    // node dies: the per-sender inbox share (100 by default) would refuse
    // sends as inbox_full, which is not what this test is about.
    let mut cluster = Cluster::start_on(
        RedisServer::start().await,
        3,
        &["--inbox-max-per-sender", "100000"],
    )
    .await;
    let mut sender = cluster.nodes[0].connect("sender").await;
    let first = cluster.nodes[1].connect("rcpt").await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(recipient(
        first,
        cluster.nodes[2].user_url("rcpt"),
        seen.clone(),
        sent.clone(),
        stop.clone(),
    ));

    let count = |seen: &Arc<Mutex<Seen>>| seen.lock().unwrap_or_else(|e| e.into_inner()).ids.len();
    let mut ok: Vec<(u64, String)> = Vec::new();
    let mut refused = 0u64;
    let mut codes: Vec<String> = Vec::new();
    for seq in 0..MESSAGES {
        if seq == MESSAGES / 2 {
            // The recipient is receiving live from n2 when n2 dies.
            let seen = seen.clone();
            eventually("live messages on n2", T, || {
                let n = count(&seen);
                async move { (n > 0).then_some(()) }
            })
            .await;
            cluster.nodes[1].kill9();
        }
        match sender
            .request(json!({"type": "send", "to": "rcpt", "content": {"seq": seq}}))
            .await
        {
            Ok(reply) => ok.push((seq, reply.id.expect("id"))),
            Err(ClientError::Server { code, .. }) => {
                refused += 1;
                let code = format!("{code:?}");
                if !codes.contains(&code) {
                    codes.push(code);
                }
            }
            Err(e) => panic!("the sender's node is alive; send {seq}: {e}"),
        }
        sent.store(seq + 1, Ordering::Release);
    }

    let wanted: HashSet<String> = ok.iter().map(|(_, id)| id.clone()).collect();
    let missing = {
        let seen = seen.clone();
        let wanted = wanted.clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let missing = {
                let s = seen.lock().unwrap_or_else(|e| e.into_inner());
                wanted.difference(&s.ids).count()
            };
            if missing == 0 || Instant::now() >= deadline {
                break missing;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    stop.store(true, Ordering::Release);
    let reconnects = task.await.expect("recipient task");

    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    let mut first_seqs = Vec::new();
    let mut firsts = HashSet::new();
    let mut replayed = 0;
    for (id, seq, replay) in &seen.arrivals {
        if firsts.insert(id.clone()) {
            first_seqs.push(*seq);
            if *replay {
                replayed += 1;
            }
        }
    }
    let line = format!(
        "crash: sent {MESSAGES}, ok'd {}, refused {refused} ({codes:?}), received unique {} \
         (first arrivals by replay {replayed}), duplicates {}, missing {missing}, recipient reconnects {reconnects}",
        ok.len(),
        seen.ids.len(),
        seen.arrivals.len() - seen.ids.len(),
    );
    report(&line);
    assert_eq!(missing, 0, "ok'd direct messages lost: {line}");
    assert!(reconnects >= 1, "the recipient never lost n2");
    assert!(
        ok.len() as u64 >= MESSAGES * 9 / 10,
        "most sends must be accepted while n1 and Redis are up: {line}"
    );
    let out_of_order: Vec<(u64, u64)> = first_seqs
        .windows(2)
        .filter(|w| w[1] <= w[0])
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(
        out_of_order.is_empty(),
        "first arrivals out of send order at {out_of_order:?}"
    );
}

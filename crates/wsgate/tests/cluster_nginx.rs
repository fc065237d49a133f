//! Through a real load balancer (contract 5.2, 6 and 7): nginx spreads
//! clients over three nodes; the nodes are drained one after another
//! (SIGTERM, exit 0, restart with the same id) while clients exchange direct
//! messages and reconnect through nginx on close 1012. No ok'd direct message
//! is lost (what a drained connection did not ack is replayed from the inbox),
//! and each recipient gets its sender's messages first in send order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;
use wsgate_client::{Client, ClientError, Options, ServerFrame};
use wsgate_protocol::Kind;

const CLIENTS: usize = 6;

/// What every client did, by user.
#[derive(Default)]
struct Ledger {
    /// Ids the sender got `ok` for, by recipient.
    okd: Mutex<HashMap<String, HashSet<String>>>,
    /// Ids received, by recipient.
    got: Mutex<HashMap<String, HashSet<String>>>,
    /// Sequence numbers of first arrivals, by recipient (one sender each).
    firsts: Mutex<HashMap<String, Vec<u64>>>,
    sent_ok: AtomicU64,
    refused: AtomicU64,
    closes_1012: AtomicU64,
    reconnects: AtomicU64,
}

impl Ledger {
    fn okd(&self, to: &str, id: String) {
        let mut okd = self.okd.lock().unwrap_or_else(|e| e.into_inner());
        okd.entry(to.to_owned()).or_default().insert(id);
        self.sent_ok.fetch_add(1, Ordering::AcqRel);
    }

    fn got(&self, user: &str, id: String, seq: u64) {
        let mut got = self.got.lock().unwrap_or_else(|e| e.into_inner());
        if got.entry(user.to_owned()).or_default().insert(id) {
            let mut firsts = self.firsts.lock().unwrap_or_else(|e| e.into_inner());
            firsts.entry(user.to_owned()).or_default().push(seq);
        }
    }

    /// First arrivals out of send order, by recipient.
    fn out_of_order(&self) -> Vec<(String, u64, u64)> {
        let firsts = self.firsts.lock().unwrap_or_else(|e| e.into_inner());
        firsts
            .iter()
            .flat_map(|(user, seqs)| {
                seqs.windows(2)
                    .filter(|w| w[1] <= w[0])
                    .map(|w| (user.clone(), w[0], w[1]))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Ok'd messages to `user` not received yet.
    fn missing(&self, user: &str) -> usize {
        let okd = self.okd.lock().unwrap_or_else(|e| e.into_inner());
        let got = self.got.lock().unwrap_or_else(|e| e.into_inner());
        let empty = HashSet::new();
        let got = got.get(user).unwrap_or(&empty);
        okd.get(user).map_or(0, |ids| ids.difference(got).count())
    }
}

/// Connects through nginx, retrying while nodes restart.
async fn connect(url: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match Client::connect(Options::new(url)).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "connect through nginx: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Handles a dead connection: counts its close code, reconnects.
async fn reconnect(client: &mut Client, url: &str, ledger: &Ledger) {
    if client.close_info().and_then(|c| c.code) == Some(1012) {
        ledger.closes_1012.fetch_add(1, Ordering::AcqRel);
    }
    *client = connect(url).await;
    ledger.reconnects.fetch_add(1, Ordering::AcqRel);
}

/// Reads what is queued (acking direct messages) until `quiet` passes with
/// nothing; returns false when the connection died.
async fn read_some(client: &mut Client, user: &str, ledger: &Ledger, quiet: Duration) -> bool {
    loop {
        match client.next_frame(quiet).await {
            Ok(ServerFrame::Message(m)) if m.kind == Kind::Direct => {
                let seq = m.content["seq"].as_u64().unwrap_or(u64::MAX);
                ledger.got(user, m.id.clone(), seq);
                let _ = client.ack(&m.id).await;
            }
            Ok(_) => {}
            Err(ClientError::Timeout) => return true,
            Err(e) => {
                assert!(is_closed(&e), "{user} read: {e}");
                return false;
            }
        }
    }
}

/// One user: sends to `peer` and reads, reconnecting through nginx.
async fn chatter(
    user: String,
    peer: String,
    mut client: Client,
    url: String,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) -> Client {
    let mut seq = 0u64;
    while !stop.load(Ordering::Acquire) {
        seq += 1;
        let alive = match client
            .request(json!({"type": "send", "to": peer, "content": {"seq": seq}}))
            .await
        {
            Ok(reply) => {
                ledger.okd(&peer, reply.id.expect("id"));
                true
            }
            Err(ClientError::Server { .. }) => {
                ledger.refused.fetch_add(1, Ordering::AcqRel);
                true
            }
            Err(e) => {
                assert!(is_closed(&e), "{user} send: {e}");
                false
            }
        };
        let alive =
            alive && read_some(&mut client, &user, &ledger, Duration::from_millis(10)).await;
        if !alive {
            reconnect(&mut client, &url, &ledger).await;
        }
    }
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_drain_behind_nginx_loses_no_acked_direct_message() {
    let mut cluster = Cluster::start(3).await;
    let upstreams: Vec<_> = cluster.nodes.iter().map(|n| n.public).collect();
    let nginx = Nginx::start(&upstreams).await;

    let users: Vec<String> = (0..CLIENTS).map(|i| format!("u{i}")).collect();
    let mut clients = Vec::new();
    let mut landed = HashSet::new();
    for user in &users {
        let client = connect(&nginx.user_url(user)).await;
        landed.insert(client.welcome().node.clone());
        clients.push(client);
    }
    assert_eq!(
        landed,
        HashSet::from(["n1".to_owned(), "n2".to_owned(), "n3".to_owned()]),
        "nginx spreads clients over the three nodes"
    );

    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(chatter(
            users[i].clone(),
            users[(i + 1) % CLIENTS].clone(),
            client,
            nginx.user_url(&users[i]),
            ledger.clone(),
            stop.clone(),
        )));
    }
    let sent_ok = || ledger.sent_ok.load(Ordering::Acquire);
    poll!("traffic flows", T, { (sent_ok() >= 60).then_some(()) });

    let started = Instant::now();
    for node in cluster.nodes.iter_mut() {
        node.terminate();
        let status = node.wait_exit(Duration::from_secs(15)).await;
        assert!(
            status.success(),
            "{} exits 0 after the drain: {status}",
            node.id
        );
        node.restart();
        node.wait_ready().await;
        let before = sent_ok();
        poll!(
            "traffic flows after the restart",
            Duration::from_secs(10),
            { (sent_ok() >= before + 60).then_some(()) }
        );
    }
    let rolling = started.elapsed();
    stop.store(true, Ordering::Release);
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.expect("client task"));
    }

    // Each user reconnects once more: unacked messages come from the inbox.
    let mut missing = 0;
    for (user, mut client) in users.iter().zip(clients) {
        let _ = client.close(1000).await;
        let url = nginx.user_url(user);
        let mut client = connect(&url).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while ledger.missing(user) > 0 && Instant::now() < deadline {
            if !read_some(&mut client, user, &ledger, Duration::from_millis(100)).await {
                reconnect(&mut client, &url, &ledger).await;
            }
        }
        missing += ledger.missing(user);
    }

    let line = format!(
        "nginx rolling drain: {:.2}s for 3 nodes; direct ok'd {}, refused {}, missing {missing}; \
         closes 1012 {}, reconnects {}",
        rolling.as_secs_f64(),
        sent_ok(),
        ledger.refused.load(Ordering::Acquire),
        ledger.closes_1012.load(Ordering::Acquire),
        ledger.reconnects.load(Ordering::Acquire),
    );
    report(&line);
    assert_eq!(missing, 0, "ok'd direct messages lost: {line}");
    let out_of_order = ledger.out_of_order();
    assert!(
        out_of_order.is_empty(),
        "first arrivals out of send order (recipient, before, after): {out_of_order:?}"
    );
    assert!(
        ledger.closes_1012.load(Ordering::Acquire) >= CLIENTS as u64,
        "every client was drained at least once with 1012: {line}"
    );
}

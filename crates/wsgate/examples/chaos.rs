//! The client and checker of `scripts/chaos.sh`: pairs of WebSocket clients,
//! a sender streaming direct messages to its recipient, spread over the
//! cluster's nodes, reconnecting whenever a node dies, drains or Redis
//! restarts. At the end it accounts for every message whose sender got `ok`:
//! each must reach its recipient (at least once), and per sender in order.
//!
//! ```text
//! cargo run --release -p wsgate --example chaos -- \
//!     --node ws://127.0.0.1:8080/ws --node ws://127.0.0.1:8081/ws ... \
//!     --secret S --pairs 30 --rate 10 --duration 4m --settle 90s
//! ```
//!
//! A sender sends `{"type":"send","to":R,"content":{"s":i,"q":seq}}` and only
//! moves to `seq + 1` after the `ok` reply; an error, a timeout or a close
//! makes it send the same `seq` again (so duplicates are expected, losses are
//! not). A recipient acks every direct message by id. Exit status 0 when no
//! ok'd message is missing and none arrived out of order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test driver: a bad argument or a failed step stops it with its message"
)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wsgate_client::{Client, ClientError, Kind, Options};

struct Args {
    nodes: Vec<String>,
    secret: String,
    pairs: usize,
    rate: u64,
    duration: Duration,
    settle: Duration,
}

fn parse_args() -> Args {
    let mut a = Args {
        nodes: Vec::new(),
        secret: String::new(),
        pairs: 30,
        rate: 10,
        duration: Duration::from_secs(240),
        settle: Duration::from_secs(90),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let dur = |v: &str| wsgate::config::parse_duration(v).expect("a duration");
    let mut i = 0;
    while i + 1 < argv.len() {
        let v = argv[i + 1].clone();
        match argv[i].as_str() {
            "--node" => a.nodes.push(v),
            "--secret" => a.secret = v,
            "--pairs" => a.pairs = v.parse().expect("--pairs"),
            "--rate" => a.rate = v.parse().expect("--rate"),
            "--duration" => a.duration = dur(&v),
            "--settle" => a.settle = dur(&v),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(
        !a.nodes.is_empty() && !a.secret.is_empty(),
        "--node and --secret are required"
    );
    a
}

fn token(secret: &str, user: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + 86_400;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": user, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token")
}

/// What the run saw, shared by all tasks.
#[derive(Default)]
struct Ledger {
    /// Per pair: the seqs whose sender got `ok`.
    oked: Vec<Mutex<Vec<u64>>>,
    /// Per pair: seqs in the order the recipient first saw them, and all
    /// arrivals (for duplicates).
    first_seen: Vec<Mutex<Vec<u64>>>,
    arrivals: Vec<Mutex<u64>>,
    /// Reconnect times (disconnect noticed → welcome), ms.
    reconnects_ms: Mutex<Vec<u64>>,
    send_errors: Mutex<Vec<String>>,
}

/// Connects to the first node that takes us (its `welcome` read: the
/// session is registered), starting at `prefer`, with capped backoff.
async fn connect(args: &Args, user: &str, prefer: usize) -> Client {
    let mut backoff = Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        let url = &args.nodes[(prefer + attempt) % args.nodes.len()];
        attempt += 1;
        let opts = Options::new(url.as_str())
            .token(token(&args.secret, user))
            .timeout(Duration::from_secs(3));
        match Client::connect(opts).await {
            Ok(client) => return client,
            Err(ClientError::BadRequest(e)) => panic!("bad node URL {url}: {e}"),
            Err(_) => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// How one send went.
enum Outcome {
    /// `ok` reply: the message is stored.
    Ok,
    /// An error reply (e.g. `unavailable` while Redis restarts): retry later.
    Refused(String, Duration),
    /// No reply: the socket is gone or hung.
    Lost,
}

/// Sends one frame and waits (the client's 3 s timeout) for its reply.
async fn send_one(client: &mut Client, frame: Value) -> Outcome {
    match client.request(frame).await {
        Ok(_) => Outcome::Ok,
        Err(ClientError::Server {
            code,
            retry_after_ms,
            ..
        }) => Outcome::Refused(
            code.to_string(),
            Duration::from_millis(retry_after_ms.unwrap_or(200)),
        ),
        Err(_) => Outcome::Lost,
    }
}

async fn sender(args: Arc<Args>, i: usize, ledger: Arc<Ledger>, stop: Arc<AtomicBool>) {
    let user = format!("chaos-s{i}");
    let to = format!("chaos-r{i}");
    let prefer = (i + 1) % args.nodes.len();
    let period = Duration::from_millis(1000 / args.rate.max(1));
    let mut seq = 0u64;
    let mut client = connect(&args, &user, prefer).await;
    let mut next = tokio::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep_until(next).await;
        next += period;
        let frame = json!({"type": "send", "to": to, "content": {"s": i, "q": seq}, "ref": seq});
        match send_one(&mut client, frame).await {
            Outcome::Ok => {
                if let Ok(mut ok) = ledger.oked[i].lock() {
                    ok.push(seq);
                }
                seq += 1;
            }
            Outcome::Refused(code, wait) => {
                if let Ok(mut e) = ledger.send_errors.lock() {
                    e.push(code);
                }
                next = tokio::time::Instant::now() + wait;
            }
            Outcome::Lost => {
                // Reconnect and send the same `seq` again.
                let lost = Instant::now();
                client = connect(&args, &user, prefer).await;
                if let Ok(mut r) = ledger.reconnects_ms.lock() {
                    r.push(lost.elapsed().as_millis() as u64);
                }
                next = tokio::time::Instant::now();
            }
        }
    }
}

async fn recipient(args: Arc<Args>, i: usize, ledger: Arc<Ledger>, done: Arc<AtomicBool>) {
    let user = format!("chaos-r{i}");
    let prefer = i % args.nodes.len();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut client = connect(&args, &user, prefer).await;
    while !done.load(Ordering::Relaxed) {
        let m = match client.next_message(Duration::from_millis(500)).await {
            Ok(m) => m,
            Err(ClientError::Timeout) => continue,
            Err(_) => {
                let lost = Instant::now();
                client = connect(&args, &user, prefer).await;
                if let Ok(mut r) = ledger.reconnects_ms.lock() {
                    r.push(lost.elapsed().as_millis() as u64);
                }
                continue;
            }
        };
        if m.kind != Kind::Direct {
            continue;
        }
        if let Some(q) = m.content["q"].as_u64() {
            if let Ok(mut n) = ledger.arrivals[i].lock() {
                *n += 1;
            }
            if seen.insert(q) {
                if let Ok(mut f) = ledger.first_seen[i].lock() {
                    f.push(q);
                }
            }
        }
        // A failed ack shows up as a disconnect on the next read, and the
        // unacked message is replayed after the reconnect: nothing to do here.
        let _ = client.ack(&m.id).await;
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Per pair: (ok'd, missing, out-of-order first arrivals).
fn account(ledger: &Ledger, i: usize) -> (usize, usize, usize) {
    let oked = ledger.oked[i].lock().map(|o| o.clone()).unwrap_or_default();
    let first = ledger.first_seen[i]
        .lock()
        .map(|f| f.clone())
        .unwrap_or_default();
    let got: HashSet<u64> = first.iter().copied().collect();
    let missing = oked.iter().filter(|q| !got.contains(q)).count();
    let disorder = first.windows(2).filter(|w| w[1] <= w[0]).count();
    (oked.len(), missing, disorder)
}

#[tokio::main]
async fn main() {
    let args = Arc::new(parse_args());
    let ledger = Arc::new(Ledger {
        oked: (0..args.pairs).map(|_| Mutex::default()).collect(),
        first_seen: (0..args.pairs).map(|_| Mutex::default()).collect(),
        arrivals: (0..args.pairs).map(|_| Mutex::default()).collect(),
        ..Ledger::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let mut recipients = Vec::new();
    for i in 0..args.pairs {
        recipients.push(tokio::spawn(recipient(
            args.clone(),
            i,
            ledger.clone(),
            done.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut senders = Vec::new();
    for i in 0..args.pairs {
        senders.push(tokio::spawn(sender(
            args.clone(),
            i,
            ledger.clone(),
            stop.clone(),
        )));
    }
    let started = Instant::now();
    eprintln!(
        "chaos: {} pairs over {} nodes for {:?}",
        args.pairs,
        args.nodes.len(),
        args.duration
    );
    while started.elapsed() < args.duration {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let oked: usize = (0..args.pairs).map(|i| account(&ledger, i).0).sum();
        eprintln!("chaos: t={:>4}s ok'd {oked}", started.elapsed().as_secs());
    }
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
    }
    // Settle: recipients reconnect and get their inbox replays.
    let settle_start = Instant::now();
    loop {
        let missing: usize = (0..args.pairs).map(|i| account(&ledger, i).1).sum();
        if missing == 0 || settle_start.elapsed() >= args.settle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settle = settle_start.elapsed();
    done.store(true, Ordering::Relaxed);
    for r in recipients {
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }

    let (mut oked, mut missing, mut disorder, mut arrivals, mut unique) = (0, 0, 0, 0u64, 0);
    for i in 0..args.pairs {
        let (o, m, d) = account(&ledger, i);
        oked += o;
        missing += m;
        disorder += d;
        arrivals += ledger.arrivals[i].lock().map(|n| *n).unwrap_or(0);
        unique += ledger.first_seen[i].lock().map(|f| f.len()).unwrap_or(0);
        if m > 0 || d > 0 {
            eprintln!("chaos: pair {i}: {m} missing, {d} out of order");
        }
    }
    let mut rec = ledger
        .reconnects_ms
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    rec.sort_unstable();
    let mut errors = ledger
        .send_errors
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    errors.sort();
    let mut error_counts: Vec<(String, usize)> = Vec::new();
    for e in errors {
        match error_counts.last_mut() {
            Some((c, n)) if *c == e => *n += 1,
            _ => error_counts.push((e, 1)),
        }
    }
    println!(
        "chaos: ok'd {oked}, delivered {unique} unique ({arrivals} arrivals, {} duplicates), \
         missing {missing}, out of order {disorder}, settle {:.1}s",
        arrivals.saturating_sub(unique as u64),
        settle.as_secs_f64()
    );
    println!(
        "chaos: reconnects {}, p50 {} ms, p99 {} ms, max {} ms; sender errors {:?}",
        rec.len(),
        percentile(&rec, 0.5),
        percentile(&rec, 0.99),
        rec.last().copied().unwrap_or(0),
        error_counts
    );
    std::process::exit(if missing == 0 && disorder == 0 { 0 } else { 1 });
}

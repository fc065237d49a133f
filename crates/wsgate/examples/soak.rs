//! Soak load for `scripts/soak.sh`: thousands of WebSocket connections with
//! steady room and direct traffic for a long time, sampling the server every
//! 10 s into a CSV (RSS, threads, open fds, `wsgate_connections`, delivery
//! latency p50/p99 as the clients see it).
//!
//! ```text
//! cargo run --release -p wsgate --example soak -- \
//!     --url ws://127.0.0.1:8080/ws --admin 127.0.0.1:9090 --pid 1234 \
//!     --secret S --conns 3000 --rooms 100 --room-rate 50 --direct-rate 50 \
//!     --duration 30m --out soak.csv
//! ```
//!
//! Every client is a user `soak-N` in room `soak-room-(N % rooms)`. Once a
//! second, `room-rate` clients publish to their room and `direct-rate`
//! clients send a direct message to a random user; recipients ack direct
//! messages. Content carries the send time, so latency is end to end.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test driver: a bad argument or a failed step stops it with its message"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use wsgate_client::{Background, ClientError, Event, Options};

/// Frames queued each way per connection (a full outgoing queue drops the
/// order and counts an error; the reader waits for room).
const CLIENT_QUEUE: usize = 64;

struct Args {
    url: String,
    admin: Vec<SocketAddr>,
    pids: Vec<u32>,
    secret: String,
    conns: usize,
    rooms: usize,
    room_rate: usize,
    direct_rate: usize,
    duration: Duration,
    out: String,
}

fn parse_args() -> Args {
    let mut a = Args {
        url: "ws://127.0.0.1:8080/ws".into(),
        admin: Vec::new(),
        pids: Vec::new(),
        secret: String::new(),
        conns: 3000,
        rooms: 100,
        room_rate: 50,
        direct_rate: 50,
        duration: Duration::from_secs(1800),
        out: "soak.csv".into(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < argv.len() {
        let v = argv[i + 1].clone();
        match argv[i].as_str() {
            "--url" => a.url = v,
            "--admin" => a.admin.push(v.parse().expect("--admin host:port")),
            "--pid" => a.pids.push(v.parse().expect("--pid")),
            "--secret" => a.secret = v,
            "--conns" => a.conns = v.parse().expect("--conns"),
            "--rooms" => a.rooms = v.parse().expect("--rooms"),
            "--room-rate" => a.room_rate = v.parse().expect("--room-rate"),
            "--direct-rate" => a.direct_rate = v.parse().expect("--direct-rate"),
            "--duration" => a.duration = wsgate::config::parse_duration(&v).expect("--duration"),
            "--out" => a.out = v,
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(!a.secret.is_empty(), "--secret is required");
    a
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn token(secret: &str, user: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": user, "exp": now_ms() / 1000 + 86_400}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token")
}

#[derive(Default)]
struct Stats {
    latencies_ms: Mutex<Vec<u32>>,
    received: AtomicU64,
    sent: AtomicU64,
    errors: AtomicU64,
    reconnects: AtomicU64,
}

/// One client: connects (reconnecting on close), joins its room, acks direct
/// messages, records latencies, and sends what the scheduler asks.
async fn client(args: Arc<Args>, n: usize, stats: Arc<Stats>, mut orders: mpsc::Receiver<Value>) {
    let user = format!("soak-{n}");
    let room = format!("soak-room-{}", n % args.rooms);
    let mut first = true;
    loop {
        if !first {
            stats.reconnects.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        first = false;
        let opts = Options::new(args.url.as_str()).token(token(&args.secret, &user));
        let mut ws = match Background::connect(opts, CLIENT_QUEUE).await {
            Ok(ws) => ws,
            Err(ClientError::BadRequest(_)) => return,
            Err(_) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        if ws
            .send(&json!({"type": "join", "room": room, "ref": "j"}))
            .is_err()
        {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        loop {
            tokio::select! {
                order = orders.recv() => {
                    let Some(order) = order else { return };
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    if ws.send(&order).is_err() {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                event = ws.recv() => {
                    let v = match event {
                        Some(Event::Frame(v)) => v,
                        Some(Event::Closed(_)) | None => break,
                    };
                    match v["type"].as_str() {
                        Some("message") => {
                            stats.received.fetch_add(1, Ordering::Relaxed);
                            if let Some(t) = v["content"]["t"].as_u64() {
                                let ms = now_ms().saturating_sub(t).min(u64::from(u32::MAX)) as u32;
                                if let Ok(mut l) = stats.latencies_ms.lock() {
                                    l.push(ms);
                                }
                            }
                            if v["kind"] == "direct"
                                && ws.send(&json!({"type": "ack", "id": v["id"]})).is_err()
                            {
                                stats.errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Some("error") => {
                            stats.errors.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// A raw `GET /metrics` and one series' value.
async fn scrape(admin: SocketAddr, series: &str) -> Option<f64> {
    let mut s = TcpStream::connect(admin).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

fn proc_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)])
}

#[tokio::main]
async fn main() {
    let args = Arc::new(parse_args());
    let stats = Arc::new(Stats::default());
    let mut orders = Vec::with_capacity(args.conns);
    for n in 0..args.conns {
        let (tx, rx) = mpsc::channel(16);
        orders.push(tx);
        tokio::spawn(client(args.clone(), n, stats.clone(), rx));
        if n % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!("soak: {} clients started", args.conns);

    let mut out = String::from(
        "elapsed_s,node,rss_kb,threads,fds,connections,p50_ms,p99_ms,max_ms,received,sent,errors,reconnects\n",
    );
    let start = Instant::now();
    let mut sample = tokio::time::interval(Duration::from_secs(10));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last: HashMap<&str, u64> = HashMap::new();
    let mut seq: u64 = 0;
    while start.elapsed() < args.duration {
        tokio::select! {
            _ = tick.tick() => {
                // A tenth of the per-second rates, every 100 ms.
                let per_tick = |rate: usize| rate / 10 + usize::from(seq % 10 < (rate % 10) as u64);
                for _ in 0..per_tick(args.room_rate) {
                    let n = rand::random_range(0..args.conns);
                    let room = format!("soak-room-{}", n % args.rooms);
                    let _ = orders[n].try_send(json!({"type": "publish", "room": room, "content": {"t": now_ms()}}));
                }
                for _ in 0..per_tick(args.direct_rate) {
                    let n = rand::random_range(0..args.conns);
                    let to = format!("soak-{}", rand::random_range(0..args.conns));
                    let _ = orders[n].try_send(json!({"type": "send", "to": to, "content": {"t": now_ms()}}));
                }
                seq += 1;
            }
            _ = sample.tick() => {
                let mut lat = std::mem::take(&mut *stats.latencies_ms.lock().expect("lock"));
                lat.sort_unstable();
                let (p50, p99, max) = (percentile(&lat, 0.5), percentile(&lat, 0.99), lat.last().copied().unwrap_or(0));
                let counters = [
                    ("received", stats.received.load(Ordering::Relaxed)),
                    ("sent", stats.sent.load(Ordering::Relaxed)),
                    ("errors", stats.errors.load(Ordering::Relaxed)),
                    ("reconnects", stats.reconnects.load(Ordering::Relaxed)),
                ];
                let mut deltas = Vec::new();
                for (k, v) in counters {
                    deltas.push(v - last.get(k).copied().unwrap_or(0));
                    last.insert(k, v);
                }
                for (i, pid) in args.pids.iter().enumerate() {
                    let conns = match args.admin.get(i) {
                        Some(a) => scrape(*a, "wsgate_connections").await.unwrap_or(-1.0),
                        None => -1.0,
                    };
                    let row = format!(
                        "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                        start.elapsed().as_secs(), i, proc_field(*pid, "VmRSS"), proc_field(*pid, "Threads"),
                        open_fds(*pid), conns, p50, p99, max, deltas[0], deltas[1], deltas[2], deltas[3],
                    );
                    eprint!("{row}");
                    out.push_str(&row);
                }
                if let Err(e) = std::fs::write(&args.out, &out) {
                    eprintln!("soak: cannot write {}: {e}", args.out);
                }
            }
        }
    }
    eprintln!("soak: done after {:?}", start.elapsed());
    std::process::exit(0);
}

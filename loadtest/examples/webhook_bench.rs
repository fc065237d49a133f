//! Webhook delivery benchmark (issue #13): latency from a transition to the
//! receiver's arrival, and the events per second one node delivers.
//!
//! It starts a real HTTP receiver (hyper, answering 204 at once), starts a
//! wsgate binary pointed at it (standalone, or cluster with `--redis-url`),
//! then runs two phases with real WebSocket clients (`wsgate-client`):
//!
//! 1. **latency**: `--users` fresh users connect one after another and stay
//!    connected; each is one `user.online` transition. Latency per event =
//!    the receiver's clock at arrival − the event's `time` (set when the
//!    transition was decided; Redis `TIME` in cluster mode). Same machine,
//!    same clock; `time` has ms resolution, so figures carry up to 1 ms of
//!    truncation.
//! 2. **throughput**: `--senders` connections (each in a room of its own)
//!    `publish` as fast as their replies come for `--duration`; each
//!    accepted message is one `message.room` event. Reported: accepted/s
//!    (offered), delivered/s at the receiver, the lag after the last
//!    publish, the latency of those events, and the mean batch size.
//! 3. **backlog**: the same publishing while the receiver answers 503, then
//!    it answers 204 again: the rate at which the node drains the backlog
//!    is what its delivery worker sustains, whatever the generator offers.
//!
//! ```text
//! cargo build --release -p wsgate --bin wsgate
//! cargo run --release -p wsgate-loadtest --example webhook_bench -- \
//!     --wsgate target/release/wsgate [--redis-url redis://127.0.0.1:6390] \
//!     [--users 1000] [--senders 16] [--duration 10] [-- EXTRA WSGATE FLAGS]
//! ```
//!
//! The figures go to docs/benchmarks.md ("Webhooks"); nothing here asserts
//! a time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark driver: a failed step ends the run with its message"
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use wsgate_client::{Client, Options};

#[derive(Parser, Debug)]
#[command(about = "wsgate webhook delivery latency and events/s")]
struct Args {
    /// The wsgate binary to run.
    #[arg(long, default_value = "target/release/wsgate")]
    wsgate: String,
    /// Cluster mode on this Redis (not the shared 6379); standalone if unset.
    #[arg(long)]
    redis_url: Option<String>,
    /// Users connecting one after another in the latency phase.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Publishing connections in the throughput phase.
    #[arg(long, default_value_t = 16)]
    senders: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// More wsgate flags (after `--`).
    #[arg(last = true)]
    extra: Vec<String>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What the receiver saw.
struct Seen {
    /// Answer 503 (and keep nothing) while set.
    refuse: bool,
    online: Histogram<u64>,
    messages: Histogram<u64>,
    batches: u64,
    events: u64,
    /// Arrival (µs) of the first and last `message.room` event.
    first_message_us: u64,
    last_message_us: u64,
}

impl Seen {
    fn new() -> Seen {
        Seen {
            refuse: false,
            online: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram"),
            messages: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram"),
            batches: 0,
            events: 0,
            first_message_us: 0,
            last_message_us: 0,
        }
    }

    fn take(&mut self, body: &[u8]) {
        let at = now_us();
        let Ok(batch) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        self.batches += 1;
        for e in batch["events"].as_array().into_iter().flatten() {
            self.events += 1;
            let time_us = e["time"].as_u64().unwrap_or(0) * 1000;
            let latency = at.saturating_sub(time_us).max(1);
            match e["type"].as_str() {
                Some("user.online") => self.online.saturating_record(latency),
                Some("message.room") => {
                    self.messages.saturating_record(latency);
                    if self.first_message_us == 0 {
                        self.first_message_us = at;
                    }
                    self.last_message_us = at;
                }
                _ => {}
            }
        }
    }
}

async fn receiver(seen: Arc<Mutex<Seen>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let mut s = seen.lock().unwrap();
                        let status = if s.refuse { 503 } else { 204 };
                        if !s.refuse {
                            s.take(&body.unwrap_or_default());
                        }
                        drop(s);
                        let answer = Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        Ok::<_, Infallible>(answer)
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service);
                if let Err(e) = conn.await {
                    eprintln!("receiver connection: {e}");
                }
            });
        }
    });
    addr
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn start_wsgate(args: &Args, hook: SocketAddr, public: SocketAddr) -> Child {
    let admin = free_addr();
    let mut cmd = Command::new(&args.wsgate);
    cmd.args(["--listen", &public.to_string()])
        .args(["--admin-listen", &admin.to_string()])
        .arg("--allow-anonymous")
        .args(["--webhook-url", &format!("http://{hook}/hooks")])
        .args(["--webhook-secret", "bench-secret"])
        .args(["--webhook-events", "user.online,message.room"])
        .args(["--rate-limit", "1000000"])
        .args(["--webhook-backoff-max", "200ms"])
        .args(["--webhook-max-attempts", "100000"])
        .args(["--max-connections-per-ip", "1000000"])
        .args(["--log-format", "text"]);
    if let Some(url) = &args.redis_url {
        cmd.args(["--redis-url", url]);
    }
    cmd.args(&args.extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    cmd.spawn().expect("start wsgate")
}

async fn connect(url: &str) -> Client {
    Client::connect(Options::new(url))
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `senders` connections publish to rooms of their own for `secs`;
/// returns how many publishes were accepted.
async fn publish(base: &str, run: u64, senders: usize, secs: u64, phase: &str) -> u64 {
    let stop = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for i in 0..senders {
        let url = format!("{base}?user=wb{run}{phase}{i}");
        let room = format!("bench-{phase}{i}");
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&url).await;
            c.request(json!({"type": "join", "room": room}))
                .await
                .expect("join");
            let mut accepted = 0u64;
            while Instant::now() < stop {
                let frame = json!({"type": "publish", "room": room, "content": {"n": accepted}});
                if c.request(frame).await.is_ok() {
                    accepted += 1;
                }
                // The sender is a member: drop its own copies as they come.
                while c.next_value(Duration::ZERO).await.is_ok() {}
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.expect("sender");
    }
    accepted
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let seen = Arc::new(Mutex::new(Seen::new()));
    let hook = receiver(seen.clone()).await;
    let public = free_addr();
    let mut child = start_wsgate(&args, hook, public);
    let base = format!("ws://{public}/ws");
    let run = now_us() % 1_000_000;

    // Ready when a connection is welcomed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = format!("{base}?user=probe{run}");
        if let Ok(mut c) = Client::connect(Options::new(probe)).await {
            c.close(1000).await.ok();
            break;
        }
        assert!(Instant::now() < deadline, "wsgate did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until("the probe's online", Duration::from_secs(30), || {
        !seen.lock().unwrap().online.is_empty()
    })
    .await;
    seen.lock().unwrap().online.reset();

    // 1. Latency of transitions at a light load.
    let started = Instant::now();
    let mut users = Vec::with_capacity(args.users);
    for i in 0..args.users {
        users.push(connect(&format!("{base}?user=wb{run}u{i}")).await);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let n = args.users as u64;
    wait_until("every user.online", Duration::from_secs(60), || {
        seen.lock().unwrap().online.len() >= n
    })
    .await;
    {
        let s = seen.lock().unwrap();
        println!(
            "transitions: {} user.online at {:.0}/s: latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            s.online.len(),
            n as f64 / connect_secs,
            ms(&s.online, 0.5),
            ms(&s.online, 0.99),
            s.online.max() as f64 / 1000.0,
        );
    }

    // 2. Throughput: message.room events as fast as publishes are accepted.
    let before = {
        let s = seen.lock().unwrap();
        (s.batches, s.events)
    };
    let publish_started = Instant::now();
    let accepted = publish(&base, run, args.senders, args.duration, "a").await;
    let publish_secs = publish_started.elapsed().as_secs_f64();
    let publish_end = now_us();
    wait_until("every message.room", Duration::from_secs(120), || {
        seen.lock().unwrap().messages.len() >= accepted
    })
    .await;
    {
        let s = seen.lock().unwrap();
        let delivered = s.messages.len();
        let span = (s.last_message_us - s.first_message_us) as f64 / 1e6;
        let batches = s.batches - before.0;
        let events = s.events - before.1;
        println!(
            "messages: {accepted} accepted in {publish_secs:.1} s ({:.0}/s offered), \
         {delivered} delivered over {span:.1} s ({:.0}/s), last {:.2} s after the last publish; \
         latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {batches} POSTs, {:.1} events per POST",
            accepted as f64 / publish_secs,
            delivered as f64 / span.max(1e-3),
            s.last_message_us.saturating_sub(publish_end) as f64 / 1e6,
            ms(&s.messages, 0.5),
            ms(&s.messages, 0.99),
            s.messages.max() as f64 / 1000.0,
            events as f64 / batches.max(1) as f64,
        );
    }

    // 3. Backlog: events wait while the receiver refuses, then drain.
    let total_before = seen.lock().unwrap().messages.len();
    seen.lock().unwrap().refuse = true;
    let queued = publish(&base, run, args.senders, args.duration, "b").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let drain_started = now_us();
    seen.lock().unwrap().refuse = false;
    wait_until("the backlog", Duration::from_secs(300), || {
        seen.lock().unwrap().messages.len() >= total_before + queued
    })
    .await;
    let s = seen.lock().unwrap();
    let drain = (s.last_message_us.saturating_sub(drain_started)) as f64 / 1e6;
    println!(
        "backlog: {queued} message.room queued while the receiver answered 503, \
         drained in {drain:.2} s after it answered 204 again: {:.0} events/s delivered",
        queued as f64 / drain.max(1e-3),
    );
    drop(s);
    drop(users);
    child.kill().ok();
    child.wait().ok();
}

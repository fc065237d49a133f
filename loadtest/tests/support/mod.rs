//! Test support: servers the smoke tests run the scenarios against.
//!
//! - the ideal server (in-process, port 0);
//! - a tiny in-process stand-in for wsgate (JSON codec only: `welcome`,
//!   `join`, `publish`, `broadcast`, `send`, `ack`), so the rooms and direct
//!   code paths are exercised even while the real server is being written;
//! - the real `target/debug/wsgate`, when it has been built and starts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]
#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use wsgate_loadtest::cli::{Cli, Command};
use wsgate_loadtest::{RunResult, Scenario};

/// Starts the ideal server on a free port; returns its ws:// URL.
pub async fn ideal_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(wsgate_loadtest::ideal::serve(listener, 4096));
    format!("ws://{addr}/ws")
}

/// Parses a command line into a scenario.
pub fn scenario(args: &[&str]) -> Scenario {
    let cli = Cli::try_parse_from(std::iter::once("wsgate-loadtest").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{e}"));
    match cli.command {
        Command::Idle(a) => Scenario::Idle(a),
        Command::Connect(a) => Scenario::Connect(a),
        Command::Broadcast(a) => Scenario::Broadcast(a),
        Command::Rooms(a) => Scenario::Rooms(a),
        Command::Direct(a) => Scenario::Direct(a),
        other => panic!("not a scenario: {other:?}"),
    }
}

/// Runs a scenario in-process, bounded by a minute.
pub async fn run(args: &[&str]) -> RunResult {
    let sc = scenario(args);
    tokio::time::timeout(Duration::from_secs(60), wsgate_loadtest::run_scenario(sc))
        .await
        .expect("scenario timed out")
        .expect("scenario failed")
}

use clap::Parser as _;

type Outbox = mpsc::Sender<Message>;

#[derive(Default)]
struct MockState {
    next: u64,
    conns: HashMap<u64, (String, Outbox)>,
    rooms: HashMap<String, HashSet<u64>>,
}

/// Starts the wsgate stand-in on a free port; returns its ws:// URL.
pub async fn mock_wsgate() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(Mutex::new(MockState::default()));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(mock_session(state.clone(), tcp));
        }
    });
    format!("ws://{addr}/ws")
}

fn deliver(state: &MockState, to: impl Iterator<Item = u64>, frame: &Value) {
    let msg = Message::text(frame.to_string());
    for id in to {
        if let Some((_, tx)) = state.conns.get(&id) {
            let _ = tx.try_send(msg.clone());
        }
    }
}

#[allow(clippy::result_large_err)] // the callback signature tungstenite asks for
async fn mock_session(state: Arc<Mutex<MockState>>, tcp: tokio::net::TcpStream) {
    let mut user = String::new();
    let callback = |req: &Request, mut resp: Response| {
        let q = req.uri().query().unwrap_or_default();
        user = q.strip_prefix("user=").unwrap_or("anon").to_string();
        if let Some(p) = req.headers().get("Sec-WebSocket-Protocol") {
            resp.headers_mut()
                .insert("Sec-WebSocket-Protocol", p.clone());
        }
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let (tx, mut rx) = mpsc::channel(10_000);
    let me = {
        let mut s = state.lock().unwrap();
        s.next += 1;
        let id = s.next;
        s.conns.insert(id, (user.clone(), tx));
        id
    };
    let welcome = json!({"type": "welcome", "user": user, "session": me.to_string(),
        "node": "mock", "protocol": "wsgate.v1", "ping_interval_ms": 25000,
        "max_message_bytes": 65536});
    if ws.send(Message::text(welcome.to_string())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            m = ws.next() => {
                let Some(Ok(Message::Text(t))) = m else { break };
                let f: Value = serde_json::from_str(&t).unwrap_or_default();
                let reply = handle(&state, me, &user, &f);
                if let Some(r) = reply {
                    if ws.send(Message::text(r.to_string())).await.is_err() { break; }
                }
            }
            out = rx.recv() => {
                let Some(m) = out else { break };
                if ws.send(m).await.is_err() { break; }
            }
        }
    }
    let mut s = state.lock().unwrap();
    s.conns.remove(&me);
    for members in s.rooms.values_mut() {
        members.remove(&me);
    }
}

fn handle(state: &Mutex<MockState>, me: u64, user: &str, f: &Value) -> Option<Value> {
    let mut s = state.lock().unwrap();
    s.next += 1;
    let id = format!("m{}", s.next);
    let r = f["ref"].clone();
    let msg = |kind: &str| {
        json!({"type": "message", "id": id, "kind": kind, "from": user,
               "content": f["content"], "time": 0})
    };
    match f["type"].as_str().unwrap_or_default() {
        "join" => {
            let room = f["room"].as_str().unwrap_or_default().to_string();
            s.rooms.entry(room.clone()).or_default().insert(me);
            Some(json!({"type": "reply", "ref": r, "ok": true, "room": room, "members": []}))
        }
        "publish" => {
            let room = f["room"].as_str().unwrap_or_default();
            let members: Vec<u64> = s.rooms.get(room).into_iter().flatten().copied().collect();
            deliver(&s, members.into_iter(), &msg("room"));
            Some(json!({"type": "reply", "ref": r, "ok": true, "id": id}))
        }
        "broadcast" => {
            let all: Vec<u64> = s.conns.keys().copied().collect();
            deliver(&s, all.into_iter(), &msg("broadcast"));
            Some(json!({"type": "reply", "ref": r, "ok": true, "id": id}))
        }
        "send" => {
            let to = f["to"].as_str().unwrap_or_default();
            let ids: Vec<u64> = s
                .conns
                .iter()
                .filter(|(_, c)| c.0 == to)
                .map(|(i, _)| *i)
                .collect();
            let online = !ids.is_empty();
            deliver(&s, ids.into_iter(), &msg("direct"));
            Some(json!({"type": "reply", "ref": r, "ok": true, "id": id, "online": online}))
        }
        "ack" => None,
        _ => Some(json!({"type": "error", "ref": r, "code": "unknown_type", "message": "?"})),
    }
}

/// A real wsgate server started from `target/debug/wsgate`.
pub struct Wsgate {
    pub child: std::process::Child,
    pub url: String,
}

impl Drop for Wsgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds the public address in a wsgate start-up log line (JSON or text).
fn public_addr(line: &str) -> Option<SocketAddr> {
    if let Ok(v) = serde_json::from_str::<Value>(line) {
        return v["public"].as_str()?.parse().ok();
    }
    let token = line.split_whitespace().find(|t| t.starts_with("public="))?;
    token
        .trim_start_matches("public=")
        .trim_matches('"')
        .parse()
        .ok()
}

/// Starts `target/debug/wsgate` standalone on port 0 (anonymous, generous
/// limits), learns its address from the start-up log, and checks that it
/// answers a WebSocket with `welcome`. None (test skipped) when the binary is
/// missing or does not get that far within 15 s.
pub async fn real_wsgate() -> Option<Wsgate> {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/wsgate");
    if !bin.exists() {
        eprintln!("skipping: {} not built", bin.display());
        return None;
    }
    let mut child = std::process::Command::new(&bin)
        .args(["--allow-anonymous", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0", "--log-format", "json"])
        .args([
            "--rate-limit",
            "100000",
            "--max-connections-per-ip",
            "100000",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let stderr = child.stderr.take()?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    // Reads the log to its end so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(addr) = public_addr(&line) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(addr);
                }
            }
        }
    });
    let mut server = Wsgate {
        child,
        url: String::new(),
    };
    let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(15)))
        .await
        .ok()?;
    let Ok(addr) = addr else {
        eprintln!("skipping: wsgate logged no public address");
        return None;
    };
    server.url = format!("ws://{addr}/ws");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = server.child.try_wait() {
            eprintln!("skipping: wsgate exited at start-up");
            return None;
        }
        let url = format!("ws://{addr}/ws?user=probe");
        if let Ok(Ok((mut ws, _))) = tokio::time::timeout(
            Duration::from_secs(1),
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        {
            let first = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
            if matches!(first, Ok(Some(Ok(Message::Text(ref t)))) if t.contains("welcome")) {
                return Some(server);
            }
            eprintln!("skipping: wsgate sent no welcome: {first:?}");
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("skipping: wsgate did not accept connections");
    None
}

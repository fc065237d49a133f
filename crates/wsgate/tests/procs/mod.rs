//! The harness of the cluster tests: real processes on free ports.
//!
//! - [`RedisServer`]: a `redis-server` in its own temp dir on a free port
//!   (never 6379), without persistence or with AOF, killed with `SIGKILL`,
//!   frozen (`SIGSTOP`/`SIGCONT`) and restarted on the same port
//!   (`redis_server.rs`);
//! - [`NodeProc`]: a `wsgate` binary in cluster mode (`--redis-url`), its log
//!   in the temp dir, ready when `/readyz` answers 200; killed (`SIGKILL`),
//!   paused, or drained (`SIGTERM`) and restarted with the same id and ports;
//!   [`Cluster`]: a Redis and `n` nodes (`node.rs`);
//! - [`SentinelProc`]: a `redis-sentinel` watching a primary, its config in
//!   its own temp dir (`sentinel.rs`);
//! - [`Nginx`]: a real nginx load balancer in front of nodes, with the
//!   WebSocket upgrade headers and `X-Forwarded-For` (`nginx.rs`);
//! - [`Haproxy`]: a real HAProxy in TCP mode that sends the PROXY protocol
//!   v2 header to the nodes (`haproxy.rs`);
//! - a raw HTTP/1.1 client for `/readyz`, `/metrics` and the API, a metrics
//!   reader (`http.rs`); [`eventually`] and `poll!`, frame helpers, and the
//!   report file the tests append numbers to.
//!
//! Every process is killed when its handle drops; when a test panics, the
//! tail of each log is printed. A missing tool fails the test, never skips it.
//! Ports come from 20000–32767, below Linux's ephemeral range, so outgoing
//! connections never take a port a test picked; each test has its own Redis
//! and ports, so tests run in parallel.
#![allow(dead_code)] // Shared by several test binaries; each uses a subset.

mod haproxy;
mod http;
mod nginx;
mod node;
mod redis_server;
mod sentinel;

// Each test file uses a subset.
#[allow(unused_imports)]
pub use {haproxy::*, http::*, nginx::*, node::*, redis_server::*, sentinel::*};

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsgate_client::{Client, ClientError, Options, ServerFrame};

/// The API key of every node.
pub const API_KEY: &str = "k";
/// Read timeout for frames that must arrive.
pub const T: Duration = Duration::from_secs(5);
/// Node liveness in the tests (`--node-ttl`).
pub const NODE_TTL: Duration = Duration::from_secs(2);

static NEXT: AtomicU32 = AtomicU32::new(0);
static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A fresh directory under the target's temp dir.
pub fn temp_dir(what: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// A port nothing listens on, never handed out twice by this process.
pub fn free_port() -> u16 {
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let port = 20000 + (rand::random::<u16>() % 12768);
        if port == 6379 || taken.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
    panic!("no free port found in 20000-32767");
}

/// Fails the test when `tool` is not installed.
fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed (Debian package `{package}`); the cluster tests need it"
    );
}

/// Sends a signal with `kill(1)` (the workspace forbids `unsafe`, so no libc).
fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {sig} {pid} failed");
}

/// Stops a child that has children of its own (nginx's master): SIGTERM lets
/// it stop its workers; SIGKILL after a deadline would orphan them, so it is
/// only the fallback.
fn stop_child(child: &mut Option<Child>) {
    let Some(mut c) = child.take() else {
        return;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// Kills a child with SIGKILL and reaps it.
fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn log_tail(name: &str, path: &Path) {
    if let Ok(text) = fs::read_to_string(path) {
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        eprintln!("---- last lines of {name} ({}) ----", path.display());
        for l in &lines[from..] {
            eprintln!("{l}");
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`eventually`] for checks that borrow mutably (a client): polls the
/// `Option` expression `$check` (which may `.await`) every 50 ms.
#[allow(unused_macros)]
macro_rules! poll {
    ($what:expr, $limit:expr, $check:expr) => {{
        let deadline = std::time::Instant::now() + $limit;
        loop {
            if let Some(v) = $check {
                break v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {:?}: {}",
                $limit,
                $what
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }};
}

/// Appends a line to `target/cluster-report.txt` and prints it.
pub fn report(line: &str) {
    eprintln!("[cluster report] {line}");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .join("cluster-report.txt");
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(target) {
        let _ = writeln!(f, "[{when}] {line}");
    }
}

// ---------------------------------------------------------------- frames

/// Waits for the frame `want` accepts, dropping others; panics naming `what`.
pub async fn expect_frame(
    client: &mut Client,
    what: &str,
    want: impl FnMut(&ServerFrame) -> bool,
) -> ServerFrame {
    client
        .next_frame_where(T, want)
        .await
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
}

/// True when the error means the connection is gone.
pub fn is_closed(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Closed(_) | ClientError::Io(_) | ClientError::WebSocket(_)
    )
}

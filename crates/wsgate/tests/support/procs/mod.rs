//! The process harness: real processes on free ports, one file per kind.
//!
//! - [`WsgateProc`] (`wsgate.rs`): the `wsgate` binary, standalone (JWT
//!   secret, API key) or as a cluster node (`--redis-url`, anonymous users,
//!   short timers); ready when `/readyz` answers 200; killed (`SIGKILL`),
//!   paused, drained (`SIGTERM`) and restarted with the same id and ports;
//!   [`Cluster`]: a Redis and `n` nodes;
//! - [`RedisServer`] (`redis_server.rs`): a `redis-server` in its own temp
//!   dir on a free port (never 6379), without persistence or with AOF,
//!   killed, frozen (`SIGSTOP`/`SIGCONT`) and restarted on the same port;
//! - [`RedisCluster`] (`redis_cluster.rs`): six cluster-enabled
//!   `redis-server`s formed with `redis-cli --cluster create
//!   --cluster-replicas 1`, ready once every node says `cluster_state:ok`;
//! - [`SentinelProc`] (`sentinel.rs`): a `redis-sentinel` watching a
//!   primary, its config in its own dir (in memory when the host has
//!   `/dev/shm`);
//! - [`Nginx`] (`nginx.rs`): a real nginx load balancer in front of nodes,
//!   with the WebSocket upgrade headers and `X-Forwarded-For`;
//! - [`Haproxy`] (`haproxy.rs`): a real HAProxy in TCP mode that sends the
//!   PROXY protocol v2 header to the nodes.
//!
//! The pieces each of them is built from live here: [`free_port`],
//! [`require`] (a missing tool fails the test), [`signal`], [`stop_child`] /
//! [`kill_child`], [`log_tail`], and [`report`] (the figures file tests
//! append to). Every process is killed when its handle drops; when a test
//! panics, the tail of each log is printed. Ports come from 20000–32767,
//! below Linux's ephemeral range, so outgoing connections never take a port
//! a test picked; each test has its own processes and ports, so tests run in
//! parallel.

mod haproxy;
mod nginx;
mod redis_cluster;
mod redis_server;
mod sentinel;
mod wsgate;

pub use haproxy::*;
pub use nginx::*;
pub use redis_cluster::*;
pub use redis_server::*;
pub use sentinel::*;
pub use wsgate::*;

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

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
pub fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed (Debian package `{package}`; \
         scripts/install-test-deps.sh installs it); this test needs it"
    );
}

/// Sends a signal with `kill(1)` (the workspace forbids `unsafe`, so no libc).
pub fn signal(pid: u32, sig: &str) {
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
pub fn stop_child(child: &mut Option<Child>) {
    let Some(mut c) = child.take() else {
        return;
    };
    // If it already exited, the wait below finds out.
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_child(&mut Some(c));
}

/// Kills a child with SIGKILL and reaps it.
pub fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        // Both fail only when the child is already gone and reaped.
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Prints the last 30 lines of a log file.
pub fn log_tail(name: &str, path: &Path) {
    if let Ok(text) = fs::read_to_string(path) {
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        eprintln!("---- last lines of {name} ({}) ----", path.display());
        for l in &lines[from..] {
            eprintln!("{l}");
        }
    }
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
        // The figures are also on stderr; a report file that cannot be
        // written costs the test nothing.
        let _ = writeln!(f, "[{when}] {line}");
    }
}

//! The support code of every integration test binary: one place for
//! waiting, HTTP, tokens, clients and processes.
//!
//! - [`eventually`] and [`poll!`] (`wait.rs`): the one way a test waits,
//!   by polling a condition against a deadline, never by sleeping;
//! - [`http`](http::try_http) (`http.rs`): the one HTTP/1.1 client (exact
//!   bytes over a fresh `TcpStream`, `Connection: close`, bounded by [`T`]),
//!   with [`metric_value`] for Prometheus text;
//! - tokens signed with [`SECRET`] (`tokens.rs`);
//! - [`TestNode`] (`inproc.rs`): a node started in this process by
//!   `wsgate::start` on two port-0 listeners, for tests that reach inside;
//! - frame builders and readers for [`wsgate_client::Client`] (`frames.rs`);
//! - the hostile side (`hostile.rs`): [`RawWs`] over the client crate's
//!   hand-framed [`wsgate_client::raw::HandWs`], a [`Peer`] that stays
//!   connected on [`wsgate_client::Background`], upgrade probes, `/proc`
//!   readings, and the [`assert_unharmed`] check;
//! - [`Receiver`] (`receiver.rs`): a real HTTP webhook receiver (hyper)
//!   that checks signatures, answers scripted statuses, and goes down and
//!   up on its port;
//! - the process harness (`procs/`): the real `wsgate` binary
//!   ([`WsgateProc`], standalone or in a [`Cluster`]), `redis-server`
//!   ([`RedisServer`]) and nginx ([`Nginx`]) on free ports, each killed when
//!   its handle drops, with its log tail printed when the test panicked.
//!   A new kind of process (a proxy, a Sentinel) is one more file there
//!   built from the same pieces (`free_port`, `require`, `log_tail`,
//!   `stop_child`).
//!
//! One [`SECRET`] and one [`API_KEY`] for every server a test starts. Every
//! read has a timeout; a missing tool fails the test, never skips it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]
#![allow(dead_code, unused_imports, unused_macros)] // Each test binary uses a subset.

#[macro_use]
mod wait;
mod frames;
mod grpc;
mod hostile;
mod http;
mod inproc;
mod procs;
mod receiver;
mod tokens;

pub use frames::*;
pub use grpc::*;
pub use hostile::*;
pub use http::*;
pub use inproc::*;
pub use procs::*;
pub use receiver::*;
pub use tokens::*;
pub use wait::*;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// HS256 secret of every server a test starts (unless it passes its own).
pub const SECRET: &str = "test-secret-for-wsgate-integration";
/// API key of every server a test starts.
pub const API_KEY: &str = "test-api-key";
/// Timeout for anything that must happen (a frame, a reply, a close).
pub const T: Duration = Duration::from_secs(5);
/// The longer limit for state that converges (metrics, presence, expiry).
pub const WAIT: Duration = Duration::from_secs(10);
/// Short read timeout for checking that nothing else is queued.
pub const SHORT: Duration = Duration::from_millis(300);
/// Node liveness of cluster nodes in the tests (`--node-ttl`).
pub const NODE_TTL: Duration = Duration::from_secs(2);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A name unique in this process.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh directory under the target's temp dir; removed when dropped,
/// unless the test is panicking (its logs are kept for a look).
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("(kept {} for inspection)", self.0.display());
            return;
        }
        // Best effort: a leftover directory under target/ harms nothing.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh temporary directory named after `what`.
pub fn temp_dir(what: &str) -> TempDir {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique(what));
    // A leftover of an earlier run with the same pid would only be stale.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    TempDir(dir)
}

//! The test's own `redis-sentinel` processes.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, kill_child, log_tail, require};
use crate::support::{eventually, temp_dir, TempDir};

/// A `redis-sentinel` monitoring one primary as `mymaster`.
pub struct SentinelProc {
    pub port: u16,
    dir: PathBuf,
    /// The temp dir when `dir` is not in `/dev/shm`.
    _tmp: Option<TempDir>,
    child: Option<Child>,
}

impl SentinelProc {
    /// Starts a Sentinel for `primary_port` with quorum 2 and fast timers
    /// (down after 1 s), and waits until it answers.
    pub async fn start(primary_port: u16) -> SentinelProc {
        require("redis-sentinel", "redis-sentinel");
        let (dir, _tmp) = config_dir();
        let mut sentinel = SentinelProc {
            port: free_port(),
            dir,
            _tmp,
            child: None,
        };
        for _ in 0..3 {
            if sentinel.spawn(primary_port).await {
                return sentinel;
            }
            sentinel.port = free_port();
        }
        panic!(
            "redis-sentinel did not start; see {}",
            sentinel.dir.display()
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self, primary_port: u16) -> bool {
        // Sentinel rewrites its config file: each process has its own.
        let conf = self.dir.join("sentinel.conf");
        fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {dir}\n\
                 sentinel monitor mymaster 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds mymaster 1000\n\
                 sentinel failover-timeout mymaster 5000\n\
                 sentinel parallel-syncs mymaster 1\n",
                port = self.port,
                dir = self.dir.display(),
            ),
        )
        .expect("sentinel config");
        let log = File::create(self.dir.join("sentinel.log")).expect("sentinel log file");
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start redis-sentinel");
        self.child = Some(child);
        let url = self.url();
        let child = self.child.as_mut().expect("sentinel child");
        eventually(
            "redis-sentinel answers PING",
            Duration::from_secs(10),
            || {
                let url = url.clone();
                let exited = child.try_wait().ok().flatten().is_some();
                async move {
                    if exited {
                        return Some(false);
                    }
                    let mut conn = sentinel_conn(&url).await?;
                    let pong: String = redis::cmd("PING").query_async(&mut conn).await.ok()?;
                    (pong == "PONG").then_some(true)
                }
            },
        )
        .await
    }

    /// The port of the primary this Sentinel names for `mymaster`.
    pub async fn primary_port(&self) -> Option<u16> {
        let mut conn = sentinel_conn(&self.url()).await?;
        let addr: Vec<String> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg("mymaster")
            .query_async(&mut conn)
            .await
            .ok()?;
        addr.get(1)?.parse().ok()
    }

    /// (replicas, other sentinels) this Sentinel knows for `mymaster`;
    /// `None` while it is in TILT mode (it would not fail over).
    pub async fn peers(&self) -> Option<(usize, usize)> {
        let mut conn = sentinel_conn(&self.url()).await?;
        let info: String = redis::cmd("INFO")
            .arg("sentinel")
            .query_async(&mut conn)
            .await
            .ok()?;
        if !info.contains("sentinel_tilt:0") {
            return None;
        }
        let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
            .arg("replicas")
            .arg("mymaster")
            .query_async(&mut conn)
            .await
            .ok()?;
        let sentinels: Vec<redis::Value> = redis::cmd("SENTINEL")
            .arg("sentinels")
            .arg("mymaster")
            .query_async(&mut conn)
            .await
            .ok()?;
        Some((replicas.len(), sentinels.len()))
    }
}

/// Sentinel fsyncs its config file on every change, and a pause of 2 s
/// (an fsync on a busy disk) puts it in TILT mode for 30 s, where it does not
/// fail over: its files live in memory (`/dev/shm`) when the host has it.
fn config_dir() -> (PathBuf, Option<TempDir>) {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        let tmp = temp_dir("sentinel");
        return (tmp.to_path_buf(), Some(tmp));
    }
    let dir = shm.join(format!(
        "wsgate-sentinel-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    fs::create_dir_all(&dir).expect("create the sentinel dir");
    (dir, None)
}

async fn sentinel_conn(url: &str) -> Option<redis::aio::MultiplexedConnection> {
    redis::Client::open(url)
        .ok()?
        .get_multiplexed_async_connection()
        .await
        .ok()
}

impl Drop for SentinelProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            log_tail("sentinel", &self.dir.join("sentinel.log"));
        }
        kill_child(&mut self.child);
        if self.dir.starts_with("/dev/shm") {
            // Memory, not the target dir: nothing keeps it after the test.
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

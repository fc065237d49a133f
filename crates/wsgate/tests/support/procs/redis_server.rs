//! The test's own `redis-server`.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, kill_child, log_tail, require, signal};
use crate::support::{eventually, temp_dir, TempDir};

/// A `redis-server` owned by one test.
pub struct RedisServer {
    pub port: u16,
    dir: TempDir,
    aof: bool,
    /// More `redis-server` flags (e.g. `--replicaof`).
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts Redis without persistence.
    pub async fn start() -> RedisServer {
        Self::start_with(false).await
    }

    /// Starts Redis; with `aof`, every write is fsynced to an append-only file.
    pub async fn start_with(aof: bool) -> RedisServer {
        Self::start_args(aof, Vec::new()).await
    }

    /// Starts a replica of `primary` (without persistence).
    pub async fn start_replica_of(primary: &RedisServer) -> RedisServer {
        Self::start_args(
            false,
            vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary.port.to_string(),
            ],
        )
        .await
    }

    /// Starts Redis without persistence and with these extra flags (e.g.
    /// `--maxmemory 30mb`).
    pub async fn start_flags(extra: &[&str]) -> RedisServer {
        Self::start_args(false, extra.iter().map(|s| s.to_string()).collect()).await
    }

    async fn start_args(aof: bool, extra: Vec<String>) -> RedisServer {
        require("redis-server", "redis-server");
        let mut redis = RedisServer {
            port: free_port(),
            dir: temp_dir("redis"),
            aof,
            extra,
            child: None,
        };
        // Another process may take the port between the check and the bind.
        for _ in 0..3 {
            if redis.spawn().await {
                return redis;
            }
            redis.port = free_port();
        }
        panic!("redis-server did not start; see {}", redis.dir.display());
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits for PING; false when it exited.
    async fn spawn(&mut self) -> bool {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&*self.dir)
            .args(["--save", ""])
            .args(["--protected-mode", "no"]);
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.args(&self.extra);
        let log = File::create(self.dir.join("redis.log")).expect("redis log file");
        let child = cmd
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let url = self.url();
        let child = self.child.as_mut().expect("redis child");
        eventually("redis-server answers PING", Duration::from_secs(10), || {
            let url = url.clone();
            let exited = child.try_wait().ok().flatten().is_some();
            async move {
                if exited {
                    return Some(false);
                }
                let client = redis::Client::open(url).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                let pong: String = redis::cmd("PING").query_async(&mut conn).await.ok()?;
                (pong == "PONG").then_some(true)
            }
        })
        .await
    }

    /// Kills Redis with SIGKILL (what AOF with `fsync always` must survive).
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// Freezes Redis (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        signal(self.child.as_ref().expect("redis runs").id(), "-STOP");
    }

    /// Thaws a paused Redis (SIGCONT).
    pub fn resume(&self) {
        signal(self.child.as_ref().expect("redis runs").id(), "-CONT");
    }

    /// Starts Redis again on the same port and dir (the AOF is reloaded).
    pub async fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn().await,
            "redis-server did not restart on its port"
        );
    }

    /// A command connection for assertions.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test redis")
    }

    /// Unacked messages in a user's inbox: `HLEN wsgate:inbox-msgs:{user}`
    /// (the user in a hash tag). The list `wsgate:inbox:{user}` keeps their
    /// order and may still hold acked ids until they reach its head.
    pub async fn inbox_len(&self, user: &str) -> u64 {
        let mut conn = self.conn().await;
        redis::cmd("HLEN")
            .arg(format!("wsgate:inbox-msgs:{{{user}}}"))
            .query_async(&mut conn)
            .await
            .expect("HLEN")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            log_tail("redis", &self.dir.join("redis.log"));
        }
        kill_child(&mut self.child);
    }
}

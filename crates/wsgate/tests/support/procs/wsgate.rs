//! [`WsgateProc`]: the real `wsgate` binary as a child process, standalone
//! or as a cluster node; [`Cluster`]: a Redis and `n` nodes.

use std::fs::{self, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use wsgate_client::{Client, Options};

use super::{free_port, kill_child, log_tail, signal, RedisServer};
use crate::support::{
    api, eventually, http, metric_value, proc_status, ready, temp_dir, token, Peer, Response,
    TempDir, API_KEY, SECRET, T,
};

/// One `wsgate` process.
pub struct WsgateProc {
    pub id: String,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    args: Vec<String>,
    log: PathBuf,
    starts: u32,
    child: Option<Child>,
    /// The directory of a standalone process's log (a cluster's is shared).
    _dir: Option<TempDir>,
}

/// `--log-level` of every process (`WSGATE_TEST_LOG=debug` says more).
fn log_level() -> String {
    std::env::var("WSGATE_TEST_LOG").unwrap_or_else(|_| "info".into())
}

/// Flags every cluster node gets (short timers keep the suite fast).
fn cluster_args(redis_url: &str, id: &str) -> Vec<String> {
    [
        "--allow-anonymous",
        "--redis-url",
        redis_url,
        "--node-id",
        id,
        "--node-ttl",
        "2s",
        "--drain-timeout",
        "1s",
        "--ping-interval",
        "2s",
        "--rate-limit",
        "100000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Replaces the value that follows `flag`.
fn set_flag(args: &mut [String], flag: &str, value: &str) {
    if let Some(i) = args.iter().position(|a| a == flag) {
        args[i + 1] = value.to_owned();
    }
}

impl WsgateProc {
    /// A standalone node with [`SECRET`] as its JWT secret, [`API_KEY`], and
    /// `args`; ready.
    pub async fn start(args: &[&str]) -> WsgateProc {
        let mut all = vec!["--jwt-secret", SECRET];
        all.extend_from_slice(args);
        WsgateProc::start_raw(&all).await
    }

    /// A standalone node with only `args` (plus listeners, API key and
    /// logging); ready.
    pub async fn start_raw(args: &[&str]) -> WsgateProc {
        let dir = temp_dir("wsgate");
        let mut node = WsgateProc::launch_new("wsgate", &dir, args);
        node._dir = Some(dir);
        node.wait_ready().await;
        node
    }

    /// A cluster node on `redis_url` with `extra` flags (not yet ready:
    /// see [`WsgateProc::wait_ready`]); its log is `dir/ID.log`. A flag of
    /// `extra` that the cluster defaults also set (e.g. `--node-ttl`)
    /// replaces the default's value (the CLI refuses a repeated flag).
    pub fn spawn(redis_url: &str, id: &str, dir: &Path, extra: &[&str]) -> WsgateProc {
        let mut args = cluster_args(redis_url, id);
        let defaults = args.len();
        let mut rest = extra.iter();
        while let Some(arg) = rest.next() {
            if *arg == "--allow-anonymous" {
                continue; // already set, and takes no value
            }
            if arg.starts_with("--") && args[..defaults].iter().any(|a| a == arg) {
                if let Some(value) = rest.next() {
                    set_flag(&mut args, arg, value);
                }
                continue;
            }
            args.push(arg.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        WsgateProc::launch_new(id, dir, &args)
    }

    fn launch_new(id: &str, dir: &Path, args: &[&str]) -> WsgateProc {
        let public: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut all: Vec<String> = [
            "--listen",
            &public.to_string(),
            "--admin-listen",
            &admin.to_string(),
            "--api-key",
            API_KEY,
            "--log-format",
            "text",
            "--log-level",
            &log_level(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        all.extend(args.iter().map(|s| s.to_string()));
        let mut node = WsgateProc {
            id: id.to_owned(),
            public,
            admin,
            args: all,
            log: dir.join(format!("{id}.log")),
            starts: 0,
            child: None,
            _dir: None,
        };
        node.launch();
        node
    }

    fn launch(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("node log file");
        self.starts += 1;
        // `WSGATE_TEST_BIN` runs the test against another build (e.g. the
        // previous release, to see a new test fail there).
        let bin = std::env::var("WSGATE_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_wsgate").to_owned());
        let child = Command::new(bin)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start wsgate");
        self.child = Some(child);
    }

    /// Waits until `/readyz` answers 200 on the admin listener. A first start
    /// that lost its port to another process moves to new ports.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if ready(self.admin).await == Some(200) {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                let log = self.log_text();
                if self.starts == 1 && log.contains("Address already in use") {
                    self.public = ([127, 0, 0, 1], free_port()).into();
                    self.admin = ([127, 0, 0, 1], free_port()).into();
                    set_flag(&mut self.args, "--listen", &self.public.to_string());
                    set_flag(&mut self.args, "--admin-listen", &self.admin.to_string());
                    self.starts = 0;
                    self.launch();
                    continue;
                }
                panic!("{} exited before it was ready ({status}):\n{log}", self.id);
            }
            assert!(Instant::now() < deadline, "{} not ready after 15s", self.id);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the node runs").id()
    }

    /// Whether the process was started and not yet reaped.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `ws://…/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.public)
    }

    /// `ws://…/ws?user=USER` (anonymous mode).
    pub fn user_url(&self, user: &str) -> String {
        format!("ws://{}/ws?user={user}", self.public)
    }

    /// Connects `user` anonymously; asserts the welcome names this node.
    pub async fn connect(&self, user: &str) -> Client {
        let client = Client::connect(Options::new(self.user_url(user)))
            .await
            .unwrap_or_else(|e| panic!("{user} connects to {}: {e}", self.id));
        assert_eq!(client.welcome().node, self.id, "welcome.node");
        client
    }

    /// A [`Peer`] for `user` with a token (the bystander of hostile tests).
    pub async fn bystander(&self, user: &str) -> Peer {
        Peer::connect(&self.ws_url(), Some(&token(user)), None)
            .await
            .expect("the bystander connects")
    }

    /// Crashes the node: SIGKILL, no drain.
    pub fn kill9(&mut self) {
        kill_child(&mut self.child);
    }

    /// Freezes the process (SIGSTOP): a long pause, its sockets stay open.
    pub fn pause(&self) {
        signal(self.pid(), "-STOP");
    }

    /// Thaws a paused node (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    /// Sends SIGTERM (drain).
    pub fn terminate(&self) {
        signal(self.pid(), "-TERM");
    }

    /// Waits for the process to exit; returns its status.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("the node runs");
        let id = self.id.clone();
        let status = eventually(&format!("{id} exits"), limit, || {
            let s = child.try_wait().ok().flatten();
            async move { s }
        })
        .await;
        self.child = None;
        status
    }

    /// Starts the node again with the same id, ports and flags.
    pub fn restart(&mut self) {
        kill_child(&mut self.child);
        self.launch();
    }

    /// The node's log so far (all its runs).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asserts the process runs and `/healthz` answers 200 on both listeners.
    pub async fn assert_alive(&mut self) {
        let child = self.child.as_mut().expect("the node runs");
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "wsgate exited"
        );
        for addr in [self.public, self.admin] {
            let r = http(addr, "GET", "/healthz", &[], None).await;
            assert_eq!(r.status, 200, "/healthz on {addr}");
        }
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let r = http(self.admin, "GET", "/metrics", &[], None).await;
        assert_eq!(r.status, 200, "GET /metrics on {}", self.id);
        r.text()
    }

    /// One series' value (`name` or `name{label="v"}` exactly as exposed);
    /// 0 when absent (a labelled counter appears on its first increment).
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics().await, series).unwrap_or(0.0)
    }

    /// One series' value; panics when the node does not expose it.
    pub async fn metric_required(&self, series: &str) -> f64 {
        metric_value(&self.metrics().await, series)
            .unwrap_or_else(|| panic!("{series} missing on {}", self.id))
    }

    /// Waits until a series reaches `at_least` (sessions count their end
    /// after the close handshake, which a hostile client never finishes).
    pub async fn wait_metric(&self, series: &str, at_least: f64) {
        let deadline = Instant::now() + T;
        loop {
            let v = self.metric(series).await;
            if v >= at_least {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{series} is {v}, expected >= {at_least}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A `/proc/<pid>/status` field in its unit (kB for `VmRSS`).
    pub fn proc_status(&self, field: &str) -> u64 {
        proc_status(self.pid(), field)
    }

    /// Open file descriptors of the process.
    pub fn open_fds(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// An API request with the key and a JSON body.
    pub async fn api(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        api(self.admin, method, path, body).await
    }

    /// `GET path` on the API; status and JSON (`Null` when not JSON).
    pub async fn api_get(&self, path: &str) -> (u16, Value) {
        let r = self.api("GET", path, None).await;
        (r.status, r.json_or_null())
    }

    /// `POST path` with a JSON body; status and JSON (`Null` when not JSON).
    pub async fn api_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.api("POST", path, Some(body)).await;
        (r.status, r.json_or_null())
    }
}

impl Drop for WsgateProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            log_tail(&self.id, &self.log);
        }
        kill_child(&mut self.child);
    }
}

/// A Redis and `n` nodes `n1`…, all ready.
pub struct Cluster {
    pub nodes: Vec<WsgateProc>,
    pub redis: RedisServer,
    pub dir: TempDir,
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Self::start_on(RedisServer::start().await, n, &[]).await
    }

    /// `n` nodes on `redis`, each with `extra` flags.
    pub async fn start_on(redis: RedisServer, n: usize, extra: &[&str]) -> Cluster {
        let dir = temp_dir("cluster");
        let url = redis.url();
        let mut nodes: Vec<WsgateProc> = (1..=n)
            .map(|i| WsgateProc::spawn(&url, &format!("n{i}"), &dir, extra))
            .collect();
        for node in &mut nodes {
            node.wait_ready().await;
        }
        Cluster { nodes, redis, dir }
    }

    /// Waits until every running node's `/readyz` answers `status`.
    pub async fn all_ready(&self, status: u16, limit: Duration) {
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let admin = node.admin;
            eventually(
                &format!("{} /readyz {status}", node.id),
                limit,
                || async move { ready(admin).await == Some(status) },
            )
            .await;
        }
    }
}

//! The harness of the cluster tests: real processes on free ports.
//!
//! - [`RedisServer`]: a `redis-server` in its own temp dir on a free port
//!   (never 6379), without persistence or with AOF, killed with `SIGKILL` and
//!   restarted on the same port;
//! - [`NodeProc`]: a `wsgate` binary in cluster mode (`--redis-url`), its log
//!   in the temp dir, ready when `/readyz` answers 200; killed (`SIGKILL`) or
//!   drained (`SIGTERM`) and restarted with the same id and ports;
//! - [`Nginx`]: a real nginx load balancer in front of nodes, with the
//!   WebSocket upgrade headers;
//! - a raw HTTP/1.1 client for `/readyz`, `/metrics` and the API, a metrics
//!   reader, [`eventually`], and the report file the tests append numbers to.
//!
//! Every process is killed when its handle drops; when a test panics, the
//! tail of each log is printed. A missing tool fails the test, never skips it.
//! Ports come from 20000–32767, below Linux's ephemeral range, so outgoing
//! connections never take a port a test picked; each test has its own Redis
//! and ports, so tests run in parallel.
#![allow(dead_code)]

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

// ---------------------------------------------------------------- Redis

/// A `redis-server` owned by one test.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    aof: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts Redis without persistence.
    pub async fn start() -> RedisServer {
        Self::start_with(false).await
    }

    /// Starts Redis; with `aof`, every write is fsynced to an append-only file.
    pub async fn start_with(aof: bool) -> RedisServer {
        require("redis-server", "redis-server");
        let mut redis = RedisServer {
            port: free_port(),
            dir: temp_dir("redis"),
            aof,
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
            .arg(&self.dir)
            .args(["--save", ""])
            .args(["--protected-mode", "no"]);
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
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

    /// `LLEN wsgate:inbox:{user}`.
    pub async fn inbox_len(&self, user: &str) -> u64 {
        let mut conn = self.conn().await;
        redis::cmd("LLEN")
            .arg(format!("wsgate:inbox:{user}"))
            .query_async(&mut conn)
            .await
            .expect("LLEN")
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

// ---------------------------------------------------------------- wsgate

/// One `wsgate` process in cluster mode.
pub struct NodeProc {
    pub id: String,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    args: Vec<String>,
    log: PathBuf,
    starts: u32,
    child: Option<Child>,
}

/// Flags every test node gets (short timers keep the suite fast).
fn base_args(redis_url: &str, id: &str, public: SocketAddr, admin: SocketAddr) -> Vec<String> {
    [
        "--allow-anonymous",
        "--api-key",
        API_KEY,
        "--redis-url",
        redis_url,
        "--node-id",
        id,
        "--listen",
        &public.to_string(),
        "--admin-listen",
        &admin.to_string(),
        "--node-ttl",
        "2s",
        "--drain-timeout",
        "1s",
        "--ping-interval",
        "2s",
        "--rate-limit",
        "100000",
        "--log-format",
        "text",
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

impl NodeProc {
    /// Starts a node on free ports with `extra` flags (not yet ready).
    pub fn spawn(redis_url: &str, id: &str, dir: &Path, extra: &[&str]) -> NodeProc {
        let public: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut args = base_args(redis_url, id, public, admin);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut node = NodeProc {
            id: id.to_owned(),
            public,
            admin,
            args,
            log: dir.join(format!("{id}.log")),
            starts: 0,
            child: None,
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
        let child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .args(&self.args)
            .env("RUST_LOG", "info")
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
                let log = fs::read_to_string(&self.log).unwrap_or_default();
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

    /// `ws://…/ws?user=USER` on this node.
    pub fn ws_url(&self, user: &str) -> String {
        format!("ws://{}/ws?user={user}", self.public)
    }

    /// Connects `user` to this node.
    pub async fn connect(&self, user: &str) -> Client {
        let client = Client::connect(Options::new(self.ws_url(user)))
            .await
            .unwrap_or_else(|e| panic!("{user} connects to {}: {e}", self.id));
        assert_eq!(client.welcome().node, self.id, "welcome.node");
        client
    }

    /// Crashes the node: SIGKILL, no drain.
    pub fn kill9(&mut self) {
        kill_child(&mut self.child);
    }

    /// Freezes the process (SIGSTOP): a long pause, its sockets stay open.
    pub fn pause(&self) {
        signal(self.child.as_ref().expect("the node runs").id(), "-STOP");
    }

    /// Thaws a paused node (SIGCONT).
    pub fn resume(&self) {
        signal(self.child.as_ref().expect("the node runs").id(), "-CONT");
    }

    /// Sends SIGTERM (drain).
    pub fn terminate(&self) {
        let child = self.child.as_ref().expect("the node runs");
        signal(child.id(), "-TERM");
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

    /// The value of a metric sample on `/metrics`, by its exact key
    /// (`name` or `name{label="value"}`).
    pub async fn metric(&self, name: &str) -> f64 {
        let (status, body) = http(self.admin, "GET", "/metrics", None).await;
        assert_eq!(status, 200, "GET /metrics on {}", self.id);
        metric_value(&body, name).unwrap_or_else(|| panic!("{name} missing on {}", self.id))
    }

    /// `GET path` on the admin listener with the API key; status and JSON.
    pub async fn api_get(&self, path: &str) -> (u16, Value) {
        let (status, body) = http(self.admin, "GET", path, None).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// `POST path` with a JSON body and the API key; status and JSON.
    pub async fn api_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, text) = http(self.admin, "POST", path, Some(&body.to_string())).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            log_tail(&self.id, &self.log);
        }
        kill_child(&mut self.child);
    }
}

/// A Redis and `n` nodes `n1`…, all ready.
pub struct Cluster {
    pub nodes: Vec<NodeProc>,
    pub redis: RedisServer,
    pub dir: PathBuf,
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Self::start_on(RedisServer::start().await, n, &[]).await
    }

    /// `n` nodes on `redis`, each with `extra` flags.
    pub async fn start_on(redis: RedisServer, n: usize, extra: &[&str]) -> Cluster {
        let dir = temp_dir("cluster");
        let url = redis.url();
        let mut nodes: Vec<NodeProc> = (1..=n)
            .map(|i| NodeProc::spawn(&url, &format!("n{i}"), &dir, extra))
            .collect();
        for node in &mut nodes {
            node.wait_ready().await;
        }
        Cluster { nodes, redis, dir }
    }

    /// Waits until every node's `/readyz` answers `status`.
    pub async fn all_ready(&self, status: u16, limit: Duration) {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let admin = node.admin;
            eventually(
                &format!("{} /readyz {status}", node.id),
                limit,
                || async move { (ready(admin).await == Some(status)).then_some(()) },
            )
            .await;
        }
    }
}

// ---------------------------------------------------------------- nginx

/// A real nginx in front of some nodes.
pub struct Nginx {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Nginx {
    /// Starts nginx round-robin over `upstreams`, with WebSocket upgrades.
    pub async fn start(upstreams: &[SocketAddr]) -> Nginx {
        require("nginx", "nginx-light");
        let dir = temp_dir("nginx");
        fs::create_dir_all(dir.join("tmp")).expect("nginx temp dir");
        // Another process may take the port between the check and the bind.
        for _ in 0..3 {
            if let Some(nginx) = Self::launch(&dir, upstreams, free_port()).await {
                return nginx;
            }
        }
        log_tail("nginx", &dir.join("error.log"));
        log_tail("nginx stderr", &dir.join("stderr.log"));
        panic!("nginx did not start; see {}", dir.display());
    }

    /// Writes the config and starts nginx; `None` when it exited at start.
    async fn launch(dir: &Path, upstreams: &[SocketAddr], port: u16) -> Option<Nginx> {
        let servers: String = upstreams
            .iter()
            .map(|a| format!("    server {a} max_fails=0;\n"))
            .collect();
        let d = dir.display();
        let conf = format!(
            r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream wsgate {{
{servers}  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://wsgate;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout http_502 http_503;
    }}
  }}
}}
"#
        );
        let conf_path = dir.join("nginx.conf");
        fs::write(&conf_path, conf).expect("write nginx.conf");
        let log = File::create(dir.join("stderr.log")).expect("nginx stderr log");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx {
            port,
            dir: dir.to_owned(),
            child: Some(child),
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = nginx.child.as_mut().expect("nginx child");
        let started = eventually("nginx proxies /healthz", Duration::from_secs(10), || {
            let exited = child.try_wait().ok().flatten().is_some();
            async move {
                if exited {
                    return Some(false);
                }
                let (status, _) = try_http(addr, "GET", "/healthz", None).await?;
                (status == 200).then_some(true)
            }
        })
        .await;
        if started {
            Some(nginx)
        } else {
            nginx.child = None;
            None
        }
    }

    /// `ws://…/ws?user=USER` through nginx.
    pub fn ws_url(&self, user: &str) -> String {
        format!("ws://127.0.0.1:{}/ws?user={user}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            log_tail("nginx", &self.dir.join("error.log"));
            log_tail("nginx stderr", &self.dir.join("stderr.log"));
        }
        kill_child(&mut self.child);
    }
}

// ---------------------------------------------------------------- HTTP

/// `/readyz` status on an admin listener, `None` when it cannot connect.
pub async fn ready(admin: SocketAddr) -> Option<u16> {
    try_http(admin, "GET", "/readyz", None)
        .await
        .map(|(status, _)| status)
}

/// One HTTP/1.1 request with the API key; panics when it cannot connect.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    try_http(addr, method, path, body)
        .await
        .unwrap_or_else(|| panic!("{method} {path} on {addr} failed"))
}

/// One HTTP/1.1 request (`Connection: close`), bounded by a timeout.
pub async fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {API_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        parse_response(&raw)
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if !chunked {
        return Some((status, body.to_owned()));
    }
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some((status, out));
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

/// A sample of a Prometheus text body, by its exact key.
pub fn metric_value(body: &str, name: &str) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, value) = l.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
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

//! `wsgate` processes and a cluster of them.

use super::*;

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

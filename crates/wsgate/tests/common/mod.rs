//! Shared helpers for the integration tests: a real node on port 0, tokens,
//! a raw HTTP/1.1 client, metrics scraping, and `eventually`.
//!
//! Each test file uses a subset of these helpers, so unused ones are allowed
//! here (this module is compiled once per test binary).
#![allow(dead_code)] // Shared by several test binaries; each uses a subset.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsgate::config::Config;
use wsgate::server::Server;
use wsgate::{Backend, Listeners};
use wsgate_client::{Client, ClientError, Options};

/// HS256 secret of every test node.
pub const SECRET: &str = "test-secret-for-wsgate-integration";
/// API key of every test node.
pub const API_KEY: &str = "test-api-key";
/// Read timeout for frames that must arrive.
pub const T: Duration = Duration::from_secs(5);
/// Short read timeout for checking that nothing else is queued.
pub const SHORT: Duration = Duration::from_millis(300);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A name unique in this process.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A config with an HS256 secret and an API key; everything else default.
pub fn config() -> Config {
    Config {
        jwt_secret: Some(SECRET.into()),
        api_key: Some(API_KEY.into()),
        node_id: unique("node"),
        ..Config::default()
    }
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An HS256 token with these claims.
pub fn token_claims(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

/// An HS256 token for `user`, valid for an hour.
pub fn token(user: &str) -> String {
    token_claims(&json!({"sub": user, "exp": now_secs() + 3600}))
}

/// A token for `user` with the `broadcast` cap.
pub fn broadcaster(user: &str) -> String {
    token_claims(&json!({"sub": user, "exp": now_secs() + 3600, "caps": ["broadcast"]}))
}

/// A running node.
pub struct TestNode {
    pub node: Arc<Server>,
    pub public: SocketAddr,
    pub admin: SocketAddr,
}

/// Starts a standalone node on two port-0 listeners.
pub async fn start(config: Config) -> TestNode {
    start_with(config, Backend::FromConfig).await
}

/// Starts a node with an explicit backend.
pub async fn start_with(mut config: Config, backend: Backend) -> TestNode {
    let public = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (public_addr, admin_addr) = (public.local_addr().unwrap(), admin.local_addr().unwrap());
    config.listen = public_addr;
    config.admin_listen = admin_addr;
    let node = wsgate::start(config, Listeners { public, admin }, backend).expect("start");
    TestNode {
        node,
        public: public_addr,
        admin: admin_addr,
    }
}

impl TestNode {
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.public)
    }

    /// Options for `user` with a one-hour token.
    pub fn opts(&self, user: &str) -> Options {
        Options::new(self.ws_url()).token(token(user))
    }

    /// Connects `user` with a one-hour token.
    pub async fn connect(&self, user: &str) -> Client {
        self.connect_with(self.opts(user)).await.expect("connect")
    }

    /// Connects with a given token.
    pub async fn connect_token(&self, token: &str) -> Result<Client, ClientError> {
        self.connect_with(Options::new(self.ws_url()).token(token))
            .await
    }

    pub async fn connect_with(&self, opts: Options) -> Result<Client, ClientError> {
        Client::connect(opts).await
    }

    /// A server API request with the API key.
    pub async fn api(&self, method: &str, path: &str, body: Option<&Value>) -> HttpResponse {
        let auth = format!("Bearer {API_KEY}");
        let body = body.map(|b| b.to_string().into_bytes());
        http(
            self.admin,
            method,
            path,
            &[("Authorization", auth.as_str())],
            body.as_deref(),
        )
        .await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let res = http(self.admin, "GET", "/metrics", &[], None).await;
        assert_eq!(res.status, 200);
        res.text()
    }

    /// One series' value from `/metrics` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics().await, series).unwrap_or(0.0)
    }
}

/// The value of one series (`name` or `name{labels}`) in Prometheus text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `check` until it is true, failing after 10 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a contract error response: status and `{"error":CODE,"message":...}`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        let body = self.json();
        assert_eq!(body["error"], code, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

/// Headers of a valid WebSocket upgrade request.
pub const UPGRADE: [(&str, &str); 4] = [
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

/// One HTTP/1.1 request on a fresh connection; reads the head and a
/// `content-length` body, all within [`T`].
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpResponse {
    tokio::time::timeout(T, http_inner(addr, method, path, headers, body))
        .await
        .expect("HTTP request timed out")
}

async fn http_inner(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    let upgrade = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("upgrade"));
    if !upgrade {
        head.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    if let Some(b) = body {
        // The server may answer (413) before reading everything.
        let _ = stream.write_all(b).await;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(
            n > 0,
            "connection closed before the response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.expect("read");
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// A fresh temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh temporary directory.
pub fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(unique(&format!("wsgate-test-{name}")));
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

/// A `send` request.
pub fn send(to: &str, content: Value) -> Value {
    json!({"type": "send", "to": to, "content": content})
}

/// A `join` request.
pub fn join(room: &str) -> Value {
    json!({"type": "join", "room": room})
}

/// A `publish` request.
pub fn publish(room: &str, content: Value) -> Value {
    json!({"type": "publish", "room": room, "content": content})
}

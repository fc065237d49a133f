//! The harness of the hostile-client tests: the real `wsgate` binary, and
//! clients that misbehave on purpose.
//!
//! - [`Server`]: the binary on `127.0.0.1:0` (both listeners), its bound ports
//!   read from its JSON `Listening.` log line, ready when `/readyz` answers
//!   200, killed when the handle drops (with its log tail printed when the test
//!   panicked; `HOSTILE_LOG_LEVEL=debug` makes that tail say more);
//! - [`http`]: a raw HTTP/1.1 request over a fresh `TcpStream` (exact bytes, no
//!   client library fixing them up);
//! - [`RawWs`]: a WebSocket written frame by frame over a raw `TcpStream`, for
//!   frames no well-behaved library sends;
//! - [`Client`]: a normal tokio-tungstenite client whose reader task answers
//!   pings, so it stays connected however long the test takes; the bystander
//!   of every test is one;
//! - metrics scraping, `/proc/<pid>/status` readings, tokens, [`eventually`].
#![allow(dead_code)] // Shared by several test binaries; each uses a subset.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// HS256 secret of every server started here (unless a test passes its own).
pub const SECRET: &str = "hostile-test-secret";
/// API key of every server started here.
pub const API_KEY: &str = "hostile-api-key";
/// Timeout for anything that must happen.
pub const T: Duration = Duration::from_secs(5);
/// Frames one test client queues each way.
const CLIENT_QUEUE: usize = 1024;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh directory under the target's temp dir.
pub fn temp_dir(what: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "hostile-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An HS256 token with these claims, signed with `secret`.
pub fn token_with(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("token")
}

/// An HS256 token for `user` with [`SECRET`], valid for an hour.
pub fn token(user: &str) -> String {
    token_with(
        SECRET.as_bytes(),
        &json!({"sub": user, "exp": now_secs() + 3600}),
    )
}

/// Polls `check` every 50 ms until it is true; panics with `what` after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `wsgate` process.
pub struct Server {
    child: Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    /// Starts the binary with `--jwt-secret SECRET --api-key API_KEY` and `args`.
    pub async fn start(args: &[&str]) -> Server {
        let mut all = vec!["--jwt-secret", SECRET];
        all.extend_from_slice(args);
        Server::start_raw(&all).await
    }

    /// Starts the binary with only `args` (plus listeners, API key and logging).
    pub async fn start_raw(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--api-key",
                API_KEY,
                "--log-format",
                "json",
                "--log-level",
                &std::env::var("HOSTILE_LOG_LEVEL").unwrap_or_else(|_| "info".into()),
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the wsgate binary");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = std_mpsc::channel();
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["message"] == "Listening." {
                        let _ = tx.send((v["public"].clone(), v["admin"].clone()));
                    }
                }
                let mut log = keep.lock().unwrap_or_else(|e| e.into_inner());
                if log.len() == 200 {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });
        let addrs = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
            .await
            .expect("join");
        let Ok((public, admin)) = addrs else {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "wsgate did not start ({status:?}): {:?}",
                log.lock().unwrap_or_else(|e| e.into_inner())
            );
        };
        let parse = |v: Value| -> SocketAddr {
            v.as_str()
                .and_then(|s| s.parse().ok())
                .expect("address in the Listening log line")
        };
        let server = Server {
            child,
            public: parse(public),
            admin: parse(admin),
            log,
        };
        let admin = server.admin;
        eventually(
            Duration::from_secs(10),
            "/readyz answers 200",
            || async move {
                http_get(admin, "/readyz", &[])
                    .await
                    .is_ok_and(|r| r.status == 200)
            },
        )
        .await;
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `ws://` URL of `/ws` with a query string (may be empty).
    pub fn ws_url(&self, query: &str) -> String {
        if query.is_empty() {
            format!("ws://{}/ws", self.public)
        } else {
            format!("ws://{}/ws?{query}", self.public)
        }
    }

    /// Asserts the process runs and `/healthz` answers 200 on both listeners.
    pub async fn assert_alive(&mut self) {
        assert!(
            self.child.try_wait().expect("try_wait").is_none(),
            "wsgate exited"
        );
        for addr in [self.public, self.admin] {
            let r = http_get(addr, "/healthz", &[]).await.expect("/healthz");
            assert_eq!(r.status, 200, "/healthz on {addr}");
        }
    }

    /// The metrics text.
    pub async fn metrics(&self) -> String {
        let r = http_get(self.admin, "/metrics", &[])
            .await
            .expect("/metrics");
        assert_eq!(r.status, 200);
        r.body
    }

    /// One series' value (`name` or `name{label="v"}` exactly as exposed); 0 if absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics().await, series)
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

    /// A `/proc/<pid>/status` field in its unit (kB for `VmRSS`), e.g. `VmRSS`, `Threads`.
    pub fn proc_status(&self, field: &str) -> u64 {
        proc_status(self.pid(), field)
    }

    /// Open file descriptors of the process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// A normal JSON client with a token for `user`.
    pub async fn client(&self, user: &str) -> Client {
        Client::connect(&self.ws_url(""), Some(&token(user)), None)
            .await
            .expect("client connects")
    }

    /// The API: a request with the key and a JSON body.
    pub async fn api(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = format!("Bearer {API_KEY}");
        http(
            self.admin,
            method,
            path,
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        )
        .await
        .expect("API request")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("--- wsgate log tail ({} lines) ---", log.len());
            for line in log.iter().rev().take(80).rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A `/proc/<pid>/status` field's number.
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The value of one series in Prometheus text; 0 when absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// An HTTP response read by [`http`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends raw request bytes and reads the response until the server closes
/// (the request should say `Connection: close`) or `T` passes.
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(request).await?;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(T, async {
        let mut chunk = [0u8; 8192];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) => return Ok(()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                // A reset after a complete response (the server closed with
                // unread request bytes) still leaves the response readable.
                Err(_) if !buf.is_empty() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    match read {
        Ok(r) => r?,
        Err(_) if !buf.is_empty() => {}
        Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
    }
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> std::io::Result<Response> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head in {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Response {
        status,
        head: head.to_owned(),
        body,
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// One HTTP/1.1 request with `Connection: close`.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw_http(addr, &bytes).await
}

/// `GET path`.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    http(addr, "GET", path, headers, b"").await
}

/// The bytes of a WebSocket upgrade request for `path_query` with extra headers.
pub fn upgrade_request(host: &str, path_query: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("GET {path_query} HTTP/1.1\r\n");
    if !host.is_empty() {
        req.push_str(&format!("host: {host}\r\n"));
    }
    req.push_str(
        "connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// An upgrade attempt's answer: the status, and the response when it was not
/// 101. A `host` among `headers` replaces the default one; an empty `host`
/// value leaves the header out.
pub async fn try_upgrade(server: &Server, path_query: &str, headers: &[(&str, &str)]) -> Response {
    let default_host = server.public.to_string();
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map_or(default_host.as_str(), |(_, v)| *v);
    let extra: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        .copied()
        .collect();
    let bytes = upgrade_request(host, path_query, &extra);
    let mut s = TcpStream::connect(server.public).await.expect("connect");
    s.write_all(&bytes).await.expect("write");
    let head = read_head(&mut s).await.expect("response head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    if status == 101 {
        return Response {
            status,
            head,
            body: String::new(),
        };
    }
    // The connection may stay open (keep-alive): read what Content-Length says.
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut rest = vec![0u8; len];
    let _ = tokio::time::timeout(T, s.read_exact(&mut rest)).await;
    Response {
        status,
        head,
        body: String::from_utf8_lossy(&rest).into_owned(),
    }
}

/// Reads an HTTP head (through the blank line) byte by byte, so nothing after
/// it is consumed.
async fn read_head(s: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    tokio::time::timeout(T, async {
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
            head.push(b[0]);
        }
        Ok::<(), std::io::Error>(())
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// A server frame read by [`RawWs`].
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame with its code (None when it had no payload).
    Close(Option<u16>),
}

/// WebSocket opcodes.
pub const TEXT: u8 = 1;
pub const BINARY: u8 = 2;
pub const CONTINUATION: u8 = 0;
pub const PING: u8 = 9;

/// A WebSocket client written by hand over a raw socket.
pub struct RawWs {
    pub stream: TcpStream,
}

impl RawWs {
    /// Upgrades (asserting 101) with a token for `user` in the query string.
    pub async fn connect(server: &Server, user: &str) -> RawWs {
        RawWs::connect_with(server, &format!("/ws?token={}", token(user)), &[]).await
    }

    /// Upgrades on `path_query` with extra headers, asserting 101.
    pub async fn connect_with(
        server: &Server,
        path_query: &str,
        headers: &[(&str, &str)],
    ) -> RawWs {
        let stream = TcpStream::connect(server.public).await.expect("connect");
        RawWs::upgrade(stream, server, path_query, headers).await
    }

    /// Upgrades an already connected stream.
    pub async fn upgrade(
        mut stream: TcpStream,
        server: &Server,
        path_query: &str,
        headers: &[(&str, &str)],
    ) -> RawWs {
        let req = upgrade_request(&server.public.to_string(), path_query, headers);
        stream.write_all(&req).await.expect("write upgrade");
        let head = read_head(&mut stream).await.expect("upgrade response");
        assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
        RawWs { stream }
    }

    /// Writes one masked frame.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8], fin: bool) {
        let frame = encode_frame(opcode, payload, fin);
        self.stream.write_all(&frame).await.expect("write frame");
    }

    /// Writes a final text frame with a JSON value.
    pub async fn send_json(&mut self, v: &Value) {
        self.send_frame(TEXT, v.to_string().as_bytes(), true).await;
    }

    /// Reads one server frame (unmasked), or None at EOF / error / timeout.
    pub async fn read_frame(&mut self) -> Option<Frame> {
        tokio::time::timeout(T, read_server_frame(&mut self.stream))
            .await
            .ok()
            .flatten()
    }

    /// Reads frames until a JSON text frame with `type` (not `welcome`/pings).
    pub async fn next_json(&mut self) -> Value {
        loop {
            match self.read_frame().await {
                Some(Frame::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON frame");
                    if v["type"] != "welcome" {
                        return v;
                    }
                }
                Some(Frame::Binary(b)) => {
                    let v: Value = rmp_serde::from_slice(&b).expect("MessagePack frame");
                    if v["type"] != "welcome" {
                        return v;
                    }
                }
                Some(Frame::Ping(_) | Frame::Pong(_)) => {}
                other => panic!("expected a data frame, got {other:?}"),
            }
        }
    }

    /// Reads until a close frame and returns its code; None when the socket
    /// ended without one. Data frames before it are skipped.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.read_frame().await? {
                Frame::Close(code) => return code,
                _ => continue,
            }
        }
    }

    /// Whether the connection still works: an application ping gets its pong.
    pub async fn assert_open(&mut self) {
        self.send_json(&json!({"type": "ping", "ref": "still-open"}))
            .await;
        let v = self.next_json().await;
        assert_eq!(v, json!({"type": "pong", "ref": "still-open"}));
    }
}

/// One masked client frame.
pub fn encode_frame(opcode: u8, payload: &[u8], fin: bool) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

async fn read_server_frame(s: &mut TcpStream) -> Option<Frame> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await.ok()?;
    let opcode = h[0] & 0x0f;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b).await.ok()?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).await.ok()?;
        len = u64::from_be_bytes(b);
    }
    assert!(h[1] & 0x80 == 0, "server frames are never masked");
    assert!(len < 64 * 1024 * 1024, "absurd server frame length {len}");
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).await.ok()?;
    Some(match opcode {
        1 => Frame::Text(String::from_utf8(payload).expect("server text is UTF-8")),
        2 => Frame::Binary(payload),
        8 => {
            Frame::Close((payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])))
        }
        9 => Frame::Ping(payload),
        10 => Frame::Pong(payload),
        other => panic!("unexpected opcode {other}"),
    })
}

/// What a [`Client`]'s reader task saw.
#[derive(Debug)]
pub enum Event {
    Frame(Value),
    Closed(Option<u16>),
}

/// A well-behaved client: a reader task answers pings (tungstenite does on
/// read) and hands every data frame over a channel; writes go through `send`.
pub struct Client {
    tx: mpsc::Sender<Message>,
    rx: mpsc::Receiver<Event>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Client {
    /// Connects to `url` with a bearer token and/or an Origin header.
    pub async fn connect(
        url: &str,
        bearer: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let mut req = url.into_client_request()?;
        if let Some(t) = bearer {
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("header"),
            );
        }
        if let Some(o) = origin {
            req.headers_mut()
                .insert("origin", o.parse().expect("header"));
        }
        let (ws, _) = tokio::time::timeout(T, tokio_tungstenite::connect_async(req))
            .await
            .map_err(|_| {
                tokio_tungstenite::tungstenite::Error::Io(std::io::ErrorKind::TimedOut.into())
            })??;
        let (mut sink, mut stream) = ws.split();
        // Bounded both ways: a test reads what it provokes, and sends a few
        // frames at a time (a full queue is a test bug, reported by `send`).
        let (events_tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let (tx, mut out_rx) = mpsc::channel::<Message>(CLIENT_QUEUE);
        let reader = tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                let ev = match msg {
                    Ok(Message::Text(t)) => Event::Frame(
                        serde_json::from_str(t.as_str()).unwrap_or(Value::String(t.to_string())),
                    ),
                    Ok(Message::Binary(b)) => {
                        Event::Frame(rmp_serde::from_slice(&b).unwrap_or(Value::Null))
                    }
                    Ok(Message::Close(f)) => Event::Closed(f.map(|f| u16::from(f.code))),
                    Ok(_) => continue,
                    Err(_) => Event::Closed(None),
                };
                let closed = matches!(ev, Event::Closed(_));
                if events_tx.send(ev).await.is_err() || closed {
                    return;
                }
            }
            let _ = events_tx.send(Event::Closed(None)).await;
        });
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    return;
                }
            }
        });
        let mut client = Client {
            tx,
            rx,
            tasks: vec![reader, writer],
        };
        let welcome = client.next().await;
        assert_eq!(welcome["type"], "welcome", "first frame: {welcome}");
        Ok(client)
    }

    pub fn send(&self, v: &Value) {
        self.send_message(Message::Text(v.to_string().into()));
    }

    pub fn send_message(&self, m: Message) {
        match self.tx.try_send(m) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => panic!("client send queue full"),
        }
    }

    /// The next data frame; panics on close or timeout.
    pub async fn next(&mut self) -> Value {
        match tokio::time::timeout(T, self.rx.recv()).await {
            Ok(Some(Event::Frame(v))) => v,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame of `type`, skipping others.
    pub async fn next_of(&mut self, ty: &str) -> Value {
        loop {
            let v = self.next().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// Waits for the close and returns its code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(T, self.rx.recv()).await {
                Ok(Some(Event::Frame(_))) => continue,
                Ok(Some(Event::Closed(code))) => return code,
                Ok(None) => return None,
                Err(_) => panic!("no close within {T:?}"),
            }
        }
    }

    /// An application ping answered by a pong: the connection works.
    pub async fn assert_pings(&mut self) {
        let r = format!("p{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.send(&json!({"type": "ping", "ref": r}));
        let pong = self.next_of("pong").await;
        assert_eq!(pong["ref"], r.as_str());
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The checks that end every hostile case: the process is alive, `/healthz`
/// answers, and the bystander still gets a pong.
pub async fn assert_unharmed(server: &mut Server, bystander: &mut Client) {
    server.assert_alive().await;
    bystander.assert_pings().await;
}

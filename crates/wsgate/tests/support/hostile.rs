//! The hostile side: [`RawWs`] sends frames no well-behaved library sends
//! (on the client crate's hand-framed layer), [`Peer`] is the bystander that
//! stays connected meanwhile (on the client crate's background client),
//! [`try_upgrade`] probes the upgrade with exact headers, and
//! [`assert_unharmed`] is the check that ends every hostile case.

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};
use tokio::net::TcpStream;
use wsgate_client::raw::{HandWs, Message, Upgrade};
use wsgate_client::{Background, ClientError, Event, Options};

pub use wsgate_client::raw::frame::{encode_frame, Frame, BINARY, CONTINUATION, PING, TEXT};

use super::{token, Response, WsgateProc, T};

/// Frames a [`Peer`] queues each way.
const PEER_QUEUE: usize = 1024;

static NEXT_PING: AtomicU32 = AtomicU32::new(0);

/// An upgrade attempt's answer: the status, and the response head when it
/// was not 101 (the body as `Content-Length` says). A `host` among
/// `headers` replaces the default one; an empty `host` value leaves the
/// header out.
pub async fn try_upgrade(
    server: &WsgateProc,
    path_query: &str,
    headers: &[(&str, &str)],
) -> Response {
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
    let stream = TcpStream::connect(server.public).await.expect("connect");
    let upgrade = HandWs::upgrade(stream, host, path_query, &extra, T)
        .await
        .expect("response head");
    match upgrade {
        Upgrade::Upgraded(_, head) => Response {
            status: 101,
            head,
            headers: Vec::new(),
            body: Vec::new(),
        },
        Upgrade::Refused {
            status,
            head,
            mut stream,
        } => {
            // The connection may stay open (keep-alive): read what
            // Content-Length says, within T.
            let headers: Vec<(String, String)> = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            use tokio::io::AsyncReadExt;
            if !matches!(
                tokio::time::timeout(T, stream.read_exact(&mut body)).await,
                Ok(Ok(_))
            ) {
                body.clear();
            }
            Response {
                status,
                head,
                headers,
                body,
            }
        }
    }
}

/// A WebSocket written frame by frame over a raw socket; every helper
/// panics on what a test did not expect.
pub struct RawWs {
    inner: HandWs,
}

impl RawWs {
    /// Upgrades (asserting 101) with a token for `user` in the query string.
    pub async fn connect(server: &WsgateProc, user: &str) -> RawWs {
        RawWs::connect_with(server, &format!("/ws?token={}", token(user)), &[]).await
    }

    /// Upgrades on `path_query` with extra headers, asserting 101.
    pub async fn connect_with(
        server: &WsgateProc,
        path_query: &str,
        headers: &[(&str, &str)],
    ) -> RawWs {
        let stream = TcpStream::connect(server.public).await.expect("connect");
        RawWs::upgrade(stream, server, path_query, headers).await
    }

    /// Upgrades an already connected stream, asserting 101.
    pub async fn upgrade(
        stream: TcpStream,
        server: &WsgateProc,
        path_query: &str,
        headers: &[(&str, &str)],
    ) -> RawWs {
        let host = server.public.to_string();
        match HandWs::upgrade(stream, &host, path_query, headers, T)
            .await
            .expect("upgrade response")
        {
            Upgrade::Upgraded(inner, _) => RawWs { inner },
            Upgrade::Refused { head, .. } => panic!("not upgraded: {head}"),
        }
    }

    /// The socket, for writes no frame helper covers.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.inner.stream
    }

    /// Writes one masked frame.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8], fin: bool) {
        self.inner
            .send_frame(opcode, payload, fin)
            .await
            .expect("write frame");
    }

    /// Writes a final text frame with a JSON value.
    pub async fn send_json(&mut self, v: &Value) {
        self.send_frame(TEXT, v.to_string().as_bytes(), true).await;
    }

    /// Reads one server frame, or `None` at EOF / reset / timeout. A frame
    /// no server may send (masked, unknown opcode, absurd length) fails the
    /// test.
    pub async fn read_frame(&mut self) -> Option<Frame> {
        match self.inner.read_frame(T).await {
            Ok(frame) => Some(frame),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                panic!("the server sent an invalid frame: {e}")
            }
            Err(_) => None,
        }
    }

    /// Reads frames until a JSON (or MessagePack) data frame that is not
    /// `welcome`; pings and pongs are skipped.
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

    /// Reads until a close frame and returns its code; `None` when the
    /// socket ended without one. Data frames before it are skipped.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            if let Frame::Close(code) = self.read_frame().await? {
                return code;
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

/// A well-behaved client whose reader runs in a task (answering pings), so
/// it stays connected however long the test takes; the bystander of every
/// hostile test.
pub struct Peer {
    inner: Background,
}

impl Peer {
    /// Connects to `url` with a bearer token and/or an Origin header.
    pub async fn connect(
        url: &str,
        bearer: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Peer, ClientError> {
        let mut opts = Options::new(url).timeout(T);
        if let Some(t) = bearer {
            opts = opts.token(t);
        }
        if let Some(o) = origin {
            opts = opts.header("origin", o);
        }
        Ok(Peer {
            inner: Background::connect(opts, PEER_QUEUE).await?,
        })
    }

    /// Queues a JSON frame; a full queue is a test bug and panics.
    pub fn send(&self, v: &Value) {
        self.send_message(Message::Text(v.to_string().into()));
    }

    /// Queues a WebSocket message as is; a full queue panics.
    pub fn send_message(&self, m: Message) {
        self.inner
            .send_message(m)
            .expect("the peer's send queue has room");
    }

    /// The next data frame; panics on close or timeout.
    pub async fn next(&mut self) -> Value {
        match self.inner.next_event(T).await {
            Ok(Event::Frame(v)) => v,
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

    /// Waits for the close and returns its code (frames before it skipped).
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.inner.next_event(T).await {
                Ok(Event::Frame(_)) => continue,
                Ok(Event::Closed(info)) => return info.code,
                Err(ClientError::Timeout) => panic!("no close within {T:?}"),
                Err(_) => return None,
            }
        }
    }

    /// An application ping answered by a pong: the connection works.
    pub async fn assert_pings(&mut self) {
        let r = format!("p{}", NEXT_PING.fetch_add(1, Ordering::Relaxed));
        self.send(&json!({"type": "ping", "ref": r}));
        let pong = self.next_of("pong").await;
        assert_eq!(pong["ref"], r.as_str());
    }
}

/// The checks that end every hostile case: the process is alive, `/healthz`
/// answers on both listeners, and the bystander still gets a pong.
pub async fn assert_unharmed(server: &mut WsgateProc, bystander: &mut Peer) {
    server.assert_alive().await;
    bystander.assert_pings().await;
}

/// A `/proc/<pid>/status` field's number (kB for `VmRSS`).
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

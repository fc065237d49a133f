//! A small Rust client for wsgate (`wsgate.v1`), used by the integration tests
//! and the load generator.
//!
//! What it does:
//! - [`Client::connect`] opens `ws://…/ws` with an optional bearer token,
//!   an optional subprotocol (`wsgate.v1.json` or `wsgate.v1.msgpack`), any
//!   extra headers, and waits for the `welcome` frame ([`Client::welcome`]).
//!   A refused upgrade comes back as [`ClientError::Refused`] with the HTTP
//!   status and the server's JSON body.
//! - [`Client::send_frame`] sends any frame given as a `serde_json::Value`
//!   (encoded as JSON text or as a MessagePack map, by the connection's codec);
//!   [`Client::request`] adds a `ref` when there is none, sends, and waits for
//!   the `reply` (or `pong`) with that `ref`, turning an `error` into
//!   [`ClientError::Server`]. Frames that arrive meanwhile are kept, in order,
//!   for the next read.
//! - [`Client::next_frame`] returns the next decoded [`ServerFrame`];
//!   [`Client::next_message`] skips everything but `message` frames;
//!   [`Client::ack`] acknowledges a direct message; [`Dedupe`] drops replayed
//!   duplicates by id.
//! - [`Client::close`] closes with a code; the close the server sent is kept
//!   and returned by [`Client::wait_closed`] (code `None` when the connection
//!   ended without a close frame).
//!
//! Every read takes a timeout (the connection's [`Options::timeout`] for
//! requests), so a silent server never hangs a caller. Only `ws://` URLs are
//! supported: tests and load generation run against plain TCP.
//!
//! WebSocket pings are answered by the underlying library while the client
//! reads; a client that stops reading also stops answering pings (which is how
//! tests provoke the server's heartbeat timeout).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
pub use wsgate_protocol::{
    Codec, ErrorCode, Kind, MessageFrame, PresenceEvent, Ref, Reply, ServerFrame,
};

/// Timeout for connecting and for each request when none is set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to connect.
#[derive(Debug, Clone)]
pub struct Options {
    /// `ws://host:port/ws`, with any query (`?token=`, `?user=`).
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The subprotocol to offer; `None` offers none (the server uses JSON).
    pub codec: Option<Codec>,
    /// Extra request headers; each replaces a header of the same name.
    pub headers: Vec<(String, String)>,
    /// Limit for the connection and for each [`Client::request`].
    pub timeout: Duration,
    /// A small socket receive buffer, so a client that does not read fills up
    /// quickly (slow-consumer tests).
    pub recv_buffer_bytes: Option<u32>,
}

impl Options {
    /// Options for `url` with no token, no subprotocol and the default timeout.
    pub fn new(url: impl Into<String>) -> Options {
        Options {
            url: url.into(),
            token: None,
            codec: None,
            headers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            recv_buffer_bytes: None,
        }
    }

    /// Sets the bearer token.
    pub fn token(mut self, token: impl Into<String>) -> Options {
        self.token = Some(token.into());
        self
    }

    /// Offers a subprotocol.
    pub fn codec(mut self, codec: Codec) -> Options {
        self.codec = Some(codec);
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Options {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the connection and request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Options {
        self.timeout = timeout;
        self
    }

    /// Sets the socket receive buffer size.
    pub fn recv_buffer_bytes(mut self, bytes: u32) -> Options {
        self.recv_buffer_bytes = Some(bytes);
        self
    }
}

/// The `welcome` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub user: String,
    pub session: String,
    pub node: String,
    pub protocol: String,
    pub ping_interval_ms: u64,
    pub max_message_bytes: u64,
}

/// How the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code the server sent; `None` when the connection ended
    /// without a close frame.
    pub code: Option<u16>,
    /// The close reason, or what ended the connection.
    pub reason: String,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad URL or header: {0}")]
    BadRequest(String),
    #[error("cannot connect: {0}")]
    Io(#[from] std::io::Error),
    #[error("upgrade refused with HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("WebSocket error: {0}")]
    WebSocket(String),
    #[error("timed out")]
    Timeout,
    #[error("connection closed: {0:?}")]
    Closed(CloseInfo),
    #[error("undecodable server frame: {0}")]
    Decode(String),
    #[error("cannot encode the frame: {0}")]
    Encode(String),
    #[error("server error {code}: {message}")]
    Server {
        code: ErrorCode,
        message: String,
        retry_after_ms: Option<u64>,
    },
    #[error("unexpected frame: {0:?}")]
    Unexpected(Box<ServerFrame>),
}

impl ClientError {
    /// The error code, for [`ClientError::Server`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's close code, for [`ClientError::Closed`].
    pub fn close_code(&self) -> Option<u16> {
        match self {
            ClientError::Closed(info) => info.code,
            _ => None,
        }
    }

    /// The HTTP status, for [`ClientError::Refused`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Remembers recently seen message ids, to drop duplicates (a replay after a
/// reconnect, an ack-timeout redelivery).
#[derive(Debug)]
pub struct Dedupe {
    seen: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Dedupe {
    /// Remembers at most `capacity` ids (the oldest are forgotten first).
    pub fn new(capacity: usize) -> Dedupe {
        Dedupe {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// True the first time an id is seen.
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

/// One connection to a wsgate node.
pub struct Client {
    ws: WebSocketStream<TcpStream>,
    codec: Codec,
    subprotocol: Option<String>,
    welcome: Welcome,
    /// Frames read while waiting for a reply, oldest first.
    pending: VecDeque<Value>,
    next_ref: u64,
    timeout: Duration,
    closed: Option<CloseInfo>,
}

fn header_value(text: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(text).map_err(|e| ClientError::BadRequest(e.to_string()))
}

fn ws_error(e: WsError) -> ClientError {
    match e {
        WsError::Http(res) => ClientError::Refused {
            status: res.status().as_u16(),
            body: res
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        },
        WsError::Io(e) => ClientError::Io(e),
        e => ClientError::WebSocket(e.to_string()),
    }
}

async fn handshake(
    opts: &Options,
) -> Result<(WebSocketStream<TcpStream>, Option<String>), ClientError> {
    let mut request = opts
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| ClientError::BadRequest(e.to_string()))?;
    if request.uri().scheme_str() != Some("ws") {
        return Err(ClientError::BadRequest(
            "only ws:// URLs are supported".into(),
        ));
    }
    let host = request
        .uri()
        .host()
        .ok_or_else(|| ClientError::BadRequest("the URL has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = request.uri().port_u16().unwrap_or(80);
    let headers = request.headers_mut();
    if let Some(token) = &opts.token {
        headers.insert(AUTHORIZATION, header_value(&format!("Bearer {token}"))?);
    }
    if let Some(codec) = opts.codec {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, header_value(codec.subprotocol())?);
    }
    for (name, value) in &opts.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ClientError::BadRequest(e.to_string()))?;
        headers.insert(name, header_value(value)?);
    }
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .next()
        .ok_or_else(|| ClientError::BadRequest(format!("cannot resolve {host}")))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(bytes) = opts.recv_buffer_bytes {
        socket.set_recv_buffer_size(bytes)?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let (ws, response) = tokio_tungstenite::client_async_with_config(request, stream, None)
        .await
        .map_err(ws_error)?;
    let subprotocol = response
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((ws, subprotocol))
}

impl Client {
    /// Connects and waits for `welcome`, all within `opts.timeout`.
    pub async fn connect(opts: Options) -> Result<Client, ClientError> {
        let deadline = Instant::now() + opts.timeout;
        let (ws, subprotocol) = timeout_at(deadline, handshake(&opts))
            .await
            .map_err(|_| ClientError::Timeout)??;
        let codec = subprotocol
            .as_deref()
            .and_then(Codec::from_subprotocol)
            .unwrap_or(Codec::Json);
        let mut client = Client {
            ws,
            codec,
            subprotocol,
            welcome: Welcome {
                user: String::new(),
                session: String::new(),
                node: String::new(),
                protocol: String::new(),
                ping_interval_ms: 0,
                max_message_bytes: 0,
            },
            pending: VecDeque::new(),
            next_ref: 0,
            timeout: opts.timeout,
            closed: None,
        };
        match client.read_frame_until(deadline).await? {
            ServerFrame::Welcome {
                user,
                session,
                node,
                protocol,
                ping_interval_ms,
                max_message_bytes,
            } => {
                client.welcome = Welcome {
                    user,
                    session,
                    node,
                    protocol,
                    ping_interval_ms,
                    max_message_bytes,
                };
                Ok(client)
            }
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// The `welcome` frame the server sent first.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The connection's codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The subprotocol the server chose, if it sent one.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// How the connection ended, once it has.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.closed.as_ref()
    }

    /// Encodes and sends one frame.
    pub async fn send_frame(&mut self, frame: &Value) -> Result<(), ClientError> {
        let message = match self.codec {
            Codec::Json => Message::Text(frame.to_string().into()),
            Codec::Msgpack => Message::Binary(
                rmp_serde::to_vec_named(frame)
                    .map_err(|e| ClientError::Encode(e.to_string()))?
                    .into(),
            ),
        };
        self.send_raw(message).await
    }

    /// Sends a WebSocket message as is (malformed input, wrong frame kind).
    pub async fn send_raw(&mut self, message: Message) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.timeout;
        timeout_at(deadline, self.ws.send(message))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(ws_error)
    }

    /// Sends a request and waits for its `reply` (a `pong` for `ping`).
    /// A `ref` is added when the frame has none. Other frames that arrive
    /// meanwhile are kept for the next read.
    pub async fn request(&mut self, mut frame: Value) -> Result<Reply, ClientError> {
        let r#ref = match frame.get("ref") {
            Some(r) => r.clone(),
            None => {
                self.next_ref += 1;
                let r = json!(format!("r{}", self.next_ref));
                if let Some(map) = frame.as_object_mut() {
                    map.insert("ref".into(), r.clone());
                }
                r
            }
        };
        self.send_frame(&frame).await?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let value = timeout_at(deadline, self.read_value())
                .await
                .map_err(|_| ClientError::Timeout)??;
            let answers = value.get("ref") == Some(&r#ref)
                && matches!(
                    value.get("type").and_then(Value::as_str),
                    Some("reply" | "error" | "pong")
                );
            if !answers {
                self.pending.push_back(value);
                continue;
            }
            return match decode_value(value)? {
                ServerFrame::Reply(reply) => Ok(reply),
                ServerFrame::Pong { r#ref } => Ok(Reply::ok(r#ref)),
                ServerFrame::Error {
                    code,
                    message,
                    retry_after_ms,
                    ..
                } => Err(ClientError::Server {
                    code,
                    message,
                    retry_after_ms,
                }),
                other => Err(ClientError::Unexpected(Box::new(other))),
            };
        }
    }

    /// The next frame as a JSON value (MessagePack frames are converted).
    pub async fn next_value(&mut self, timeout: Duration) -> Result<Value, ClientError> {
        if let Some(v) = self.pending.pop_front() {
            return Ok(v);
        }
        tokio::time::timeout(timeout, self.read_value())
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    /// The next decoded server frame.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<ServerFrame, ClientError> {
        let value = self.next_value(timeout).await?;
        decode_value(value)
    }

    /// The next frame for which `want` is true; others are dropped.
    pub async fn next_frame_where(
        &mut self,
        timeout: Duration,
        mut want: impl FnMut(&ServerFrame) -> bool,
    ) -> Result<ServerFrame, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self.next_frame(left).await?;
            if want(&frame) {
                return Ok(frame);
            }
        }
    }

    /// The next `message` frame; other frames are dropped.
    pub async fn next_message(&mut self, timeout: Duration) -> Result<MessageFrame, ClientError> {
        match self
            .next_frame_where(timeout, |f| matches!(f, ServerFrame::Message(_)))
            .await?
        {
            ServerFrame::Message(m) => Ok(m),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Acknowledges a direct message (no `ref`, so the server sends no reply).
    pub async fn ack(&mut self, id: &str) -> Result<(), ClientError> {
        self.send_frame(&json!({"type": "ack", "id": id})).await
    }

    /// Closes with `code` and waits for the server's close; returns it.
    pub async fn close(&mut self, code: u16) -> Result<CloseInfo, ClientError> {
        if self.closed.is_none() {
            let frame = CloseFrame {
                code: code.into(),
                reason: "".into(),
            };
            let deadline = Instant::now() + self.timeout;
            let _ = timeout_at(deadline, self.ws.close(Some(frame))).await;
        }
        self.wait_closed(self.timeout).await
    }

    /// Reads (and drops) frames until the connection ends; returns how.
    pub async fn wait_closed(&mut self, timeout: Duration) -> Result<CloseInfo, ClientError> {
        let deadline = Instant::now() + timeout;
        self.pending.clear();
        loop {
            if let Some(info) = &self.closed {
                return Ok(info.clone());
            }
            match timeout_at(deadline, self.read_value()).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(Ok(_)) => {}
                Ok(Err(ClientError::Closed(info))) => return Ok(info),
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    async fn read_frame_until(&mut self, deadline: Instant) -> Result<ServerFrame, ClientError> {
        let value = timeout_at(deadline, self.read_value())
            .await
            .map_err(|_| ClientError::Timeout)??;
        decode_value(value)
    }

    /// Reads the next data frame from the socket (no timeout: callers add one).
    async fn read_value(&mut self) -> Result<Value, ClientError> {
        loop {
            if let Some(info) = &self.closed {
                return Err(ClientError::Closed(info.clone()));
            }
            let message = match self.ws.next().await {
                None => {
                    self.ended(None, "the connection ended without a close frame");
                    continue;
                }
                Some(Err(e)) => {
                    self.ended(None, &e.to_string());
                    continue;
                }
                Some(Ok(m)) => m,
            };
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| ClientError::Decode(e.to_string()));
                }
                Message::Binary(bytes) => {
                    return rmp_serde::from_slice(&bytes)
                        .map_err(|e| ClientError::Decode(e.to_string()));
                }
                Message::Close(frame) => {
                    let (code, reason) = match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                        None => (None, "close frame without a code".into()),
                    };
                    // Send the close reply the library queued, best effort.
                    let flush = self.ws.flush();
                    let _ = tokio::time::timeout(Duration::from_millis(500), flush).await;
                    self.closed = Some(CloseInfo { code, reason });
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    fn ended(&mut self, code: Option<u16>, reason: &str) {
        if self.closed.is_none() {
            self.closed = Some(CloseInfo {
                code,
                reason: reason.to_owned(),
            });
        }
    }
}

fn decode_value(value: Value) -> Result<ServerFrame, ClientError> {
    let text = value.to_string();
    serde_json::from_value(value).map_err(|e| ClientError::Decode(format!("{e}: {text}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_forgets_the_oldest() {
        let mut d = Dedupe::new(2);
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        assert!(d.first_time("b"));
        assert!(d.first_time("c"));
        assert!(d.first_time("a"), "a was forgotten");
        assert!(!d.first_time("c"));
    }
}

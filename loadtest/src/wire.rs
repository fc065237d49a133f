//! One load-generator connection: how it connects and what goes over the wire.
//!
//! Three targets speak three dialects:
//! - `wsgate`: the wsgate v1 contract (`/ws?user=NAME` in anonymous mode, first
//!   frame `welcome`; frames are JSON text or MessagePack binary maps).
//! - `raw`: a bare fan-out server (the `node-ws-redis` and `go-gorilla-redis`
//!   peers, the built-in ideal server): every text frame reaches every client.
//! - `socketio`: Socket.IO 4 over a plain WebSocket (`0{..}` open, `40`
//!   connect, `42["msg",DATA]` events, `2` ping answered with `3`).
//!
//! Every measured message carries the same payload string,
//! `LT1:<send time, µs since epoch>:<sender>:<seq>:` padded to the requested
//! size. Receivers find it by scanning the frame bytes for the marker, so the
//! hot receive path never fully decodes a frame unless it needs the message id.
//!
//! Each client socket is bound to a chosen 127.0.0.x source address before it
//! connects, so one machine can open more than the ~28k ephemeral ports one
//! source address allows.
//!
//! Connecting goes through [`wsgate_client::raw::Connection`], the same layer
//! the tests' client is built on (source address, small WebSocket buffers,
//! subprotocol). Above it this module keeps its own lean path instead of
//! [`wsgate_client::Client`]: a receiver scans frame bytes for the marker and
//! decodes only the few fields it measures, and senders feed pre-encoded
//! frames and flush once per batch (see docs/benchmarks.md, "Load generator
//! client", for the measured cost of each).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use wsgate_client::raw::Connection;
pub use wsgate_client::raw::Message;
use wsgate_client::{ClientError, Options};

/// Marker that starts every measured payload.
const MARKER: &[u8] = b"LT1:";

/// Which server dialect to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The wsgate v1 contract.
    Wsgate,
    /// Raw fan-out: every text frame reaches every client.
    Raw,
    /// Socket.IO 4 over a plain WebSocket.
    Socketio,
}

/// wsgate subprotocol / frame encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// `wsgate.v1.json`, text frames.
    Json,
    /// `wsgate.v1.msgpack`, binary frames.
    Msgpack,
}

/// Why a connection could not be opened or was lost.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("bad url {0}")]
    BadUrl(String),
    #[error("tcp: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("timed out")]
    Timeout,
    /// The server closed the connection: the close code, when it sent one.
    #[error("closed by server (code {0:?})")]
    Closed(Option<u16>),
    #[error("unexpected first frame: {0}")]
    Handshake(String),
    #[error("encode: {0}")]
    Encode(String),
}

impl WireError {
    /// A short bounded key used to count failures by kind.
    pub fn kind(&self) -> String {
        match self {
            WireError::BadUrl(_) => "bad_url".into(),
            WireError::Io(e) | WireError::Client(ClientError::Io(e)) => io_kind(e),
            WireError::Client(ClientError::Refused { status, .. }) => format!("http_{status}"),
            WireError::Client(ClientError::Timeout) | WireError::Timeout => "timeout".into(),
            WireError::Client(ClientError::Closed(_)) => "closed".into(),
            WireError::Client(ClientError::BadRequest(_)) => "bad_url".into(),
            WireError::Client(ClientError::Encode(_)) => "encode".into(),
            WireError::Client(_) => "websocket".into(),
            WireError::Closed(Some(code)) => format!("close_{code}"),
            WireError::Closed(None) => "closed".into(),
            WireError::Handshake(_) => "handshake".into(),
            WireError::Encode(_) => "encode".into(),
        }
    }
}

fn io_kind(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "refused".into(),
        std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable => {
            "no_source_port".into()
        }
        _ if e.raw_os_error() == Some(24) => "too_many_open_files".into(),
        _ => "io".into(),
    }
}

/// Where and how to connect: one per `--url`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The WebSocket URL as the client requests it (without `user`).
    pub url: String,
    /// Resolved TCP address of the server.
    pub addr: SocketAddr,
}

impl Endpoint {
    /// Parses `url` and resolves its host. For `socketio` a URL without a
    /// `/socket.io/` path gets the standard path and query instead of its own.
    pub async fn resolve(url: &str, target: Target) -> Result<Self, WireError> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| WireError::BadUrl(format!("{url} (only ws:// is supported)")))?;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let url = if target == Target::Socketio && !url.contains("/socket.io/") {
            format!("ws://{authority}/socket.io/?EIO=4&transport=websocket")
        } else {
            url.to_string()
        };
        let host_port = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(host_port.as_str())
            .await?
            .next()
            .ok_or_else(|| WireError::BadUrl(url.clone()))?;
        Ok(Endpoint { url, addr })
    }
}

/// The n-th source address: 127.0.0.1, 127.0.0.2, ... 127.0.0.254, 127.0.1.1, ...
pub fn source_ip(n: usize) -> Ipv4Addr {
    let n = n % (254 * 250);
    Ipv4Addr::new(127, 0, (n / 254) as u8, (n % 254 + 1) as u8)
}

/// Microseconds since the Unix epoch (the clock shared by every process).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// Builds a payload string of at least `size` bytes.
pub fn payload(sender: u64, seq: u64, size: usize) -> String {
    let mut s = format!("LT1:{}:{sender}:{seq}:", now_us());
    while s.len() < size {
        s.push('x');
    }
    s
}

/// Parsed marker fields of a received payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub sent_us: u64,
    pub sender: u64,
    pub seq: u64,
}

/// Finds and parses the payload marker in a frame.
pub fn find_stamp(bytes: &[u8]) -> Option<Stamp> {
    let start = memchr::memmem::find(bytes, MARKER)? + MARKER.len();
    let mut fields = [0u64; 3];
    let mut i = start;
    for field in &mut fields {
        let begin = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            *field = field
                .wrapping_mul(10)
                .wrapping_add(u64::from(bytes[i] - b'0'));
            i += 1;
        }
        if i == begin || bytes.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
    }
    Some(Stamp {
        sent_us: fields[0],
        sender: fields[1],
        seq: fields[2],
    })
}

/// What a received frame means to a scenario.
#[derive(Debug)]
pub enum Event {
    /// A measured message (`id` only when decoding was asked for and present).
    Message { stamp: Stamp, id: Option<String> },
    /// A wsgate `reply` (`id` of the accepted message, when it has one).
    Reply { id: Option<String> },
    /// A wsgate `error` frame.
    Error { code: String },
    /// A Socket.IO ping: the caller must answer with [`Client::sio_pong`].
    SioPing,
    /// Anything else (presence, welcome, pings, ...).
    Other,
}

/// The few fields of a wsgate server frame the load generator reads.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ServerFrame {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    code: Option<String>,
}

/// The WebSocket read and write buffer size: small, so 20k connections
/// stay cheap.
pub const BUFFER_BYTES: usize = 4096;

/// WebSocket settings with small buffers (the ideal server's side).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(BUFFER_BYTES)
        .write_buffer_size(BUFFER_BYTES)
}

/// One open connection.
pub struct Client {
    ws: Connection,
    target: Target,
    codec: Codec,
    /// The user id (wsgate) this connection was opened as.
    pub user: String,
}

/// Opens a connection from `source`, completes the WebSocket upgrade and the
/// target's own opening (wsgate `welcome`, Socket.IO `40`), within `timeout`.
pub async fn connect(
    ep: &Endpoint,
    target: Target,
    codec: Codec,
    source: Ipv4Addr,
    user: String,
    timeout: Duration,
) -> Result<Client, WireError> {
    tokio::time::timeout(timeout, connect_inner(ep, target, codec, source, user))
        .await
        .map_err(|_| WireError::Timeout)?
}

async fn connect_inner(
    ep: &Endpoint,
    target: Target,
    codec: Codec,
    source: Ipv4Addr,
    user: String,
) -> Result<Client, WireError> {
    let url = if target == Target::Wsgate {
        let sep = if ep.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}user={user}", ep.url)
    } else {
        ep.url.clone()
    };
    // The caller bounds the whole connect; this limit is only a backstop.
    let mut opts = Options::new(url)
        .buffer_bytes(BUFFER_BYTES)
        .timeout(Duration::from_secs(3600));
    // 127.0.0.1 is what the kernel picks for a loopback destination anyway,
    // so it is not bound: a bind to port 0 makes the kernel search the whole
    // ephemeral range for a port no socket bound to that address holds
    // (`inet_csk_get_port`), a scan that grows with the connections already
    // open (at 19,000 on one address the generator spent 40 s of CPU in it
    // and the storm measured that, not the server), while a plain connect
    // picks a port by its 4-tuple. Other source addresses must be bound.
    if ep.addr.ip().is_loopback() && source != Ipv4Addr::LOCALHOST {
        opts = opts.bind(source.into());
    }
    if target == Target::Wsgate {
        opts = opts.codec(match codec {
            Codec::Json => wsgate_client::Codec::Json,
            Codec::Msgpack => wsgate_client::Codec::Msgpack,
        });
    }
    let ws = Connection::open_to(ep.addr, &opts).await?;
    let mut client = Client {
        ws,
        target,
        codec,
        user,
    };
    match target {
        Target::Wsgate => {
            let first = client.read_data().await?;
            let frame = client.decode(&first);
            if frame.kind != "welcome" {
                return Err(WireError::Handshake(String::from_utf8_lossy(&first).into()));
            }
        }
        Target::Socketio => {
            let open = client.read_data().await?;
            if !open.starts_with(b"0") {
                return Err(WireError::Handshake(String::from_utf8_lossy(&open).into()));
            }
            client.ws.send(Message::text("40")).await?;
            loop {
                let frame = client.read_data().await?;
                if frame.starts_with(b"40") {
                    break;
                }
                if frame.as_ref() == b"2" {
                    client.ws.send(Message::text("3")).await?;
                }
            }
        }
        Target::Raw => {}
    }
    Ok(client)
}

impl Client {
    /// The dialect this connection speaks.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Reads the next text or binary frame's bytes (control frames are handled
    /// by tungstenite). Cancel-safe.
    async fn read_data(&mut self) -> Result<bytes::Bytes, WireError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(bytes::Bytes::from(t)),
                Some(Ok(Message::Binary(b))) => return Ok(b),
                Some(Ok(Message::Close(frame))) => {
                    return Err(WireError::Closed(frame.map(|f| u16::from(f.code))))
                }
                None => return Err(WireError::Closed(None)),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    fn decode(&self, bytes: &[u8]) -> ServerFrame {
        let parsed = match self.codec {
            Codec::Json => serde_json::from_slice(bytes).ok(),
            Codec::Msgpack => rmp_serde::from_slice(bytes).ok(),
        };
        parsed.unwrap_or_default()
    }

    /// Waits for the next frame and says what it is. `want_id` decodes the
    /// whole wsgate frame of a measured message to get its `id` (for acks).
    /// Cancel-safe: nothing is written.
    pub async fn next_event(&mut self, want_id: bool) -> Result<Event, WireError> {
        let bytes = self.read_data().await?;
        if self.target == Target::Socketio && bytes.as_ref() == b"2" {
            return Ok(Event::SioPing);
        }
        let stamp = find_stamp(&bytes);
        if self.target != Target::Wsgate {
            return Ok(stamp.map_or(Event::Other, |stamp| Event::Message { stamp, id: None }));
        }
        if let (Some(stamp), false) = (stamp, want_id) {
            return Ok(Event::Message { stamp, id: None });
        }
        let frame = self.decode(&bytes);
        Ok(match (frame.kind.as_str(), stamp) {
            ("message", Some(stamp)) => Event::Message {
                stamp,
                id: frame.id,
            },
            ("reply", _) => Event::Reply { id: frame.id },
            ("error", _) => Event::Error {
                code: frame.code.unwrap_or_else(|| "unknown".into()),
            },
            _ => Event::Other,
        })
    }

    /// Answers a Socket.IO ping.
    pub async fn sio_pong(&mut self) -> Result<(), WireError> {
        Ok(self.ws.send(Message::text("3")).await?)
    }

    fn encode(&self, frame: &Value) -> Result<Message, WireError> {
        Ok(match self.codec {
            Codec::Json => Message::text(frame.to_string()),
            Codec::Msgpack => Message::binary(
                rmp_serde::to_vec_named(frame).map_err(|e| WireError::Encode(e.to_string()))?,
            ),
        })
    }

    /// The frame that broadcasts `content` to everyone.
    pub fn broadcast_frame(&self, content: String, reference: u64) -> Result<Message, WireError> {
        match self.target {
            Target::Wsgate => {
                self.encode(&json!({"type": "broadcast", "content": content, "ref": reference}))
            }
            Target::Raw => Ok(Message::text(content)),
            Target::Socketio => Ok(Message::text(format!("42{}", json!(["msg", content])))),
        }
    }

    /// wsgate `publish` to `room`.
    pub fn publish_frame(&self, room: &str, content: String, r: u64) -> Result<Message, WireError> {
        self.encode(&json!({"type": "publish", "room": room, "content": content, "ref": r}))
    }

    /// wsgate `send` (direct message) to user `to`.
    pub fn send_frame(&self, to: &str, content: String, r: u64) -> Result<Message, WireError> {
        self.encode(&json!({"type": "send", "to": to, "content": content, "ref": r}))
    }

    /// wsgate `ack` of a direct message.
    pub fn ack_frame(&self, id: &str) -> Result<Message, WireError> {
        self.encode(&json!({"type": "ack", "id": id}))
    }

    /// Queues a frame without flushing.
    pub async fn feed(&mut self, msg: Message) -> Result<(), WireError> {
        Ok(self.ws.feed(msg).await?)
    }

    /// Flushes queued frames.
    pub async fn flush(&mut self) -> Result<(), WireError> {
        Ok(self.ws.flush().await?)
    }

    /// Joins a wsgate room and waits for the reply.
    pub async fn join(&mut self, room: &str, timeout: Duration) -> Result<(), WireError> {
        let frame = self.encode(&json!({"type": "join", "room": room, "ref": 0}))?;
        self.ws.send(frame).await?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let bytes = tokio::time::timeout(left, self.read_data())
                .await
                .map_err(|_| WireError::Timeout)??;
            let frame = self.decode(&bytes);
            match frame.kind.as_str() {
                "reply" => return Ok(()),
                "error" => return Err(WireError::Handshake(format!("join: {:?}", frame.code))),
                _ => continue,
            }
        }
    }

    /// Closes the connection politely (best effort, bounded: the run is
    /// over, and a server that already went away needs no close).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(1000)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip() {
        let p = payload(7, 42, 64);
        assert!(p.len() >= 64);
        let s = find_stamp(format!("{{\"content\":\"{p}\"}}").as_bytes()).unwrap();
        assert_eq!((s.sender, s.seq), (7, 42));
        assert!(s.sent_us > 0);
        assert!(find_stamp(b"LT1:12:x").is_none());
    }

    #[test]
    fn source_ips_stay_in_loopback() {
        assert_eq!(source_ip(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_ip(254), Ipv4Addr::new(127, 0, 1, 1));
        assert!(source_ip(10_000).is_loopback());
    }
}

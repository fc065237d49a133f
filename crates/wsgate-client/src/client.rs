//! [`Client`]: one connection to a wsgate node, read and written by the
//! caller's task: requests with replies, typed frames, acks, close.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::Message;
use wsgate_protocol::{Codec, MessageFrame, Reply, ServerFrame};

use crate::raw::{codec, Connection};
use crate::{ClientError, CloseInfo, Options};

/// How long a close reply may take to flush once the server's close arrived.
const CLOSE_FLUSH: Duration = Duration::from_millis(500);

/// The `welcome` frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Welcome {
    pub user: String,
    pub session: String,
    pub node: String,
    pub protocol: String,
    pub ping_interval_ms: u64,
    pub max_message_bytes: u64,
}

/// One connection to a wsgate node.
pub struct Client {
    conn: Connection,
    codec: Codec,
    welcome: Welcome,
    /// Frames read while waiting for a reply, oldest first.
    pending: VecDeque<Value>,
    next_ref: u64,
    timeout: Duration,
    closed: Option<CloseInfo>,
}

impl Client {
    /// Connects and waits for `welcome`, all within `opts.timeout`.
    pub async fn connect(opts: Options) -> Result<Client, ClientError> {
        let deadline = Instant::now() + opts.timeout;
        let conn = Connection::open(&opts).await?;
        let codec = conn
            .subprotocol()
            .and_then(Codec::from_subprotocol)
            .unwrap_or(Codec::Json);
        let mut client = Client {
            conn,
            codec,
            welcome: Welcome::default(),
            pending: VecDeque::new(),
            next_ref: 0,
            timeout: opts.timeout,
            closed: None,
        };
        let first = timeout_at(deadline, client.read_value())
            .await
            .map_err(|_| ClientError::Timeout)??;
        match decode_value(first)? {
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
        self.conn.subprotocol()
    }

    /// How the connection ended, once it has.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.closed.as_ref()
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Encodes and sends one frame.
    pub async fn send_frame(&mut self, frame: &Value) -> Result<(), ClientError> {
        let message = codec::encode(self.codec, frame)?;
        self.send_raw(message).await
    }

    /// Sends a WebSocket message as is (malformed input, wrong frame kind).
    pub async fn send_raw(&mut self, message: Message) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.timeout;
        timeout_at(deadline, self.conn.send(message))
            .await
            .map_err(|_| ClientError::Timeout)?
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
            let deadline = Instant::now() + self.timeout;
            // The server may have closed first (the send then fails): either
            // way the close the server sent is what `wait_closed` reads.
            if let Ok(Err(e)) = timeout_at(deadline, self.conn.close(code)).await {
                if !e.is_disconnect() {
                    return Err(e);
                }
            }
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

    /// Reads the next data frame from the socket (no timeout: callers add one).
    async fn read_value(&mut self) -> Result<Value, ClientError> {
        loop {
            if let Some(info) = &self.closed {
                return Err(ClientError::Closed(info.clone()));
            }
            let message = match self.conn.next().await {
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
            if let Some(value) = codec::decode(&message) {
                return value;
            }
            if let Message::Close(frame) = message {
                let (code, reason) = match frame {
                    Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                    None => (None, "close frame without a code".into()),
                };
                // Send the close reply the library queued. Dropped on
                // failure on purpose: the server may already have closed the
                // socket, and the close it sent is the result either way.
                let _ = tokio::time::timeout(CLOSE_FLUSH, self.conn.flush()).await;
                self.ended(code, &reason);
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

/// A frame value as a typed [`ServerFrame`].
pub(crate) fn decode_value(value: Value) -> Result<ServerFrame, ClientError> {
    let text = value.to_string();
    serde_json::from_value(value).map_err(|e| ClientError::Decode(format!("{e}: {text}")))
}

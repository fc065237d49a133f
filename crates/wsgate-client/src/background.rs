//! [`Background`]: a connection read and written by two tasks of its own,
//! so it keeps answering pings (and stays connected) however long its owner
//! is busy elsewhere, and can be read and written from a `select!`.
//!
//! Both directions go through bounded queues of the size given to
//! [`Background::connect`]. Overflow policy: [`Background::send`] never waits
//! and answers [`ClientError::QueueFull`] when the outgoing queue is full; the
//! reader task waits for room in the incoming queue, so an owner that stops
//! reading stops the reads too (and, like a real slow client, stops
//! answering pings). Dropping the handle stops both tasks.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use wsgate_protocol::{Codec, ServerFrame};

use crate::client::decode_value;
use crate::raw::{codec, Connection};
use crate::{ClientError, CloseInfo, Options, Welcome};

/// What the reader task saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A data frame: JSON text, or MessagePack converted to JSON. A text
    /// frame that is not JSON comes as a `Value::String`, an undecodable
    /// binary frame as `Value::Null`.
    Frame(Value),
    /// The connection ended; the last event.
    Closed(CloseInfo),
}

/// A connection served by its own reader and writer tasks.
pub struct Background {
    tx: mpsc::Sender<Message>,
    rx: mpsc::Receiver<Event>,
    codec: Codec,
    welcome: Welcome,
    tasks: [JoinHandle<()>; 2],
}

impl Background {
    /// Connects, starts the tasks with queues of `queue` messages each way,
    /// and waits for `welcome`, all within `opts.timeout`.
    pub async fn connect(opts: Options, queue: usize) -> Result<Background, ClientError> {
        let deadline = tokio::time::Instant::now() + opts.timeout;
        let conn = Connection::open(&opts).await?;
        let codec = conn
            .subprotocol()
            .and_then(Codec::from_subprotocol)
            .unwrap_or(Codec::Json);
        let (ws, _) = conn.into_inner();
        let (mut sink, mut stream) = ws.split();
        let (events, rx) = mpsc::channel(queue.max(1));
        let (tx, mut outgoing) = mpsc::channel::<Message>(queue.max(1));
        let reader = tokio::spawn(async move {
            let end = loop {
                let event = match stream.next().await {
                    None => break closed(None, "the connection ended without a close frame"),
                    Some(Err(e)) => break closed(None, &e.to_string()),
                    Some(Ok(Message::Close(f))) => {
                        break match f {
                            Some(f) => closed(Some(u16::from(f.code)), f.reason.as_str()),
                            None => closed(None, "close frame without a code"),
                        }
                    }
                    Some(Ok(m @ Message::Text(_))) => Event::Frame(match codec::decode(&m) {
                        Some(Ok(v)) => v,
                        _ => {
                            Value::String(m.into_text().map(|t| t.to_string()).unwrap_or_default())
                        }
                    }),
                    Some(Ok(m @ Message::Binary(_))) => Event::Frame(
                        codec::decode(&m)
                            .and_then(Result::ok)
                            .unwrap_or(Value::Null),
                    ),
                    Some(Ok(_)) => continue,
                };
                if events.send(event).await.is_err() {
                    return;
                }
            };
            // The owner may be gone: then nobody is left to tell.
            let _ = events.send(end).await;
        });
        let writer = tokio::spawn(async move {
            while let Some(m) = outgoing.recv().await {
                if sink.send(m).await.is_err() {
                    return;
                }
            }
        });
        let mut client = Background {
            tx,
            rx,
            codec,
            welcome: Welcome::default(),
            tasks: [reader, writer],
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_event(left).await? {
            Event::Frame(v) => match decode_value(v)? {
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
            },
            Event::Closed(info) => Err(ClientError::Closed(info)),
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

    /// Queues one frame, encoded by the connection's codec, without waiting.
    /// [`ClientError::QueueFull`] when the queue is full; a frame queued
    /// after the connection ended is dropped.
    pub fn send(&self, frame: &Value) -> Result<(), ClientError> {
        self.send_message(codec::encode(self.codec, frame)?)
    }

    /// Queues one WebSocket message as is, without waiting.
    pub fn send_message(&self, message: Message) -> Result<(), ClientError> {
        match self.tx.try_send(message) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(ClientError::QueueFull),
        }
    }

    /// The next event; `None` after [`Event::Closed`] was taken. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event within `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Event, ClientError> {
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Some(event)) => Ok(event),
            Ok(None) => Err(ClientError::Closed(CloseInfo {
                code: None,
                reason: "the connection's end was already read".into(),
            })),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn closed(code: Option<u16>, reason: &str) -> Event {
    Event::Closed(CloseInfo {
        code,
        reason: reason.to_owned(),
    })
}

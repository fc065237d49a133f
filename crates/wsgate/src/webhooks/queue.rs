//! The two sides of the event queue, as the rest of the node sees them:
//! [`EventSink`] (messages are written to it) and [`EventQueue`] (the
//! delivery worker reads, acknowledges, and asks whether a `user.offline` is
//! still due). Transitions are not written through here: they are queued
//! where they are decided (the memory broker, or the Redis registry scripts).

use std::time::Duration;

use async_trait::async_trait;
use wsgate_protocol::MessageFrame;

use crate::redis::RedisError;

/// One queued event: its queue key (a stream entry id, or a sequence number
/// in memory) and its JSON text.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub json: String,
}

/// Events that wait on the queue and are not held by this node's worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backlog {
    pub waiting: u64,
    /// When the oldest of them was queued (ms), if any.
    pub oldest_ms: Option<u64>,
}

/// Why the queue could not answer.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the event stream is unavailable")]
    Redis(#[from] RedisError),
    #[error("unexpected reply from the event stream: {0}")]
    Reply(&'static str),
}

/// Where accepted messages are written, for `message.room` and
/// `message.direct`. Never blocks: a full queue drops and counts.
pub trait EventSink: Send + Sync {
    /// An accepted message (its frame as sent to clients).
    fn message(&self, frame: &MessageFrame);
}

/// The delivery worker's side of the queue.
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Up to `max` events not read before, oldest first, waiting at most
    /// `wait` while there are none.
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<Entry>, QueueError>;

    /// The events are done with (delivered, or dropped and counted).
    async fn ack(&self, keys: &[String]) -> Result<(), QueueError>;

    /// Whether the `user.offline` event `event_id` of `user`, its delay
    /// over, is to be sent: false when the user came back within the delay
    /// (that reconnect sent no `user.online` either). In Redis, asking again
    /// answers the same (a redelivery after a crash).
    async fn offline_due(&self, user: &str, event_id: &str) -> Result<bool, QueueError>;

    /// What waits beyond what this node has read.
    async fn backlog(&self) -> Result<Backlog, QueueError>;
}

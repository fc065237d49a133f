//! Inboxes: where direct messages wait until a connection of the recipient
//! acks them (contract 5.2, at-least-once).
//!
//! Every direct message is stored before the sender's reply, whether the
//! recipient is online or not, and removed only by an ack. An inbox keeps at
//! most `inbox-max` messages (the oldest are dropped first, counted as
//! `trimmed`) and expires `inbox-ttl` after its last store (its messages are
//! counted as `expired`). Order is insertion order, so per-sender order holds.
//!
//! Implementations: [`memory::MemoryInbox`] (standalone) and
//! `redis::ListInbox` (a Redis list per user, see `crate::redis`).

pub mod memory;
pub mod redis;

use async_trait::async_trait;
use wsgate_protocol::MessageFrame;

/// Why an inbox operation failed. Nothing was stored or removed.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("inbox storage unavailable: {0}")]
    Unavailable(String),
    #[error("inbox operation timed out")]
    Timeout,
    #[error("inbox storage unavailable")]
    Redis(#[from] crate::redis::RedisError),
}

/// A message removed by an ack: who sent it, for the delivery receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub id: String,
    pub from: String,
}

/// Durable per-user storage of direct messages.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Appends a message to `user`'s inbox; returns how many old messages were
    /// trimmed to stay within `inbox-max`.
    async fn store(&self, user: &str, message: &MessageFrame) -> Result<u64, InboxError>;

    /// The user's unacked messages, oldest first.
    async fn pending(&self, user: &str) -> Result<Vec<MessageFrame>, InboxError>;

    /// Removes the messages with these ids; returns the ones that were there.
    async fn ack(&self, user: &str, ids: &[String]) -> Result<Vec<Acked>, InboxError>;

    /// Starts background work (expiry sweeps). Called once.
    fn start(&self) {}
}

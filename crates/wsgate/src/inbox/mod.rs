//! Inboxes: where direct messages wait until a connection of the recipient
//! acks them (contract 5.2, at-least-once).
//!
//! Every direct message is stored before the sender's reply, whether the
//! recipient is online or not, and removed only by an ack (or, with
//! `--inbox-overflow drop-oldest`, by a newer message, counted as `trimmed`).
//! An inbox expires `inbox-ttl` after its last store (its messages are
//! counted as `expired`). Order is store order, so per-sender order holds.
//!
//! Limits ([`InboxLimits`]), checked by the store itself, atomically: at most
//! `inbox-max` messages and `inbox-max-bytes` (each message's size as
//! stored, [`entry`]), and one sender at most `inbox-max-per-sender` of them
//! (server API sends, [`Sender::Api`], are exempt). A store past a limit is
//! refused ([`Refusal`], `inbox_full` on the wire) and stores nothing, so with
//! the default `reject` policy nothing whose sender got `ok` is ever evicted.
//!
//! Idempotency: a message id already in the inbox from the same sender is a
//! [`Stored::Duplicate`] (nothing stored again); from another sender it is
//! refused ([`InboxError::IdTaken`]). Ids the gateway assigns are UUIDv7 and
//! never collide; clients may choose their own (`send` with `id`).
//!
//! Reads are bounded: the replay reads [`Inbox::page`]s of at most
//! [`PAGE_MESSAGES`] messages and [`PAGE_BYTES`] bytes after a cursor, and
//! ack redelivery reads only the ids it waits for ([`Inbox::get`]).
//!
//! Implementations: [`memory::MemoryInbox`] (standalone) and
//! [`redis::ListInbox`] (Redis, see `crate::redis::scripts::inbox`).

pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;
use wsgate_protocol::MessageFrame;

use crate::config::Config;

/// Most messages in one replay page.
pub const PAGE_MESSAGES: usize = 64;
/// Most bytes (as stored) in one replay page; a page holds at least one
/// message, so a page is at most this or one message, whichever is larger.
pub const PAGE_BYTES: usize = 256 * 1024;

pub use crate::config::InboxOverflow as Overflow;

/// The limits of one user's inbox (contract 5.2), from the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxLimits {
    /// `--inbox-max`: messages.
    pub max: usize,
    /// `--inbox-max-bytes`: bytes, each message counted as stored.
    pub max_bytes: usize,
    /// `--inbox-max-per-sender`: messages from one sender (not the server API).
    pub max_per_sender: usize,
    /// `--inbox-overflow`.
    pub overflow: Overflow,
    /// `--inbox-ttl`: expiry after the last store.
    pub ttl: Duration,
}

impl InboxLimits {
    pub fn from_config(config: &Config) -> InboxLimits {
        InboxLimits {
            max: config.inbox_max,
            max_bytes: config.inbox_max_bytes,
            max_per_sender: config.inbox_max_per_sender,
            overflow: config.inbox_overflow,
            ttl: config.inbox_ttl,
        }
    }
}

/// Who stores a message: the quota and idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender<'a> {
    /// A connected user (their id): held to `inbox-max-per-sender`.
    User(&'a str),
    /// The server API, whatever `from` it names: exempt from the sender share.
    Api,
}

impl Sender<'_> {
    /// The key the store keeps for this sender. User ids are
    /// `[A-Za-z0-9_.:@-]`, so `!api` is nobody's id and `|` ends the key.
    pub fn key(&self) -> &str {
        match self {
            Sender::User(u) => u,
            Sender::Api => "!api",
        }
    }

    /// Whether the sender share applies.
    pub fn has_share(&self) -> bool {
        matches!(self, Sender::User(_))
    }
}

/// Which limit refused a store (`wsgate_inbox_refused_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `inbox-max` messages are waiting.
    Full,
    /// This sender has `inbox-max-per-sender` messages waiting.
    SenderShare,
    /// The message would take the inbox past `inbox-max-bytes`.
    Bytes,
}

impl Refusal {
    /// The metric label and the reason given to the sender.
    pub const fn as_str(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::SenderShare => "sender_share",
            Refusal::Bytes => "bytes",
        }
    }
}

/// Why an inbox operation failed. Nothing was stored or removed, except that
/// after the storage variants the store may or may not have happened.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("the recipient's inbox is full ({})", .0.as_str())]
    Refused(Refusal),
    #[error("another sender already used this message id for this user")]
    IdTaken,
    #[error("Redis is near its maxmemory: stores are refused to keep room for cluster state")]
    RedisMemory,
    #[error("inbox storage unavailable: {0}")]
    Unavailable(String),
    #[error("inbox operation timed out")]
    Timeout,
    /// A new message is stored on the primary, but `WAIT` did not see it on
    /// `--redis-wait-replicas` replicas in time: not confirmed (the sender
    /// retries with the same id), though the recipient may be sent it live.
    #[error("the store was not confirmed by enough replicas")]
    Unconfirmed(#[source] crate::redis::RedisError),
    #[error("inbox storage unavailable")]
    Redis(#[from] crate::redis::RedisError),
}

/// What a store did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored; this many older messages were dropped to make room
    /// (`drop-oldest` only).
    New { trimmed: u64 },
    /// The same sender already stored this id, unacked: nothing changed.
    Duplicate,
}

/// A message removed by an ack: who sent it, for the delivery receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub id: String,
    pub from: String,
}

/// One page of an inbox, oldest first.
#[derive(Debug, Default)]
pub struct Page {
    pub messages: Vec<MessageFrame>,
    /// The cursor of the next page, or `None` when this was the last.
    pub next: Option<u64>,
}

/// Durable per-user storage of direct messages.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Stores a message in `user`'s inbox within its limits.
    async fn store(
        &self,
        user: &str,
        sender: Sender<'_>,
        message: &MessageFrame,
    ) -> Result<Stored, InboxError>;

    /// The unacked messages after cursor `after` (0 = from the start),
    /// oldest first, at most [`PAGE_MESSAGES`] and [`PAGE_BYTES`].
    async fn page(&self, user: &str, after: u64) -> Result<Page, InboxError>;

    /// The still-unacked messages among `ids` (ack redelivery), in `ids` order.
    async fn get(&self, user: &str, ids: &[String]) -> Result<Vec<MessageFrame>, InboxError>;

    /// Removes the messages with these ids; returns the ones that were there.
    async fn ack(&self, user: &str, ids: &[String]) -> Result<Vec<Acked>, InboxError>;

    /// Starts background work (expiry sweeps, the Redis memory watch). Called once.
    fn start(&self) {}
}

/// A message as stored: `sender|msgpack(message)` (with `replay` false).
/// Its length is what `inbox-max-bytes` counts, in both implementations.
pub fn entry(sender: Sender<'_>, message: &MessageFrame) -> Result<Vec<u8>, InboxError> {
    let mut message = message.clone();
    message.replay = false;
    let body =
        rmp_serde::to_vec_named(&message).map_err(|e| InboxError::Unavailable(e.to_string()))?;
    let key = sender.key();
    let mut out = Vec::with_capacity(key.len() + 1 + body.len());
    out.extend_from_slice(key.as_bytes());
    out.push(b'|');
    out.extend_from_slice(&body);
    Ok(out)
}

/// The message of a stored entry, or `None` when it does not decode.
pub fn decode_entry(entry: &[u8]) -> Option<MessageFrame> {
    let bar = entry.iter().position(|b| *b == b'|')?;
    rmp_serde::from_slice(&entry[bar + 1..]).ok()
}

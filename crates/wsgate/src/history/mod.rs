//! Room history: every room message gets its place (an `offset` within the
//! room's `epoch`), the last `history-size` are kept for `history-ttl` after
//! the room's last message, and a member that comes back recovers what it
//! missed (contract 5.4).
//!
//! The [`History`] trait is everything the node needs:
//! - [`History::publish`] gives a room message the next offset, keeps it, and
//!   publishes it to every node with a member of the room, *the publishing
//!   node included*, as one atomic step. Offsets therefore follow publish
//!   order exactly, and every node delivers a room's messages in offset
//!   order: there is one path, the bus (see [`wsgate_protocol::bus`] for the
//!   sequenced payload);
//! - [`History::read`] returns the room's position and a bounded page of the
//!   kept messages after an offset. A room without history gets its epoch
//!   on the first read, so a `join` reply always names an epoch a client can
//!   recover from later, even before the first message.
//!
//! Implementations: [`memory::MemoryHistory`] (standalone, and nodes sharing
//! a [`crate::cluster::memory::MemoryBus`]) and [`redis::StreamHistory`] (a
//! Redis stream per room, written by the same script that publishes).
//!
//! [`recoverable`] is the one rule deciding whether a `since` can be served.

pub mod memory;
pub mod redis;

use async_trait::async_trait;
use wsgate_protocol::bus::Envelope;
use wsgate_protocol::{MessageFrame, Position};

/// Most messages one history read returns.
pub const PAGE_MAX: usize = 100;

/// Why the history could not answer. After [`HistoryError::Redis`] a
/// publish may or may not have happened (the contract's `unavailable`).
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("room history unavailable")]
    Redis(#[from] crate::redis::RedisError),
    #[error("the message cannot be encoded for the history")]
    Encode(#[source] rmp_serde::encode::Error),
    #[error("only room messages have a history")]
    NotARoomMessage,
}

/// One read of a room's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The room's position when it was read: its epoch and the offset of its
    /// last message (0 before any).
    pub position: Position,
    /// Kept messages after the requested offset, oldest first, each with its
    /// `offset` and `epoch` set (and `replay: false`).
    pub messages: Vec<MessageFrame>,
}

/// Where room messages get their offsets and wait for recovery.
#[async_trait]
pub trait History: Send + Sync {
    /// Gives a room message (`envelope.event` is a room message without an
    /// offset) the room's next offset, keeps it, and publishes it to every
    /// node with a member of the room, this one included. Returns its
    /// position. On an error nothing was published.
    async fn publish(&self, room: &str, envelope: &Envelope) -> Result<Position, HistoryError>;

    /// The room's position and at most `limit` (capped at [`PAGE_MAX`]) kept
    /// messages with an offset above `after`, oldest first. Starts the
    /// room's epoch when it has none.
    async fn read(&self, room: &str, after: u64, limit: usize) -> Result<Page, HistoryError>;

    /// Starts background work (expiry sweeps). Called once.
    fn start(&self) {}
}

/// Whether a client at `since` can recover from `page`, the first read after
/// `since.offset`: the epoch matches, the client is not ahead of the room,
/// at most `history_size` messages are missing, and the history still holds
/// the first of them (or nothing is missing). Contract 5.4.
pub fn recoverable(since: &Position, page: &Page, history_size: usize) -> bool {
    let now = &page.position;
    if now.epoch != since.epoch || since.offset > now.offset {
        return false;
    }
    let missed = now.offset - since.offset;
    if missed == 0 {
        return true;
    }
    missed <= history_size as u64
        && page.messages.first().and_then(|m| m.offset) == Some(since.offset + 1)
}

/// A fresh epoch: 16 hex digits, random.
pub fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsgate_protocol::Kind;

    fn message(offset: u64) -> MessageFrame {
        MessageFrame {
            id: format!("m{offset}"),
            kind: Kind::Room,
            from: "a".into(),
            to: None,
            room: Some("r".into()),
            content: serde_json::Value::Null,
            time: 0,
            replay: false,
            offset: Some(offset),
            epoch: Some("e".into()),
        }
    }

    fn page(epoch: &str, offset: u64, first: Option<u64>) -> Page {
        Page {
            position: Position {
                epoch: epoch.into(),
                offset,
            },
            messages: first.map(message).into_iter().collect(),
        }
    }

    fn at(epoch: &str, offset: u64) -> Position {
        Position {
            epoch: epoch.into(),
            offset,
        }
    }

    #[test]
    fn recovery_rule() {
        // Nothing missed: recovered, even with no history kept at all.
        assert!(recoverable(&at("e", 5), &page("e", 5, None), 0));
        assert!(recoverable(&at("e", 0), &page("e", 0, None), 100));
        // Missed 3, all kept.
        assert!(recoverable(&at("e", 5), &page("e", 8, Some(6)), 100));
        // Missed 3 but the window holds 2.
        assert!(!recoverable(&at("e", 5), &page("e", 8, Some(6)), 2));
        // The first missed one was trimmed.
        assert!(!recoverable(&at("e", 5), &page("e", 8, Some(7)), 100));
        assert!(!recoverable(&at("e", 5), &page("e", 8, None), 100));
        // Another epoch, or a client ahead of the room.
        assert!(!recoverable(&at("x", 5), &page("e", 5, None), 100));
        assert!(!recoverable(&at("e", 9), &page("e", 8, None), 100));
        // history-size 0 and something missed.
        assert!(!recoverable(&at("e", 5), &page("e", 6, Some(6)), 0));
    }

    #[test]
    fn epochs_differ() {
        let a = new_epoch();
        assert_eq!(a.len(), 16);
        assert_ne!(a, new_epoch());
    }
}

//! The cluster bus envelope: what one node publishes for others over Redis
//! pub/sub (or hands over in memory in standalone mode).
//!
//! Envelopes are MessagePack maps with named fields, encoded once per publish.
//! `origin` is the publishing node's instance ID: a node skips envelopes it sent
//! itself on shared channels (room, broadcast), because it delivered them
//! locally already.

use serde::{Deserialize, Serialize};

use crate::frame::{Kind, MessageFrame, PresenceEvent};

/// One bus message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The instance ID of the node that published it.
    pub origin: String,
    /// What happened.
    pub event: BusEvent,
}

/// The events nodes exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum BusEvent {
    /// A message for the local connections of `message.to` (direct), of
    /// `message.room` (room) or for every local connection (broadcast).
    /// `accepted_ms` is when the first node accepted it, for latency metrics.
    Message {
        message: MessageFrame,
        accepted_ms: u64,
    },
    /// A user joined or left a room (cluster-wide membership changed).
    Presence {
        room: String,
        event: PresenceEvent,
        user: String,
    },
    /// Typing indication to a user or to a room.
    Typing {
        from: String,
        to: Option<String>,
        room: Option<String>,
    },
    /// A delivery receipt for the connections of `to` (the original sender).
    Receipt { to: String, id: String, by: String },
    /// Close every local connection of `user` with `code`.
    Disconnect { user: String, code: u16 },
}

impl BusEvent {
    /// The message kind, when the event is a message.
    pub fn kind(&self) -> Option<Kind> {
        match self {
            BusEvent::Message { message, .. } => Some(message.kind),
            _ => None,
        }
    }
}

/// Why a bus payload could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("invalid bus envelope: {0}")]
pub struct EnvelopeError(#[from] rmp_serde::decode::Error);

impl Envelope {
    /// Encodes the envelope (MessagePack, named fields).
    pub fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec_named(self)
    }

    /// Decodes an envelope; never panics on any input, and never recurses
    /// deeper than [`Envelope::MAX_DEPTH`] (content is at most
    /// [`crate::codec::MAX_DEPTH`] deep, plus the envelope's own maps).
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
        de.set_max_depth(Self::MAX_DEPTH);
        Ok(Envelope::deserialize(&mut de)?)
    }

    /// Deepest nesting a bus payload may have.
    pub const MAX_DEPTH: usize = crate::codec::MAX_DEPTH + 16;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let env = Envelope {
            origin: "n1".into(),
            event: BusEvent::Receipt {
                to: "alice".into(),
                id: "m1".into(),
                by: "bob".into(),
            },
        };
        let bytes = env.encode().unwrap();
        assert_eq!(Envelope::decode(&bytes).unwrap(), env);
        assert!(Envelope::decode(b"\xc1garbage").is_err());
        let mut deep = b"\x82\xa6origin\xa2n1\xa5event".to_vec();
        deep.extend(std::iter::repeat_n(0x91u8, 100_000));
        assert!(Envelope::decode(&deep).is_err());
        assert!(Envelope::decode(&[]).is_err());
    }
}

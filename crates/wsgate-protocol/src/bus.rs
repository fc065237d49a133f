//! The cluster bus envelope: what one node publishes for others over Redis
//! pub/sub (or hands over in memory in standalone mode).
//!
//! An envelope says where it goes ([`Route`]) and what happens there
//! ([`BusEvent`]): almost always a [`ServerFrame`] to write to the local
//! connections on that route, exactly the frame the publishing node wrote to
//! its own. So an event is built once, by the node that accepted it, and
//! every node (the publisher for its local connections, the others from the
//! bus) delivers it the same way.
//!
//! Envelopes are MessagePack maps with named fields, encoded once per publish.
//! `origin` is the publishing node's instance ID: a node skips envelopes it sent
//! itself on shared channels (room, broadcast), because it delivered them
//! locally already.

use serde::{Deserialize, Serialize};

use crate::frame::{Kind, ServerFrame};

/// Who receives an event: the connections of one user, the member
/// connections of one room, or every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", content = "name", rename_all = "snake_case")]
pub enum Route {
    /// The connections of this user (on the bus: the nodes holding one).
    User(String),
    /// The member connections of this room (the nodes with a member).
    Room(String),
    /// Every connection (every node).
    Broadcast,
}

/// One bus message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The instance ID of the node that published it.
    pub origin: String,
    /// Where it goes.
    pub route: Route,
    /// What happens there.
    pub event: BusEvent,
}

/// What happens to the connections on a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum BusEvent {
    /// Write this frame to them. For a `message` frame, `accepted_ms` is when
    /// the first node accepted it (for the delivery-latency metric).
    Frame {
        frame: ServerFrame,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accepted_ms: Option<u64>,
    },
    /// Close them with this WebSocket close code.
    Disconnect { code: u16 },
}

impl BusEvent {
    /// The message kind, when the event carries a `message` frame.
    pub fn kind(&self) -> Option<Kind> {
        match self {
            BusEvent::Frame {
                frame: ServerFrame::Message(m),
                ..
            } => Some(m.kind),
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
            route: Route::User("alice".into()),
            event: BusEvent::Frame {
                frame: ServerFrame::Receipt {
                    id: "m1".into(),
                    by: "bob".into(),
                    status: "delivered".into(),
                },
                accepted_ms: None,
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

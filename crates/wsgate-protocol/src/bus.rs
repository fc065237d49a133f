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
//! locally already, except *sequenced* room messages. `sent_ms` is when the
//! publishing node handed the envelope to the bus: the reading node's
//! `wsgate_bus_lag_seconds` is its own clock minus that.
//!
//! A sequenced payload is how a room message travels once the room's history
//! has given it its place (contract 5.4): the history script in Redis (or the
//! memory history in standalone mode) stores the envelope and publishes it
//! prefixed with its position, `#` EPOCH `:` OFFSET `:` ENVELOPE (EPOCH
//! without `:`, OFFSET in decimal). An envelope is a MessagePack map, which
//! never starts with `#` (a positive fixint), so both decode through
//! [`Envelope::decode`]. Every node, the publishing one included, delivers a
//! sequenced message only from the bus, so each node sees one room's
//! messages in offset order.

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
    /// When the publishing node handed it to the bus (ms since the epoch),
    /// for `wsgate_bus_lag_seconds`. Absent in envelopes of older nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_ms: Option<u64>,
}

/// What happens to the connections on a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "almost every event is a frame; boxing it would add an allocation to each"
)]
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

    /// True for a room message that has its place in the room's history:
    /// the bus delivers it to every node, its origin included.
    pub fn is_sequenced(&self) -> bool {
        matches!(
            self,
            BusEvent::Frame {
                frame: ServerFrame::Message(m),
                ..
            } if m.offset.is_some()
        )
    }
}

/// Why a bus payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("invalid bus envelope: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("invalid sequenced bus payload: {0}")]
    Sequenced(&'static str),
}

/// First byte of a sequenced payload.
pub const SEQUENCED_MARK: u8 = b'#';

impl Envelope {
    /// Encodes the envelope (MessagePack, named fields).
    pub fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec_named(self)
    }

    /// Decodes an envelope; never panics on any input, and never recurses
    /// deeper than [`Envelope::MAX_DEPTH`] (content is at most
    /// [`crate::codec::MAX_DEPTH`] deep, plus the envelope's own maps).
    ///
    /// A sequenced payload (see the module docs) decodes to its room message
    /// with `epoch` and `offset` set from the prefix.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        match bytes.split_first() {
            Some((&SEQUENCED_MARK, rest)) => Self::decode_sequenced(rest),
            _ => Self::decode_plain(bytes),
        }
    }

    fn decode_plain(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
        de.set_max_depth(Self::MAX_DEPTH);
        Ok(Envelope::deserialize(&mut de)?)
    }

    fn decode_sequenced(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let bad = EnvelopeError::Sequenced;
        let mut parts = bytes.splitn(3, |b| *b == b':');
        let (Some(epoch), Some(offset), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("missing `:` separator"));
        };
        if epoch.is_empty() || epoch.len() > crate::Position::MAX_EPOCH_BYTES {
            return Err(bad("epoch of 1-64 bytes expected"));
        }
        let epoch = std::str::from_utf8(epoch).map_err(|_| bad("epoch is not UTF-8"))?;
        let offset: u64 = std::str::from_utf8(offset)
            .ok()
            .filter(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|o| o.parse().ok())
            .filter(|o| *o > 0)
            .ok_or(bad("offset is not a positive decimal integer"))?;
        let mut env = Self::decode_plain(body)?;
        match (&env.route, &mut env.event) {
            (
                Route::Room(room),
                BusEvent::Frame {
                    frame: ServerFrame::Message(message),
                    ..
                },
            ) if message.kind == Kind::Room && message.room.as_ref() == Some(room) => {
                message.epoch = Some(epoch.to_owned());
                message.offset = Some(offset);
                Ok(env)
            }
            _ => Err(bad("only room messages are sequenced")),
        }
    }

    /// The prefix of a sequenced payload; the envelope's bytes follow it.
    /// (The Redis history script builds the same bytes in Lua.)
    pub fn sequenced_prefix(epoch: &str, offset: u64) -> Vec<u8> {
        format!("#{epoch}:{offset}:").into_bytes()
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
            sent_ms: Some(7),
        };
        let bytes = env.encode().unwrap();
        assert_eq!(Envelope::decode(&bytes).unwrap(), env);
        assert!(Envelope::decode(b"\xc1garbage").is_err());
        let mut deep = b"\x82\xa6origin\xa2n1\xa5event".to_vec();
        deep.extend(std::iter::repeat_n(0x91u8, 100_000));
        assert!(Envelope::decode(&deep).is_err());
        assert!(Envelope::decode(&[]).is_err());
    }

    fn room_message() -> Envelope {
        Envelope {
            origin: "n1".into(),
            route: Route::Room("lobby".into()),
            event: BusEvent::Frame {
                frame: ServerFrame::Message(crate::MessageFrame {
                    id: "m1".into(),
                    kind: Kind::Room,
                    from: "alice".into(),
                    to: None,
                    room: Some("lobby".into()),
                    content: serde_json::json!({"t": "hi"}),
                    time: 1,
                    replay: false,
                    offset: None,
                    epoch: None,
                }),
                accepted_ms: Some(1),
            },
            sent_ms: None,
        }
    }

    #[test]
    fn sequenced_payloads_carry_the_position() {
        let env = room_message();
        assert!(!env.event.is_sequenced());
        let body = env.encode().unwrap();
        let mut bytes = Envelope::sequenced_prefix("e1f0", 42);
        bytes.extend(&body);
        let got = Envelope::decode(&bytes).unwrap();
        assert!(got.event.is_sequenced());
        let BusEvent::Frame {
            frame: ServerFrame::Message(message),
            ..
        } = got.event
        else {
            panic!("not a message");
        };
        assert_eq!(message.offset, Some(42));
        assert_eq!(message.epoch.as_deref(), Some("e1f0"));

        for prefix in [
            "#e:0:",
            "#e:-1:",
            "#e:x:",
            "#:1:",
            "#e:1",
            "#e::",
            "#e:99999999999999999999999:",
        ] {
            let mut bad = prefix.as_bytes().to_vec();
            bad.extend(&body);
            assert!(Envelope::decode(&bad).is_err(), "{prefix}");
        }
        let receipt = Envelope {
            origin: "n1".into(),
            route: Route::User("a".into()),
            event: BusEvent::Frame {
                frame: ServerFrame::Receipt {
                    id: "m".into(),
                    by: "b".into(),
                    status: "delivered".into(),
                },
                accepted_ms: None,
            },
            sent_ms: None,
        };
        let mut bad = Envelope::sequenced_prefix("e", 1);
        bad.extend(receipt.encode().unwrap());
        assert!(Envelope::decode(&bad).is_err(), "only room messages");
        let mut other_room = room_message();
        other_room.route = Route::Room("elsewhere".into());
        let mut bad = Envelope::sequenced_prefix("e", 1);
        bad.extend(other_room.encode().unwrap());
        assert!(Envelope::decode(&bad).is_err(), "the route's own room");
        let mut nested = Envelope::sequenced_prefix("e", 1);
        nested.extend(Envelope::sequenced_prefix("e", 2));
        nested.extend(&body);
        assert!(Envelope::decode(&nested).is_err(), "one prefix only");
    }
}

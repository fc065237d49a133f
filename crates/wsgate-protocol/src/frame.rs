//! Frames: what a client sends and what the server sends (contract section 4).
//!
//! Client frames are decoded by [`crate::codec::decode_client`] into a
//! [`ClientRequest`]; server frames are plain `Serialize` types, encoded by
//! [`crate::codec::encode_server`] once per codec.

use serde::{Deserialize, Serialize};

/// Application content: any JSON value (a MessagePack value on msgpack
/// connections, mapped onto the same data model).
pub type Content = serde_json::Value;

/// A client's request reference, echoed in the reply or error: a string or a
/// number of at most [`Ref::MAX_BYTES`] bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ref {
    /// A string reference.
    Str(String),
    /// A numeric reference.
    Num(serde_json::Number),
}

impl Ref {
    /// Longest accepted reference, in bytes (of the string, or of the number's text).
    pub const MAX_BYTES: usize = 64;
}

/// The kind of a `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// To every connection of one user, stored in their inbox until acked.
    Direct,
    /// To every member connection of a room, live, and kept in the room's
    /// history for recovery.
    Room,
    /// To every connection in the cluster, live only.
    Broadcast,
}

impl Kind {
    /// Every kind, for metric pre-registration.
    pub const ALL: [Kind; 3] = [Kind::Direct, Kind::Room, Kind::Broadcast];

    /// The wire and metric-label name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Room => "room",
            Kind::Broadcast => "broadcast",
        }
    }
}

/// Where a `typing` indication or presence query points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A user.
    User(String),
    /// A room.
    Room(String),
}

/// A position in a room's history (contract 5.4): the room's `epoch` and the
/// `offset` of a message in it (0 = before the first message).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Changes whenever the room's history is lost (expiry, a Redis restart
    /// without persistence); offsets restart at 1 in a new epoch.
    pub epoch: String,
    /// Grows by exactly 1 per room message within the epoch.
    pub offset: u64,
}

impl Position {
    /// Longest epoch accepted in a client's `since`, in bytes.
    pub const MAX_EPOCH_BYTES: usize = 64;
}

/// A decoded client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// Join a room; with `since`, recover the room messages after it.
    Join {
        room: String,
        since: Option<Position>,
    },
    /// Leave a room.
    Leave { room: String },
    /// Direct message to every connection of user `to`. A client-chosen `id`
    /// (a UUID string) makes it idempotent (contract 5.2).
    Send {
        to: String,
        content: Content,
        id: Option<String>,
    },
    /// Message to the members of a room.
    Publish { room: String, content: Content },
    /// Message to every connection of the cluster.
    Broadcast { content: Content },
    /// Acknowledge direct messages by id.
    Ack { ids: Vec<String> },
    /// Typing indication to a user or a room.
    Typing { target: Target },
    /// Presence query for a room or a user.
    Presence { target: Target },
    /// Application-level ping.
    Ping,
    /// Replace the connection's token.
    Refresh { token: String },
}

impl ClientFrame {
    /// Every frame type name, for metric pre-registration.
    pub const TYPES: [&'static str; 10] = [
        "join",
        "leave",
        "send",
        "publish",
        "broadcast",
        "ack",
        "typing",
        "presence",
        "ping",
        "refresh",
    ];

    /// The frame's `type`.
    pub const fn type_name(&self) -> &'static str {
        match self {
            ClientFrame::Join { .. } => "join",
            ClientFrame::Leave { .. } => "leave",
            ClientFrame::Send { .. } => "send",
            ClientFrame::Publish { .. } => "publish",
            ClientFrame::Broadcast { .. } => "broadcast",
            ClientFrame::Ack { .. } => "ack",
            ClientFrame::Typing { .. } => "typing",
            ClientFrame::Presence { .. } => "presence",
            ClientFrame::Ping => "ping",
            ClientFrame::Refresh { .. } => "refresh",
        }
    }
}

/// A decoded client frame with its optional reference.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRequest {
    /// The client's `ref`, echoed in the reply.
    pub r#ref: Option<Ref>,
    /// The frame.
    pub frame: ClientFrame,
}

/// A `reply` frame: `ok: true` and the result fields of the request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none", default)]
    pub r#ref: Option<Ref>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub room: Option<String>,
    /// Users in the room, cluster-wide (`join`, room `presence`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub member_count: Option<u64>,
    /// Their ids, only while `member_count` is at most `presence-max-members`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub members: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub online: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub connections: Option<u32>,
    /// `join`: the room's history epoch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub epoch: Option<String>,
    /// `join`: the offset of the room's last message (0 before any).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub offset: Option<u64>,
    /// `join` with `since`: whether the messages after `since` follow.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub recovered: Option<bool>,
    /// `send` with an `id` already stored for that user by this sender: the
    /// message was neither stored nor delivered again (contract 5.2).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duplicate: Option<bool>,
    /// `refresh` to a token whose `rooms` claim no longer allows rooms the
    /// connection had joined: the rooms it left (each as by a `leave`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub left: Option<Vec<String>>,
}

impl Reply {
    /// An `ok` reply to `r#ref` with no result fields yet.
    pub fn ok(r#ref: Option<Ref>) -> Self {
        Reply {
            r#ref,
            ok: true,
            ..Reply::default()
        }
    }
}

/// A `message` frame: what a recipient receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageFrame {
    /// UUIDv7 assigned by the gateway.
    pub id: String,
    pub kind: Kind,
    pub from: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub room: Option<String>,
    pub content: Content,
    /// Milliseconds since the Unix epoch when the gateway accepted it.
    pub time: u64,
    /// True when the message comes from the inbox or the room history.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub replay: bool,
    /// Room messages: the message's offset in the room's history.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub offset: Option<u64>,
    /// Room messages: the history epoch `offset` belongs to (an extension of
    /// the contract: a client sees at once when the history was reset).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub epoch: Option<String>,
}

/// `event` of a `presence` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceEvent {
    Join,
    Leave,
}

/// A frame the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Always the first frame of a connection.
    Welcome {
        user: String,
        session: String,
        node: String,
        protocol: String,
        ping_interval_ms: u64,
        max_message_bytes: u64,
    },
    /// The answer to a request.
    Reply(Reply),
    /// A refused request or a protocol error.
    Error {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none", default)]
        r#ref: Option<Ref>,
        code: crate::ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_after_ms: Option<u64>,
    },
    /// A delivered message.
    Message(MessageFrame),
    /// A member joined or left a room.
    Presence {
        room: String,
        event: PresenceEvent,
        user: String,
    },
    /// Someone is typing.
    Typing {
        from: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        to: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        room: Option<String>,
    },
    /// The recipient acked a direct message this user sent.
    Receipt {
        id: String,
        by: String,
        status: String,
    },
    /// The answer to `ping`.
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none", default)]
        r#ref: Option<Ref>,
    },
}

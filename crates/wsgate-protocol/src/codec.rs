//! The two codecs and the client-frame decoder.
//!
//! Decoding happens in two steps so that an error can still echo the frame's
//! `ref`: the bytes are read into a loose [`RawFrame`] whose fields accept any
//! value (only malformed bytes, a non-map, or a duplicate key fail there), then
//! each field is checked for the frame's `type`. Encoding is done once per codec
//! and shared through [`EncodedFrame`] (serialize once, fan out bytes).

use std::sync::OnceLock;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::frame::{ClientFrame, ClientRequest, Content, Position, Ref, ServerFrame, Target};
use crate::names::is_valid_name;
use crate::ErrorCode;

/// Most ids one `ack` frame may carry.
pub const MAX_ACK_IDS: usize = 1000;
/// Longest message id accepted in `ack`.
pub const MAX_ID_BYTES: usize = 64;
/// Longest token accepted in `refresh`.
pub const MAX_TOKEN_BYTES: usize = 8192;
/// Deepest nesting of a MessagePack frame (the frame's map counts as one):
/// serde_json's recursion limit for JSON frames, so content is equally deep on
/// both codecs. rmp-serde's own default (1024) overflows the 2 MiB stack of a
/// tokio worker in debug builds and leaves little margin in release ones: a
/// single frame would abort the process.
pub const MAX_DEPTH: usize = 128;

/// What a `since` must look like, for the error message.
const SINCE_SHAPE: &str =
    "`since` must be {\"epoch\": a string of 1-64 bytes, \"offset\": an integer >= 0}";

/// A subprotocol's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// `wsgate.v1.json`: UTF-8 JSON in text frames.
    Json,
    /// `wsgate.v1.msgpack`: MessagePack maps with named fields in binary frames.
    Msgpack,
}

impl Codec {
    /// The subprotocol name.
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Codec::Json => crate::SUBPROTOCOL_JSON,
            Codec::Msgpack => crate::SUBPROTOCOL_MSGPACK,
        }
    }

    /// The codec for a subprotocol name, if it is one of ours.
    pub fn from_subprotocol(name: &str) -> Option<Codec> {
        match name.trim() {
            crate::SUBPROTOCOL_JSON => Some(Codec::Json),
            crate::SUBPROTOCOL_MSGPACK => Some(Codec::Msgpack),
            _ => None,
        }
    }
}

/// Why a client frame was refused, with the `ref` when it could be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DecodeError {
    /// The frame's `ref`, when the frame was readable enough to have one.
    pub r#ref: Option<Ref>,
    /// `bad_request` or `unknown_type`.
    pub code: ErrorCode,
    /// What was wrong, for the client's developer.
    pub message: String,
}

impl DecodeError {
    fn bad(r#ref: Option<Ref>, message: impl Into<String>) -> Self {
        DecodeError {
            r#ref,
            code: ErrorCode::BadRequest,
            message: message.into(),
        }
    }
}

/// Every field any client frame may have, each accepting any value.
#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type", default)]
    ty: Option<Value>,
    #[serde(rename = "ref", default)]
    r#ref: Option<Value>,
    #[serde(default)]
    room: Option<Value>,
    #[serde(default)]
    to: Option<Value>,
    #[serde(default)]
    user: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    ids: Option<Value>,
    #[serde(default)]
    token: Option<Value>,
    #[serde(default)]
    since: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    content: Option<Value>,
}

/// Distinguishes `"content": null` (present) from an absent `content`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Decodes one client frame.
pub fn decode_client(codec: Codec, bytes: &[u8]) -> Result<ClientRequest, DecodeError> {
    let raw: RawFrame = match codec {
        Codec::Json => serde_json::from_slice(bytes)
            .map_err(|e| DecodeError::bad(None, format!("invalid JSON frame: {e}")))?,
        Codec::Msgpack => {
            let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
            de.set_max_depth(MAX_DEPTH);
            RawFrame::deserialize(&mut de)
                .map_err(|e| DecodeError::bad(None, format!("invalid MessagePack frame: {e}")))?
        }
    };
    let r#ref = match raw.r#ref {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= Ref::MAX_BYTES => Some(Ref::Str(s)),
        Some(Value::Number(n)) if n.to_string().len() <= Ref::MAX_BYTES => Some(Ref::Num(n)),
        Some(_) => {
            return Err(DecodeError::bad(
                None,
                "`ref` must be a string or number of at most 64 bytes",
            ))
        }
    };
    let ty = match raw.ty {
        Some(Value::String(s)) => s,
        Some(_) => return Err(DecodeError::bad(r#ref, "`type` must be a string")),
        None => return Err(DecodeError::bad(r#ref, "missing field `type`")),
    };
    let mut fields = Fields {
        r#ref: &r#ref,
        ty: &ty,
    };
    let frame = match ty.as_str() {
        "join" => ClientFrame::Join {
            room: fields.name("room", raw.room)?,
            since: fields.since(raw.since)?,
        },
        "leave" => ClientFrame::Leave {
            room: fields.name("room", raw.room)?,
        },
        "send" => ClientFrame::Send {
            to: fields.name("to", raw.to)?,
            content: fields.content(raw.content)?,
            id: fields.message_id(raw.id)?,
        },
        "publish" => ClientFrame::Publish {
            room: fields.name("room", raw.room)?,
            content: fields.content(raw.content)?,
        },
        "broadcast" => ClientFrame::Broadcast {
            content: fields.content(raw.content)?,
        },
        "ack" => ClientFrame::Ack {
            ids: fields.ack_ids(raw.id, raw.ids)?,
        },
        "typing" => ClientFrame::Typing {
            target: fields.target("to", raw.to, raw.room)?,
        },
        "presence" => ClientFrame::Presence {
            target: fields.target("user", raw.user, raw.room)?,
        },
        "ping" => ClientFrame::Ping,
        "refresh" => ClientFrame::Refresh {
            token: fields.token(raw.token)?,
        },
        _ => {
            let mut shown = ty.clone();
            shown.truncate(64);
            return Err(DecodeError {
                r#ref,
                code: ErrorCode::UnknownType,
                message: format!("unknown frame type {shown:?}"),
            });
        }
    };
    Ok(ClientRequest { r#ref, frame })
}

/// Only the `ref` of a frame; every other field is skipped without being
/// kept (`IgnoredAny`), so reading it costs no allocation for the content.
#[derive(Deserialize)]
struct RefOnly {
    #[serde(rename = "ref", default)]
    r#ref: Option<Value>,
}

/// The `ref` of a frame too large to handle (over `max-message-bytes`, under
/// the hard limit), so the `message_too_large` error can echo it: one pass
/// over the bytes, nothing of the content kept. `None` when the frame is not
/// a readable map or its `ref` is not a valid one.
pub fn peek_ref(codec: Codec, bytes: &[u8]) -> Option<Ref> {
    let raw: RefOnly = match codec {
        Codec::Json => serde_json::from_slice(bytes).ok()?,
        Codec::Msgpack => {
            let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
            de.set_max_depth(MAX_DEPTH);
            RefOnly::deserialize(&mut de).ok()?
        }
    };
    match raw.r#ref? {
        Value::String(s) if s.len() <= Ref::MAX_BYTES => Some(Ref::Str(s)),
        Value::Number(n) if n.to_string().len() <= Ref::MAX_BYTES => Some(Ref::Num(n)),
        _ => None,
    }
}

/// Field checks for one frame, producing errors that carry its `ref`.
struct Fields<'a> {
    r#ref: &'a Option<Ref>,
    ty: &'a str,
}

impl Fields<'_> {
    fn err(&self, message: String) -> DecodeError {
        DecodeError::bad(self.r#ref.clone(), message)
    }

    fn name(&mut self, field: &str, value: Option<Value>) -> Result<String, DecodeError> {
        match value {
            Some(Value::String(s)) if is_valid_name(&s) => Ok(s),
            Some(Value::String(_)) => {
                Err(self.err(format!("`{field}` must be 1-128 bytes of [A-Za-z0-9_.:@-]")))
            }
            Some(_) => Err(self.err(format!("`{field}` must be a string"))),
            None => Err(self.err(format!("`{}` needs field `{field}`", self.ty))),
        }
    }

    fn content(&mut self, value: Option<Value>) -> Result<Content, DecodeError> {
        value.ok_or_else(|| self.err(format!("`{}` needs field `content`", self.ty)))
    }

    fn ack_ids(
        &mut self,
        id: Option<Value>,
        ids: Option<Value>,
    ) -> Result<Vec<String>, DecodeError> {
        let check = |v: Value| match v {
            Value::String(s) if !s.is_empty() && s.len() <= MAX_ID_BYTES => Ok(s),
            _ => Err(()),
        };
        match (id, ids) {
            (Some(id), None) => check(id)
                .map(|s| vec![s])
                .map_err(|()| self.err("`id` must be a message id string".into())),
            (None, Some(Value::Array(list))) if !list.is_empty() && list.len() <= MAX_ACK_IDS => {
                list.into_iter()
                    .map(check)
                    .collect::<Result<Vec<_>, ()>>()
                    .map_err(|()| self.err("`ids` must hold message id strings".into()))
            }
            (None, Some(_)) => Err(self.err(format!(
                "`ids` must be an array of 1 to {MAX_ACK_IDS} message ids"
            ))),
            (Some(_), Some(_)) => Err(self.err("`ack` takes `id` or `ids`, not both".into())),
            (None, None) => Err(self.err("`ack` needs field `id` or `ids`".into())),
        }
    }

    fn target(
        &mut self,
        user_field: &str,
        user: Option<Value>,
        room: Option<Value>,
    ) -> Result<Target, DecodeError> {
        match (user, room) {
            (Some(u), None) => Ok(Target::User(self.name(user_field, Some(u))?)),
            (None, Some(r)) => Ok(Target::Room(self.name("room", Some(r))?)),
            (Some(_), Some(_)) => Err(self.err(format!(
                "`{}` takes `{user_field}` or `room`, not both",
                self.ty
            ))),
            (None, None) => Err(self.err(format!(
                "`{}` needs field `{user_field}` or `room`",
                self.ty
            ))),
        }
    }

    /// `since: {epoch, offset}` of a `join`; absent or `null` is none.
    fn since(&mut self, value: Option<Value>) -> Result<Option<Position>, DecodeError> {
        let mut map = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(self.err(SINCE_SHAPE.into())),
        };
        let epoch = match map.remove("epoch") {
            Some(Value::String(e)) if !e.is_empty() && e.len() <= Position::MAX_EPOCH_BYTES => e,
            _ => return Err(self.err(SINCE_SHAPE.into())),
        };
        let offset = match map.remove("offset") {
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        };
        match offset {
            Some(offset) => Ok(Some(Position { epoch, offset })),
            None => Err(self.err(SINCE_SHAPE.into())),
        }
    }

    /// The optional client-chosen id of a `send`: a UUID string.
    fn message_id(&mut self, value: Option<Value>) -> Result<Option<String>, DecodeError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if is_uuid(&s) => Ok(Some(s)),
            Some(_) => Err(self.err("`id` must be a UUID string (8-4-4-4-12 hex digits)".into())),
        }
    }

    fn token(&mut self, value: Option<Value>) -> Result<String, DecodeError> {
        match value {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_TOKEN_BYTES => Ok(s),
            Some(_) => Err(self.err("`token` must be a non-empty string".into())),
            None => Err(self.err("`refresh` needs field `token`".into())),
        }
    }
}

/// Whether `s` is a UUID in its text form: 8-4-4-4-12 hex digits (either
/// case). The only shape a client-chosen message id may take.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Why a server frame could not be encoded (a bug or unencodable content).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("JSON encoding failed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("MessagePack encoding failed: {0}")]
    Msgpack(#[from] rmp_serde::encode::Error),
}

/// Encodes any serializable frame with a codec (MessagePack with named fields).
pub fn encode<T: Serialize + ?Sized>(codec: Codec, frame: &T) -> Result<Bytes, EncodeError> {
    Ok(match codec {
        Codec::Json => Bytes::from(serde_json::to_vec(frame)?),
        Codec::Msgpack => Bytes::from(rmp_serde::to_vec_named(frame)?),
    })
}

/// Encodes a server frame with a codec.
pub fn encode_server(codec: Codec, frame: &ServerFrame) -> Result<Bytes, EncodeError> {
    encode(codec, frame)
}

/// A server frame that is encoded at most once per codec, however many
/// connections it goes to. Share it as `Arc<EncodedFrame>`.
#[derive(Debug)]
pub struct EncodedFrame {
    frame: ServerFrame,
    json: OnceLock<Bytes>,
    msgpack: OnceLock<Bytes>,
}

impl EncodedFrame {
    /// Wraps a frame; nothing is encoded until [`EncodedFrame::bytes`] is called.
    pub fn new(frame: ServerFrame) -> Self {
        EncodedFrame {
            frame,
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
        }
    }

    /// The frame.
    pub fn frame(&self) -> &ServerFrame {
        &self.frame
    }

    /// The frame's bytes for `codec`, encoded on first use and shared after.
    pub fn bytes(&self, codec: Codec) -> Result<Bytes, EncodeError> {
        let cell = match codec {
            Codec::Json => &self.json,
            Codec::Msgpack => &self.msgpack,
        };
        if let Some(b) = cell.get() {
            return Ok(b.clone());
        }
        let b = encode_server(codec, &self.frame)?;
        Ok(cell.get_or_init(|| b).clone())
    }
}

#[cfg(test)]
mod tests;

//! Encoding for the sockets: a frame on its way to one or more connections
//! ([`Outgoing`]) and the WebSocket message each codec writes.
//!
//! Serialize once, fan out bytes: an [`Outgoing`] wraps the protocol crate's
//! [`EncodedFrame`], which encodes the frame at most once per codec, on first
//! use, into shared [`Bytes`]; every socket's WebSocket message points at those
//! bytes. JSON goes out as a text frame built straight from the encoded bytes
//! (serde_json output is UTF-8, so it is not validated again per socket).

use std::sync::Arc;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::Message;
use wsgate_protocol::{Codec, EncodedFrame, Kind, ServerFrame};

/// One frame on its way to one or more connections, shared as
/// `Arc<Outgoing>` by every outbox it is queued in.
#[derive(Debug)]
pub struct Outgoing {
    frame: EncodedFrame,
    /// For messages: the kind and when a node accepted it (ms since epoch),
    /// for the delivery metrics and ack tracking.
    message: Option<(Kind, u64)>,
}

impl Outgoing {
    /// A frame that is not a message (reply, presence, typing, receipt...).
    pub fn control(frame: ServerFrame) -> Arc<Outgoing> {
        Arc::new(Outgoing {
            frame: EncodedFrame::new(frame),
            message: None,
        })
    }

    /// A `message` frame accepted at `accepted_ms`.
    pub fn message(frame: ServerFrame, kind: Kind, accepted_ms: u64) -> Arc<Outgoing> {
        Arc::new(Outgoing {
            frame: EncodedFrame::new(frame),
            message: Some((kind, accepted_ms)),
        })
    }

    /// The frame.
    pub fn frame(&self) -> &ServerFrame {
        self.frame.frame()
    }

    /// For messages: the kind and when a node accepted it.
    pub fn message_info(&self) -> Option<(Kind, u64)> {
        self.message
    }

    /// The WebSocket message for `codec`, encoded on first use. `None` only if
    /// the frame cannot be encoded (content MessagePack cannot carry).
    pub fn ws_message(&self, codec: Codec) -> Option<Message> {
        match self.frame.bytes(codec) {
            Ok(bytes) => Some(ws_message(codec, bytes)),
            Err(e) => {
                tracing::warn!(error = %e, "Frame encoding failed.");
                None
            }
        }
    }
}

/// The WebSocket message carrying `bytes` encoded with `codec`.
fn ws_message(codec: Codec, bytes: Bytes) -> Message {
    match codec {
        // A text frame over the shared bytes: `Message::Text` would check
        // UTF-8 again on every socket. `bytes` is serde_json output, UTF-8.
        Codec::Json => Message::Frame(Frame::message(bytes, OpCode::Data(Data::Text), true)),
        Codec::Msgpack => Message::Binary(bytes),
    }
}

/// Encodes one frame for one connection (replies, errors, `welcome`).
pub fn to_ws_message(codec: Codec, frame: &ServerFrame) -> Option<Message> {
    match wsgate_protocol::encode_server(codec, frame) {
        Ok(bytes) => Some(ws_message(codec, bytes)),
        Err(e) => {
            tracing::warn!(error = %e, "Frame encoding failed.");
            None
        }
    }
}

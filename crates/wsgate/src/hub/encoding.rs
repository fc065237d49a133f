//! Encoding for the sockets: a frame on its way to one or more connections
//! ([`Outgoing`]) and the payload each codec writes.
//!
//! Serialize once, fan out bytes: an [`Outgoing`] wraps the protocol crate's
//! [`EncodedFrame`], which encodes the frame at most once per codec, on first
//! use, into shared [`Bytes`]; every socket's WebSocket frame points at those
//! bytes (the session writes them as they are: a text frame for JSON, whose
//! serde_json output is UTF-8 and is not validated again per socket, a binary
//! frame for MessagePack).

use std::sync::Arc;

use bytes::Bytes;
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

    /// The encoded payload for `codec`, encoded on first use and shared. `None`
    /// only if the frame cannot be encoded (content MessagePack cannot carry).
    pub fn payload(&self, codec: Codec) -> Option<Bytes> {
        match self.frame.bytes(codec) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                tracing::warn!(error = %e, "Frame encoding failed.");
                None
            }
        }
    }
}

/// Encodes one frame for one connection (replies, errors, `welcome`).
pub fn encode(codec: Codec, frame: &ServerFrame) -> Option<Bytes> {
    match wsgate_protocol::encode_server(codec, frame) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::warn!(error = %e, "Frame encoding failed.");
            None
        }
    }
}

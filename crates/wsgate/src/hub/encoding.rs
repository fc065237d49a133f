//! Encoding for the sockets: a frame on its way to one or more connections
//! ([`Outgoing`]) and the payload each codec writes.
//!
//! Serialize once, fan out bytes: an [`Outgoing`] wraps the protocol crate's
//! [`EncodedFrame`], which encodes the frame at most once per codec, on first
//! use, into shared [`Bytes`]; every socket's WebSocket frame points at those
//! bytes (the session writes them as they are: a text frame for JSON, whose
//! serde_json output is UTF-8 and is not validated again per socket, a binary
//! frame for MessagePack).
//!
//! With permessage-deflate (`--compression`), the deflated payload is cached
//! beside it the same way: compressed by the first writer that needs it, then
//! shared ([`Outgoing::deflated`]; no context takeover makes that possible,
//! see [`crate::deflate`]).

use std::sync::{Arc, OnceLock};

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
    /// The payload deflated, per codec (JSON, MessagePack): filled on first
    /// use; `None` inside when encoding or compressing failed.
    deflated: [OnceLock<Option<Bytes>>; 2],
}

impl Outgoing {
    /// A frame that is not a message (reply, presence, typing, receipt...).
    pub fn control(frame: ServerFrame) -> Arc<Outgoing> {
        Arc::new(Outgoing {
            frame: EncodedFrame::new(frame),
            message: None,
            deflated: Default::default(),
        })
    }

    /// A `message` frame accepted at `accepted_ms`.
    pub fn message(frame: ServerFrame, kind: Kind, accepted_ms: u64) -> Arc<Outgoing> {
        Arc::new(Outgoing {
            frame: EncodedFrame::new(frame),
            message: Some((kind, accepted_ms)),
            deflated: Default::default(),
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

impl Outgoing {
    /// The payload for `codec` deflated (permessage-deflate), compressed on
    /// first use and shared by every receiver; `None` if it cannot be.
    pub fn deflated(&self, codec: Codec) -> Option<Bytes> {
        let slot = match codec {
            Codec::Json => &self.deflated[0],
            Codec::Msgpack => &self.deflated[1],
        };
        slot.get_or_init(|| {
            self.payload(codec)
                .and_then(|p| crate::deflate::compress(&p))
        })
        .clone()
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

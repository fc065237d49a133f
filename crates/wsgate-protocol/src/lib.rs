//! The wsgate wire protocol, version 1 (`wsgate.v1`), with no I/O.
//!
//! What this crate owns:
//! - [`frame`]: the frames a client sends ([`ClientFrame`]) and the frames the
//!   server sends ([`ServerFrame`]), exactly as the contract names their fields;
//! - [`codec`]: the two subprotocols, `wsgate.v1.json` (text frames) and
//!   `wsgate.v1.msgpack` (binary frames, MessagePack maps with named fields), and
//!   the one decoder that turns bytes into a [`ClientRequest`] or a
//!   [`DecodeError`] carrying the contract's error code and the frame's `ref`;
//! - [`codes`]: error codes and close codes;
//! - [`names`]: validation of user ids and room names;
//! - [`bus`]: the MessagePack envelope nodes exchange over the cluster bus.
//!
//! Decoding never panics on any input (it is fuzzed, see `fuzz/`): every failure
//! is a typed [`DecodeError`].

#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use,
    clippy::allow_attributes_without_reason
)]

pub mod bus;
pub mod codec;
pub mod codes;
pub mod frame;
pub mod names;

pub use codec::{decode_client, encode_server, Codec, DecodeError, EncodedFrame};
pub use codes::{CloseCode, ErrorCode};
pub use frame::{
    ClientFrame, ClientRequest, Content, Kind, MessageFrame, Position, PresenceEvent, Ref, Reply,
    ServerFrame, Target,
};

/// The protocol name sent in `welcome.protocol`.
pub const PROTOCOL: &str = "wsgate.v1";
/// Subprotocol name for JSON text frames (the default).
pub const SUBPROTOCOL_JSON: &str = "wsgate.v1.json";
/// Subprotocol name for MessagePack binary frames.
pub const SUBPROTOCOL_MSGPACK: &str = "wsgate.v1.msgpack";

//! The Rust client of wsgate (`wsgate.v1`): the one client of the protocol
//! in this repository, used by the integration tests (the hostile ones
//! included), the load generator and the chaos and soak examples.
//!
//! Two layers:
//! - [`raw`]: connecting (source address, receive buffer, token, subprotocol,
//!   headers, WebSocket buffer sizes) into a [`raw::Connection`] that moves
//!   whole WebSocket messages; the JSON / MessagePack [`raw::codec`]; and a
//!   hand-framed [`raw::HandWs`] for malformed frames and byte-exact upgrade
//!   requests. The load generator keeps its lean receive path on a
//!   [`raw::Connection`] (it scans frame bytes for its payload marker instead
//!   of decoding them).
//! - on top of it, two friendly clients:
//!   - [`Client`], driven by its caller's task: [`Client::connect`] opens
//!     `ws://…/ws` and waits for `welcome` ([`Client::welcome`]); a refused
//!     upgrade comes back as [`ClientError::Refused`] with the HTTP status
//!     and the server's JSON body. [`Client::send_frame`] sends any frame
//!     given as a `serde_json::Value` (JSON text or a MessagePack map, by the
//!     connection's codec); [`Client::request`] adds a `ref` when there is
//!     none, sends, and waits for the `reply` (or `pong`) with that `ref`,
//!     turning an `error` into [`ClientError::Server`]; frames that arrive
//!     meanwhile are kept, in order, for the next read.
//!     [`Client::next_frame`] returns the next decoded [`ServerFrame`],
//!     [`Client::next_message`] skips everything but `message` frames,
//!     [`Client::ack`] acknowledges a direct message. [`Client::close`]
//!     closes with a code; the close the server sent is kept and returned by
//!     [`Client::wait_closed`] (code `None` when the connection ended without
//!     a close frame). WebSocket pings are answered while the client reads: a
//!     client that stops reading also stops answering them (which is how
//!     tests provoke the server's heartbeat timeout).
//!   - [`Background`], whose reader and writer are tasks of their own behind
//!     bounded queues: it stays connected while its owner does other things,
//!     and can be read and written from one `select!`.
//!
//! - [`Session`]: a connection that comes back by itself: reconnects with
//!   [`Backoff`] (falling over to the next endpoint), re-joins its rooms with
//!   `since`, tells the application [`SessionEvent::Recovered`] /
//!   [`SessionEvent::NotRecovered`] per room, drops repeats, and sends
//!   direct messages with an id, retrying `unavailable` with that same id.
//!
//! [`Dedupe`] drops replayed duplicates by id; [`RoomPositions`] remembers
//! each room's `{epoch, offset}`, drops room repeats by offset and gives the
//! `join`s with `since` to send after a reconnect (room recovery). Every read takes a timeout
//! (the connection's [`Options::timeout`] for requests), so a silent server
//! never hangs a caller. Only `ws://` URLs are supported: tests and load
//! generation run against plain TCP.

mod background;
mod backoff;
mod client;
mod dedupe;
mod error;
mod options;
mod positions;
pub mod raw;
mod session;

pub use background::{Background, Event};
pub use backoff::Backoff;
pub use client::{Client, Welcome};
pub use dedupe::Dedupe;
pub use error::{ClientError, CloseInfo};
pub use options::{Options, DEFAULT_TIMEOUT};
pub use positions::RoomPositions;
pub use session::{Session, SessionEvent, SessionOptions};
pub use wsgate_protocol::{
    Codec, ErrorCode, Kind, MessageFrame, Position, PresenceEvent, Ref, Reply, ServerFrame,
};

//! The low-level layer every client of this crate is built on.
//!
//! - [`Connection`] (`connection.rs`): a TCP socket opened as [`Options`]
//!   say (source address, receive buffer, `TCP_NODELAY`), upgraded by
//!   tokio-tungstenite with the bearer token, subprotocol and extra headers;
//!   it sends and reads whole WebSocket messages, nothing more. The friendly
//!   [`crate::Client`], the [`crate::Background`] client and the load
//!   generator's lean hot path all sit on it.
//! - [`codec`]: a frame given as a `serde_json::Value` to a WebSocket message
//!   (JSON text or MessagePack map) and back.
//! - [`HandWs`] (`hand.rs`) and [`frame`]: a WebSocket written frame by frame
//!   over a bare `TcpStream`, for what no well-behaved library sends
//!   (fragments that never end, invalid UTF-8, ping floods, a client that
//!   never reads); [`http`] builds the upgrade request byte by byte and reads
//!   a response head without consuming anything after it.
//!
//! Nothing here waits without a bound: connecting takes the options' timeout,
//! and the hand-made reader takes one per read.
//!
//! [`Options`]: crate::Options

pub mod codec;
mod connection;
pub mod frame;
mod hand;
pub mod http;

pub use connection::Connection;
pub use frame::Frame;
pub use hand::{HandWs, Upgrade};
pub use tokio_tungstenite::tungstenite::Message;

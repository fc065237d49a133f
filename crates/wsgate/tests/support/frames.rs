//! Frames for [`wsgate_client::Client`]: request builders, and readers that
//! panic naming what a test waited for.

use serde_json::{json, Value};
use wsgate_client::{Client, ClientError, ServerFrame};

use super::T;

/// A `send` request.
pub fn send(to: &str, content: Value) -> Value {
    json!({"type": "send", "to": to, "content": content})
}

/// A `join` request.
pub fn join(room: &str) -> Value {
    json!({"type": "join", "room": room})
}

/// A `publish` request.
pub fn publish(room: &str, content: Value) -> Value {
    json!({"type": "publish", "room": room, "content": content})
}

/// Waits for the frame `want` accepts, dropping others; panics naming `what`.
pub async fn expect_frame(
    client: &mut Client,
    what: &str,
    want: impl FnMut(&ServerFrame) -> bool,
) -> ServerFrame {
    client
        .next_frame_where(T, want)
        .await
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
}

/// True when the error means the connection is gone.
pub fn is_closed(e: &ClientError) -> bool {
    e.is_disconnect()
}

//! The session's timers on tokio's paused clock (#10): one real session
//! task over an in-memory duplex stream (no sockets, so the paused clock
//! only moves when every task waits), a memory node behind it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use wsgate_protocol::Codec;

use super::{run, Shared};
use crate::auth::Identity;
use crate::config::Config;
use crate::inbox::Sender;
use crate::node::testing::memory_node;

const PING: Duration = Duration::from_secs(25);
const PONG: Duration = Duration::from_secs(10);
const ACK: Duration = Duration::from_secs(10);

fn node() -> Arc<Shared> {
    let parts = memory_node(Config {
        ping_interval: PING,
        pong_timeout: PONG,
        ack_timeout: ACK,
        allow_anonymous: true,
        ..Config::default()
    });
    Shared::new(parts.node, parts.config, parts.metrics, parts.auth)
}

fn identity(user: &str) -> Identity {
    Identity {
        user: user.into(),
        can_broadcast: false,
        rooms: None,
        expires_at: None,
    }
}

/// Starts a session of `user`; returns the client's end of the socket.
async fn connect(env: &Arc<Shared>, user: &str) -> WebSocketStream<DuplexStream> {
    let (server, client) = tokio::io::duplex(1 << 16);
    tokio::spawn(run(
        env.clone(),
        server,
        identity(user),
        Codec::Json,
        false,
        Bytes::new(),
    ));
    WebSocketStream::from_raw_socket(client, Role::Client, None).await
}

/// The next text frame as JSON (pings and pongs skipped).
async fn next_json(ws: &mut WebSocketStream<DuplexStream>) -> serde_json::Value {
    loop {
        match ws.next().await.expect("open").expect("frame") {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads one server frame from the raw stream: (opcode, payload). A client
/// reading this way answers no ping (tungstenite would answer each).
async fn raw_frame(io: &mut DuplexStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await.expect("a frame header");
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            io.read_exact(&mut ext).await.expect("length");
            u64::from(u16::from_be_bytes(ext))
        }
        127 => {
            let mut ext = [0u8; 8];
            io.read_exact(&mut ext).await.expect("length");
            u64::from_be_bytes(ext)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    io.read_exact(&mut payload).await.expect("payload");
    (head[0] & 0x0f, payload)
}

#[tokio::test(start_paused = true)]
async fn a_client_silent_for_ping_interval_plus_pong_timeout_is_closed_1001() {
    let env = node();
    let (server, mut io) = tokio::io::duplex(1 << 16);
    tokio::spawn(run(
        env.clone(),
        server,
        identity("alice"),
        Codec::Json,
        false,
        Bytes::new(),
    ));
    let (op, welcome) = raw_frame(&mut io).await;
    assert_eq!(op, 0x1, "the welcome is a text frame");
    assert!(String::from_utf8_lossy(&welcome).contains("welcome"));
    let start = Instant::now();
    let mut pings = 0;
    let close = loop {
        match raw_frame(&mut io).await {
            (0x9, _) => pings += 1,
            (0x8, payload) => break payload,
            (op, _) => panic!("unexpected opcode {op}"),
        }
    };
    let at = start.elapsed();
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1001, "going away");
    assert_eq!(pings, 1, "one ping, at ping-interval, went unanswered");
    // The node's timer wheel rings a deadline at most one tick after it.
    let tick = super::wheel::tick_for(&env.config);
    assert!(
        at >= PING + PONG && at <= PING + PONG + tick,
        "closed {at:?} after the last read: ping-interval + pong-timeout, within one tick ({tick:?})"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unacked_live_message_is_sent_again_after_ack_timeout() {
    let env = node();
    let mut bob = connect(&env, "bob").await;
    assert_eq!(next_json(&mut bob).await["type"], "welcome");
    let sent = env
        .node
        .send_direct(
            Sender::User("alice"),
            "alice",
            "bob",
            serde_json::json!("hi"),
            None,
        )
        .await
        .unwrap();
    let start = Instant::now();
    let live = next_json(&mut bob).await;
    assert_eq!(live["id"].as_str(), Some(sent.id.as_str()));
    assert_ne!(live["replay"], true, "the first copy is live");
    // Not acked: the same message comes again, once ack-timeout has passed.
    let again = next_json(&mut bob).await;
    let at = start.elapsed();
    assert_eq!(again["id"], live["id"]);
    assert!(
        at >= ACK && at < ACK + PING,
        "sent again {at:?} after the live copy"
    );
}

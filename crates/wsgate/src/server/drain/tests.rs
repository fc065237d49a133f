//! The drain on tokio's paused clock (#10): real sessions over in-memory
//! duplex streams (no sockets, so the clock only moves when every task
//! waits), a memory node behind them, and [`drain`] itself. The close
//! times are read off the paused clock, so the pacing and the grace are
//! checked exactly, with no real waiting.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::DuplexStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use wsgate_protocol::Codec;

use super::{drain, DRAIN_GRACE};
use crate::auth::Identity;
use crate::config::Config;
use crate::node::testing::memory_node;
use crate::server::Server;
use crate::session;

/// A server of a memory node with this `drain-timeout` (no listeners: the
/// sessions are started on duplex streams by [`connect`]).
fn server(drain_timeout: Duration) -> Arc<Server> {
    let parts = memory_node(Config {
        drain_timeout,
        allow_anonymous: true,
        ..Config::default()
    });
    Server::new(
        parts.node,
        parts.hub,
        parts.config,
        parts.metrics,
        parts.auth,
    )
}

/// Starts a tracked session of `user` (as the upgrade does); returns the
/// client's end of the socket.
async fn connect(server: &Server, user: &str) -> WebSocketStream<DuplexStream> {
    let (near, far) = tokio::io::duplex(1 << 16);
    let identity = Identity {
        user: user.into(),
        can_broadcast: false,
        rooms: None,
        expires_at: None,
    };
    server.drain.spawn_session(session::run(
        server.sessions.clone(),
        near,
        identity,
        Codec::Json,
        false,
        bytes::Bytes::new(),
    ));
    let mut ws = WebSocketStream::from_raw_socket(far, Role::Client, None).await;
    match ws.next().await.expect("open").expect("a frame") {
        Message::Text(t) => assert!(t.contains("welcome"), "{t}"),
        other => panic!("expected the welcome, got {other:?}"),
    }
    ws
}

/// Reads until the server's Close (answering it, as tungstenite does) and
/// the end of the stream; returns the close code and when it came.
async fn close_of(mut ws: WebSocketStream<DuplexStream>) -> (u16, Instant) {
    let mut close = None;
    while let Some(frame) = ws.next().await {
        match frame {
            Ok(Message::Close(frame)) => {
                let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                close.get_or_insert((code, Instant::now()));
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    close.expect("the server sent a Close")
}

/// Runs the drain as its own task; resolves to when it returned.
fn start_drain(server: &Arc<Server>) -> tokio::task::JoinHandle<Instant> {
    let server = server.clone();
    tokio::spawn(async move {
        drain(&server).await;
        Instant::now()
    })
}

#[tokio::test(start_paused = true)]
async fn connections_are_closed_1012_paced_evenly_over_drain_timeout() {
    const N: usize = 5;
    const TIMEOUT: Duration = Duration::from_secs(10);
    let server = server(TIMEOUT);
    let mut clients = Vec::new();
    for i in 0..N {
        clients.push(connect(&server, &format!("u{i}")).await);
    }
    assert_eq!(server.hub().len(), N);
    let start = Instant::now();
    let drained = start_drain(&server);
    let closes: Vec<_> = clients
        .into_iter()
        .map(|ws| tokio::spawn(close_of(ws)))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(server.not_ready_reason(), Some("draining"));

    let mut at = Vec::new();
    for close in closes {
        let (code, when) = close.await.unwrap();
        assert_eq!(code, 1012, "service restart");
        at.push(when - start);
    }
    at.sort();
    // One connection every drain-timeout / N, the first at once: all closed
    // within drain-timeout, none two at a time.
    let tick = TIMEOUT / N as u32;
    let expected: Vec<Duration> = (0..N as u32).map(|k| tick * k).collect();
    assert_eq!(at, expected, "close times after the drain began");

    // The drain returns once the sessions have ended (their close handshakes
    // were answered at once), not after the whole grace.
    let end = tokio::time::timeout(TIMEOUT + DRAIN_GRACE * 2, drained)
        .await
        .expect("the drain ended")
        .unwrap();
    let last = *at.last().unwrap();
    assert!(
        end - start >= last && end - start < last + DRAIN_GRACE,
        "the drain returned {:?} after it began (last close at {last:?})",
        end - start
    );
    assert_eq!(server.hub().len(), 0, "every session unregistered");
}

#[tokio::test(start_paused = true)]
async fn many_connections_are_closed_in_even_batches_within_drain_timeout() {
    const N: usize = 300;
    const TIMEOUT: Duration = Duration::from_secs(1);
    let server = server(TIMEOUT);
    let mut clients = Vec::new();
    for i in 0..N {
        clients.push(connect(&server, &format!("u{i}")).await);
    }
    let start = Instant::now();
    let drained = start_drain(&server);
    let closes: Vec<_> = clients
        .into_iter()
        .map(|ws| tokio::spawn(close_of(ws)))
        .collect();
    let mut at = Vec::new();
    for close in closes {
        at.push(close.await.unwrap().1 - start);
    }
    // drain-timeout / N is under the 10 ms floor of a tick: batches of
    // ceil(N x 10 ms / timeout) = 3 every 10 ms, over 100 ticks.
    let mut per_tick = std::collections::BTreeMap::new();
    for t in &at {
        *per_tick.entry(*t).or_insert(0) += 1;
    }
    assert_eq!(per_tick.len(), 100, "ticks: {per_tick:?}");
    assert!(per_tick.values().all(|&n| n == 3), "batches: {per_tick:?}");
    let last = *per_tick.keys().last().unwrap();
    assert_eq!(last, Duration::from_millis(990));
    assert!(last < TIMEOUT);
    tokio::time::timeout(TIMEOUT + DRAIN_GRACE * 2, drained)
        .await
        .expect("the drain ended")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_drain_waits_for_an_unanswered_close_handshake() {
    let server = server(Duration::from_secs(1));
    // A client that never reads: its session sends the Close and waits for
    // the answer until the close timeout.
    let _silent = connect(&server, "silent").await;
    let start = Instant::now();
    let end = tokio::time::timeout(DRAIN_GRACE * 2, start_drain(&server))
        .await
        .expect("the drain ended")
        .unwrap();
    assert!(
        end - start >= session::CLOSE_TIMEOUT && end - start < DRAIN_GRACE,
        "the drain returned {:?} after it began; the session's close handshake takes {:?}",
        end - start,
        session::CLOSE_TIMEOUT
    );
    assert_eq!(server.hub().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_drain_gives_sessions_at_most_the_grace() {
    let server = server(Duration::from_secs(1));
    let client = connect(&server, "alice").await;
    let closed = tokio::spawn(close_of(client));
    // A session that never ends.
    server.drain.spawn_session(std::future::pending::<()>());
    let start = Instant::now();
    let end = tokio::time::timeout(DRAIN_GRACE * 3, start_drain(&server))
        .await
        .expect("the drain ended despite the stuck session")
        .unwrap();
    let (code, _) = closed.await.unwrap();
    assert_eq!(code, 1012);
    // One connection: kicked at once, then exactly the grace for the rest.
    assert_eq!(end - start, DRAIN_GRACE);
}

//! [`Session`]'s reconnect schedule on a paused clock (`start_paused`): the
//! first attempt after a loss is immediate, the delays between failed
//! attempts grow from `min`, are capped at `max`, are jittered within
//! `[min, ceiling]`, and the schedule starts over after a good connect.
//!
//! The peer is a stub WebSocket endpoint in the test (a loopback listener
//! that either completes the upgrade and sends a `welcome`, or drops the TCP
//! connection at once); it stamps every accepted connection with the paused
//! clock, so the gaps between stamps are exactly the session's sleeps, with
//! no real waiting.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use wsgate_client::{Backoff, Options, Session, SessionEvent, SessionOptions};

const MIN: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(1);
/// Failed attempts in a row, enough to reach the cap (100 ms doubles past
/// 1 s at the fifth) and stay there for several draws.
const FAILURES: usize = 12;
/// tokio's timer wheel rounds a deadline up to the next millisecond.
const SLACK: Duration = Duration::from_millis(2);

/// What the stub does with the n-th connection.
#[derive(Clone, Copy)]
enum Answer {
    /// Upgrade, send `welcome`, then close with 1012 (like a drain).
    Welcome,
    /// Drop the TCP connection before the upgrade.
    Drop,
}

/// Serves `plan` in order (then drops every further connection), stamping
/// each accepted connection with the clock.
async fn stub(plan: Vec<Answer>) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let stamps = Arc::new(Mutex::new(Vec::new()));
    let seen = stamps.clone();
    tokio::spawn(async move {
        let mut plan = plan.into_iter();
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            seen.lock().unwrap().push(Instant::now());
            match plan.next().unwrap_or(Answer::Drop) {
                Answer::Drop => drop(tcp),
                Answer::Welcome => {
                    tokio::spawn(async move {
                        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                        let welcome = r#"{"type":"welcome","user":"u","session":"s","node":"stub","protocol":"wsgate.v1","ping_interval_ms":25000,"max_message_bytes":65536}"#;
                        ws.send(Message::text(welcome)).await.unwrap();
                        let bye = CloseFrame {
                            code: CloseCode::Restart,
                            reason: "drain".into(),
                        };
                        // The client may already be gone; the stub only has to try.
                        let _ = ws.close(Some(bye)).await;
                        while let Some(Ok(_)) = ws.next().await {}
                    });
                }
            }
        }
    });
    (url, stamps)
}

/// The session's next event that is not `Disconnected`.
async fn next_connected(session: &mut Session) -> SessionEvent {
    loop {
        match session.next_event(Duration::from_secs(600)).await.unwrap() {
            SessionEvent::Disconnected(_) => continue,
            other => return other,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn reconnect_delays_grow_are_capped_jittered_and_reset_after_a_good_connect() {
    // 0: the first connect; 1..=FAILURES: dropped; then one good connect,
    // one more dropped attempt and a last good connect.
    let mut plan = vec![Answer::Welcome];
    plan.extend(std::iter::repeat_n(Answer::Drop, FAILURES));
    plan.extend([Answer::Welcome, Answer::Drop, Answer::Welcome]);
    let (url, stamps) = stub(plan).await;
    let mut opts = SessionOptions::new(Options::new(url).timeout(Duration::from_secs(5)));
    opts.reconnect = Backoff::new(MIN, MAX);
    let mut session = Session::connect(opts).await.unwrap();

    // Closed by the stub: reconnects through FAILURES dropped attempts.
    assert!(matches!(
        next_connected(&mut session).await,
        SessionEvent::Reconnected(_)
    ));
    // Closed again: the schedule must start over.
    assert!(matches!(
        next_connected(&mut session).await,
        SessionEvent::Reconnected(_)
    ));

    let stamps = stamps.lock().unwrap().clone();
    assert_eq!(stamps.len(), FAILURES + 4, "connections seen by the stub");
    let gaps: Vec<Duration> = stamps.windows(2).map(|w| w[1] - w[0]).collect();
    // gaps[0]: after the first loss (immediate); gaps[k] for k in 1..=FAILURES:
    // before attempt k+1, after k failures in a row (delay(k - 1)).
    assert!(
        gaps[0] < SLACK,
        "first attempt after a loss waits {:?}",
        gaps[0]
    );
    for (k, gap) in gaps.iter().enumerate().take(FAILURES + 1).skip(1) {
        let ceiling = MIN.saturating_mul(1 << (k - 1)).min(MAX);
        assert!(
            *gap + SLACK >= MIN && *gap <= ceiling + SLACK,
            "delay after {k} failures: {gap:?}, not in [{MIN:?}, {ceiling:?}]; all: {gaps:?}"
        );
    }
    let capped: Vec<Duration> = gaps[5..=FAILURES].to_vec();
    // Growth: once the ceiling is high, some delay is well above the floor
    // (each of these 8 draws is below 2 x min with probability 1/9).
    assert!(
        capped.iter().any(|g| *g > MIN * 2),
        "the delays do not grow: {gaps:?}"
    );
    // Jitter: draws between floor and cap differ (no jitter would give the
    // same value every time).
    let mut distinct = capped.clone();
    distinct.sort();
    distinct.dedup_by(|a, b| a.abs_diff(*b) < SLACK);
    assert!(distinct.len() > 1, "no jitter at the cap: {gaps:?}");
    // Reset: after the good connect, the first attempt is immediate again and
    // the one after a single failure waits the floor, not the cap.
    let after_good = FAILURES + 1;
    assert!(
        gaps[after_good] < SLACK,
        "after a good connect the first attempt waits {:?}; all: {gaps:?}",
        gaps[after_good]
    );
    assert!(
        gaps[after_good + 1].abs_diff(MIN) < SLACK,
        "after a good connect one failure waits {:?}, not {MIN:?}; all: {gaps:?}",
        gaps[after_good + 1]
    );
}

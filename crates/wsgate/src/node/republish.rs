//! Republish: a direct message is stored in the recipient's inbox before the
//! sender's `ok`, then published to the recipient's other nodes. When that
//! publish fails (Redis refused or timed out the registry lookup or the
//! `PUBLISH`) the message is safe in the inbox, but a recipient whose node
//! kept its subscription would see it only at its next reconnect. So the
//! envelope is queued here, and one task per node publishes it again, with
//! capped exponential backoff, until the bus takes it.
//!
//! - Order: while anything is queued, later direct messages of this node are
//!   queued behind it (not published around it), so one sender's messages to
//!   one user still arrive in the order sent (contract 5.1).
//! - Bound: at most [`MAX_ENVELOPES`] envelopes and [`MAX_BYTES`] of
//!   content; past either the oldest is dropped (counted in
//!   `wsgate_republished_total{result="dropped"}`). A dropped message (also
//!   one that failed [`MAX_ATTEMPTS`] times) is still in the inbox: the recipient's next connect
//!   (or its node's bus catch-up) replays it.
//! - Nothing on the message path waits here: a push takes a short lock and
//!   wakes the task; only the task sleeps between attempts.
//! - The sender's reply stays `ok` (the store happened; contract 5.2), and
//!   the recipient may get the message twice (live, then from the inbox):
//!   clients drop repeats by `id`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::debug;
use wsgate_protocol::bus::{BusEvent, Envelope};
use wsgate_protocol::ServerFrame;

use crate::cluster::Broker;
use crate::metrics::Metrics;

/// The most envelopes waiting for a republish.
pub const MAX_ENVELOPES: usize = 10_000;
/// The most content bytes (as JSON) waiting for a republish.
pub const MAX_BYTES: usize = 16 << 20;
/// The first pause after a failed republish; doubled up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest pause between republish attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Attempts at one envelope before it is dropped (seven pauses between
/// them, 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 5 s = about 11 s of backoff),
/// so one that cannot go (say, a user whose registry key is broken) holds
/// the ones behind it only that long.
pub const MAX_ATTEMPTS: u32 = 8;

#[derive(Default)]
struct Pending {
    queue: VecDeque<(Envelope, usize)>,
    bytes: usize,
}

/// The queue of envelopes to publish again, and its task's wake-up.
#[derive(Default)]
pub struct Republisher {
    pending: Mutex<Pending>,
    /// Shared with the task, which waits on it holding only a weak handle.
    wake: Arc<Notify>,
}

impl Drop for Republisher {
    fn drop(&mut self) {
        // Wakes the task so that it sees its republisher gone and ends.
        self.wake.notify_one();
    }
}

/// The size an envelope is charged: its message content as JSON (what a
/// client sent, bounded by `max-message-bytes`), plus a fixed overhead.
fn charge(envelope: &Envelope) -> usize {
    let content = match &envelope.event {
        BusEvent::Frame {
            frame: ServerFrame::Message(m),
            ..
        } => serde_json::to_vec(&m.content).map_or(0, |v| v.len()),
        _ => 0,
    };
    content + 256
}

impl Republisher {
    /// Whether anything waits (later direct messages queue behind it).
    pub fn is_pending(&self) -> bool {
        !self.lock().queue.is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an envelope, dropping the oldest past the bound (counted).
    pub fn push(&self, envelope: Envelope, metrics: &Metrics) {
        let size = charge(&envelope);
        let dropped = {
            let mut p = self.lock();
            p.bytes += size;
            p.queue.push_back((envelope, size));
            let mut dropped = 0;
            while p.queue.len() > MAX_ENVELOPES || (p.bytes > MAX_BYTES && p.queue.len() > 1) {
                if let Some((_, s)) = p.queue.pop_front() {
                    p.bytes -= s;
                    dropped += 1;
                }
            }
            metrics.republish_pending.set(p.queue.len() as i64);
            dropped
        };
        metrics.republished_dropped.inc_by(dropped);
        self.wake.notify_one();
    }

    /// The task: publishes the queue's head until it goes through, then the
    /// next. Ends when the republisher is dropped (with its node).
    pub async fn run(this: Weak<Republisher>, broker: Arc<dyn Broker>, metrics: Arc<Metrics>) {
        let Some(wake) = this.upgrade().map(|me| me.wake.clone()) else {
            return;
        };
        let mut backoff = BACKOFF_MIN;
        let mut attempts = 0;
        loop {
            let Some(me) = this.upgrade() else { return };
            let head = me.lock().queue.front().map(|(e, _)| e.clone());
            let Some(envelope) = head else {
                let woken = wake.notified();
                // Only a weak handle is held while idle, so the node can go.
                drop(me);
                woken.await;
                continue;
            };
            let result = broker.publish(&envelope).await;
            attempts += 1;
            let done = match &result {
                Ok(n) => {
                    metrics.broker_published.inc_by(*n as u64);
                    metrics.republished_ok.inc();
                    true
                }
                Err(_) if attempts >= MAX_ATTEMPTS => {
                    metrics.republished_dropped.inc();
                    true
                }
                Err(_) => false,
            };
            if done {
                backoff = BACKOFF_MIN;
                attempts = 0;
                let mut p = me.lock();
                // The head may have been dropped for room meanwhile;
                // remove it only if it is still the one published.
                if p.queue.front().is_some_and(|(e, _)| *e == envelope) {
                    if let Some((_, s)) = p.queue.pop_front() {
                        p.bytes -= s;
                    }
                }
                metrics.republish_pending.set(p.queue.len() as i64);
                continue;
            }
            if let Err(e) = result {
                debug!(error = %e, pause_ms = backoff.as_millis() as u64, "Republish failed; the message stays stored and queued.");
                drop(me);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

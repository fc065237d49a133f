//! The delivery worker: reads the queue, holds each `user.offline` for the
//! offline delay, batches, signs, POSTs, retries, acknowledges.
//!
//! One worker per node, one batch in flight at a time, so events leave in
//! the order they were queued (per user, and per room). A `user.offline` is
//! held (still unacknowledged in the queue) until `time + offline-delay`,
//! then sent only if [`EventQueue::offline_due`] says the user did not come
//! back; the events queued behind it are not held up. Memory is bounded:
//! at most `batch-max` events ready and [`HELD_MAX`] offline events held;
//! past that the worker stops reading and the queue keeps the rest.
//!
//! A batch that gets no 2xx (or no answer within the timeout) is sent
//! again, the same body with a fresh signature, after a capped exponential
//! backoff with jitter; after `max-attempts` it is dropped and counted
//! (`wsgate_webhook_deliveries_total{result="dropped"}`, and its events in
//! `wsgate_webhook_events_dropped_total{reason="max_attempts"}`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;

use super::event::{batch_body, EventType, Head};
use super::http::Poster;
use super::queue::{Entry, EventQueue};
use super::{sign, WebhookConfig};
use crate::clock::now_ms;
use crate::metrics::{Metrics, WebhookDrop, WebhookResult};

/// Most `user.offline` events held for their delay at once.
pub const HELD_MAX: usize = 100_000;
/// Most bytes of events in one POST (a batch also ends at `batch-max` events).
pub const BATCH_MAX_BYTES: usize = 1024 * 1024;
/// First retry delay; doubled per attempt up to `backoff-max`.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// How long a read waits for events while nothing else is due.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// How often the backlog (for the pending gauges) is asked.
const BACKLOG_PERIOD: Duration = Duration::from_secs(1);

struct Item {
    key: String,
    json: String,
    time: u64,
}

struct Held {
    item: Item,
    user: String,
    id: String,
}

/// One node's delivery worker.
pub struct Worker {
    config: Arc<WebhookConfig>,
    queue: Arc<dyn EventQueue>,
    metrics: Arc<Metrics>,
    poster: Poster,
    ready: VecDeque<Item>,
    /// (due ms, sequence) → the held offline event.
    held: BTreeMap<(u64, u64), Held>,
    held_users: HashMap<String, usize>,
    seq: u64,
    /// Keys to acknowledge (dropped offline events, unreadable entries).
    done: Vec<String>,
    backlog_at: Instant,
    backlog: super::queue::Backlog,
}

impl Worker {
    pub fn new(
        config: Arc<WebhookConfig>,
        queue: Arc<dyn EventQueue>,
        metrics: Arc<Metrics>,
    ) -> Worker {
        let poster = Poster::new(config.url.clone(), config.timeout);
        Worker {
            config,
            queue,
            metrics,
            poster,
            ready: VecDeque::new(),
            held: BTreeMap::new(),
            held_users: HashMap::new(),
            seq: 0,
            done: Vec::new(),
            backlog_at: Instant::now(),
            backlog: super::queue::Backlog::default(),
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut errors: u32 = 0;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let step = tokio::select! {
                () = shutdown.cancelled() => return,
                r = self.step(&shutdown) => r,
            };
            match step {
                Ok(()) => errors = 0,
                Err(e) => {
                    // The queue (Redis) is away: wait, capped, and try again.
                    errors = errors.saturating_add(1);
                    self.metrics.webhooks.queue_error();
                    debug!(error = %e, "Webhook queue unavailable.");
                    let wait = backoff(errors, Duration::from_secs(5));
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    async fn step(&mut self, shutdown: &CancellationToken) -> Result<(), super::QueueError> {
        self.release_due().await?;
        if self.ready.len() < self.config.batch_max && self.held.len() < HELD_MAX {
            let wait = if self.ready.is_empty() {
                self.until_next_due().min(IDLE_WAIT)
            } else {
                Duration::ZERO
            };
            let want = self.config.batch_max - self.ready.len();
            let entries = self.queue.read(want, wait).await?;
            for entry in entries {
                self.take(entry).await?;
            }
        }
        if !self.done.is_empty() {
            let done = std::mem::take(&mut self.done);
            self.queue.ack(&done).await?;
        }
        self.gauges().await;
        if !self.ready.is_empty() {
            self.deliver(shutdown).await?;
        }
        Ok(())
    }

    fn until_next_due(&self) -> Duration {
        match self.held.keys().next() {
            Some((due, _)) => Duration::from_millis(due.saturating_sub(now_ms())),
            None => IDLE_WAIT,
        }
    }

    /// One read entry: held (an offline event), ready, or acknowledged
    /// unread (not an event).
    async fn take(&mut self, entry: Entry) -> Result<(), super::QueueError> {
        let Some(head) = Head::parse(&entry.json) else {
            warn!(key = %entry.key, "Dropped an unreadable webhook event.");
            self.metrics.webhooks.event_dropped(WebhookDrop::Unreadable);
            self.done.push(entry.key);
            return Ok(());
        };
        let item = Item {
            key: entry.key,
            json: entry.json,
            time: head.time,
        };
        match (EventType::parse(&head.kind), head.user) {
            (Some(EventType::UserOffline), Some(user)) => {
                let due = head.time + self.config.offline_delay.as_millis() as u64;
                self.seq += 1;
                *self.held_users.entry(user.clone()).or_default() += 1;
                self.held.insert(
                    (due, self.seq),
                    Held {
                        item,
                        user,
                        id: head.id,
                    },
                );
            }
            (Some(EventType::UserOnline), Some(user)) if self.held_users.contains_key(&user) => {
                // The user's earlier offline is decided first, so the two
                // leave in order.
                let keys: Vec<(u64, u64)> = self
                    .held
                    .iter()
                    .filter(|(_, h)| h.user == user)
                    .map(|(k, _)| *k)
                    .collect();
                for k in keys {
                    if let Some(h) = self.held.remove(&k) {
                        self.decide(h).await?;
                    }
                }
                self.ready.push_back(item);
            }
            _ => self.ready.push_back(item),
        }
        Ok(())
    }

    /// Moves the offline events whose delay is over to `ready`, or drops them.
    async fn release_due(&mut self) -> Result<(), super::QueueError> {
        let now = now_ms();
        while let Some(entry) = self.held.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let held = entry.remove();
            self.decide_or_keep(held, now).await?;
        }
        Ok(())
    }

    async fn decide_or_keep(&mut self, held: Held, now: u64) -> Result<(), super::QueueError> {
        match self.queue.offline_due(&held.user, &held.id).await {
            Ok(due) => {
                self.settle(&held.user);
                if due {
                    self.ready.push_back(held.item);
                } else {
                    self.done.push(held.item.key);
                }
                Ok(())
            }
            Err(e) => {
                // Asked again in a second.
                self.seq += 1;
                self.held.insert((now + 1000, self.seq), held);
                Err(e)
            }
        }
    }

    async fn decide(&mut self, held: Held) -> Result<(), super::QueueError> {
        self.decide_or_keep(held, now_ms()).await
    }

    fn settle(&mut self, user: &str) {
        if let Some(n) = self.held_users.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                self.held_users.remove(user);
            }
        }
    }

    /// Sends the next batch until it is answered 2xx or dropped.
    async fn deliver(&mut self, shutdown: &CancellationToken) -> Result<(), super::QueueError> {
        let mut n = 0;
        let mut bytes = 0;
        for item in &self.ready {
            if n == self.config.batch_max || (n > 0 && bytes + item.json.len() > BATCH_MAX_BYTES) {
                break;
            }
            n += 1;
            bytes += item.json.len();
        }
        let body = Bytes::from(batch_body(
            &Uuid::now_v7().to_string(),
            now_ms(),
            self.ready.iter().take(n).map(|i| i.json.as_str()),
        ));
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let t = now_ms() / 1000;
            let signature = sign::signature(self.config.secret.as_bytes(), t, &body);
            let result = self.poster.post(body.clone(), &signature).await;
            let sent_at = now_ms();
            match result {
                Ok(status) if (200..300).contains(&status) => {
                    self.metrics.webhooks.delivery(WebhookResult::Ok);
                    for item in self.ready.iter().take(n) {
                        self.metrics
                            .webhooks
                            .latency(sent_at.saturating_sub(item.time) as f64 / 1000.0);
                    }
                    break;
                }
                Ok(status) => debug!(status, attempt, "Webhook receiver refused a batch."),
                Err(e) => debug!(error = %e, attempt, "Webhook batch not delivered."),
            }
            if attempt >= self.config.max_attempts {
                self.metrics.webhooks.delivery(WebhookResult::Dropped);
                for _ in 0..n {
                    self.metrics
                        .webhooks
                        .event_dropped(WebhookDrop::MaxAttempts);
                }
                warn!(
                    events = n,
                    attempts = attempt,
                    "Dropped a webhook batch after its last attempt."
                );
                break;
            }
            self.metrics.webhooks.delivery(WebhookResult::Retry);
            // The oldest event's age keeps growing while the batch waits.
            self.gauges().await;
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(backoff(attempt, self.config.backoff_max)) => {}
            }
        }
        let keys: Vec<String> = self.ready.drain(..n).map(|i| i.key).collect();
        self.queue.ack(&keys).await
    }

    /// `wsgate_webhook_pending` and `wsgate_webhook_oldest_pending_seconds`.
    async fn gauges(&mut self) {
        if self.backlog_at.elapsed() >= BACKLOG_PERIOD {
            self.backlog_at = Instant::now();
            match self.queue.backlog().await {
                Ok(b) => self.backlog = b,
                Err(e) => debug!(error = %e, "Webhook backlog unknown."),
            }
        }
        let held = self.ready.len() + self.held.len();
        let oldest = self
            .ready
            .iter()
            .map(|i| i.time)
            .chain(self.held.values().map(|h| h.item.time))
            .chain(self.backlog.oldest_ms)
            .min();
        self.metrics
            .webhooks
            .pending
            .set(held as i64 + self.backlog.waiting as i64);
        let age = oldest.map_or(0.0, |t| now_ms().saturating_sub(t) as f64 / 1000.0);
        self.metrics.webhooks.oldest_pending.set(age);
    }
}

/// Capped exponential backoff with jitter: `min(cap, 500ms × 2^(n-1))`,
/// scaled by a random factor in [0.5, 1).
fn backoff(attempt: u32, cap: Duration) -> Duration {
    let exp = BACKOFF_MIN.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    let full = exp.min(cap);
    full.mul_f64(rand::rng().random_range(0.5..1.0))
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(30);
        assert!(backoff(1, cap) < Duration::from_millis(500));
        assert!(backoff(1, cap) >= Duration::from_millis(250));
        assert!(backoff(4, cap) >= Duration::from_secs(2));
        assert!(backoff(40, cap) < cap);
        assert!(backoff(40, cap) >= cap / 2);
    }
}

//! Webhooks (contract section 10): cluster-wide transitions and accepted
//! messages, POSTed to `--webhook-url` in signed batches, once per cluster
//! and at least once.
//!
//! Data flows one way: where a transition is decided, it is queued; one
//! worker per node reads the queue and delivers.
//!
//! - Standalone ([`memory`]): the memory broker queues a transition under
//!   its own lock at the moment a count crosses zero.
//! - Cluster ([`outbox`], [`stream`]): the Redis script that changes a user's
//!   or room's cluster-wide count appends the event to a small outbox in
//!   the same slot (`{p}:webhook-user-outbox:{user}`,
//!   `{p}:webhook-room-outbox:{room}`), after the node wrote an index entry
//!   (`{p}:webhook-outbox-index`) naming that outbox; the node then moves the
//!   outbox to the stream `{p}:events` and removes its index entry. A node
//!   dying between the steps leaves an index entry that any survivor's
//!   sweeper finds and finishes; a repeat is the same event id twice, which
//!   receivers drop. One consumer group reads the stream; the node holding
//!   the reader lease reads it, and a new holder claims the old one's
//!   pending entries (`XAUTOCLAIM`).
//! - Messages ([`queue::EventSink`]): written by the node after it accepted
//!   one, without waiting (a bounded queue; a full one drops and counts).
//!
//! The worker ([`delivery`]) holds `user.offline` for the offline delay,
//! batches, signs ([`sign`]), POSTs ([`http`]), retries with capped
//! exponential backoff and jitter, and acknowledges. Only the types in
//! `--webhook-events` are queued at all.

pub mod delivery;
pub mod event;
pub mod http;
pub mod memory;
pub mod outbox;
pub mod queue;
pub mod sign;
pub mod stream;

use std::time::Duration;

pub use crate::config::webhooks::{EventSet, EventType, ReceiverUrl, WebhookConfig};
pub use queue::{EventQueue, EventSink, QueueError};

/// A node's webhooks: where it writes accepted messages, and the worker
/// that delivers (stopped by [`Webhooks::shutdown`]).
pub struct Webhooks {
    sink: std::sync::Arc<dyn EventSink>,
    stop: tokio_util::sync::CancellationToken,
    stream: Option<std::sync::Arc<stream::StreamQueue>>,
}

impl Webhooks {
    /// Standalone: delivers from the in-memory queue the memory broker writes.
    pub fn start_memory(
        config: std::sync::Arc<WebhookConfig>,
        events: std::sync::Arc<memory::MemoryEvents>,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Webhooks {
        let stop = tokio_util::sync::CancellationToken::new();
        let worker = delivery::Worker::new(config, events.clone(), metrics);
        tokio::spawn(worker.run(stop.clone()));
        Webhooks {
            sink: events,
            stop,
            stream: None,
        }
    }

    /// Cluster mode: the stream reader (while this node holds the lease);
    /// `outboxes` (shared with the Redis broker, stopped by `stop`) writes.
    pub fn start_redis(
        config: std::sync::Arc<WebhookConfig>,
        outboxes: std::sync::Arc<outbox::Outboxes>,
        stop: tokio_util::sync::CancellationToken,
        redis: std::sync::Arc<crate::redis::Redis>,
        node: &str,
        lease: Duration,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Webhooks {
        let queue = std::sync::Arc::new(stream::StreamQueue::new(redis, node, lease));
        let worker = delivery::Worker::new(config, queue.clone(), metrics);
        tokio::spawn(worker.run(stop.clone()));
        tokio::spawn(queue.clone().keep_lease(stop.clone()));
        Webhooks {
            sink: outboxes,
            stop,
            stream: Some(queue),
        }
    }

    /// An accepted room or direct message.
    pub fn message(&self, frame: &wsgate_protocol::MessageFrame) {
        self.sink.message(frame);
    }

    /// Stops the worker and, in cluster mode, gives the reader lease up so
    /// another node reads at once (what this node held is claimed by it).
    pub async fn shutdown(&self) {
        self.stop.cancel();
        if let Some(stream) = &self.stream {
            if let Err(e) = stream.release().await {
                // The lease then runs out by itself after node-ttl.
                tracing::debug!(error = %e, "Webhook reader lease not released.");
            }
        }
    }
}

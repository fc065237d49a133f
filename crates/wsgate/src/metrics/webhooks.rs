//! The `wsgate_webhook_*` metrics (contract section 9, and the extensions
//! docs/webhooks.md lists), registered with the rest in [`super::Metrics`].

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

use super::{counter, counter_vec, gauge};

/// The outcome of one webhook POST, for `wsgate_webhook_deliveries_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookResult {
    /// Answered 2xx: the batch is delivered.
    Ok,
    /// Not delivered; it will be sent again.
    Retry,
    /// Not delivered at its last attempt: the batch is dropped.
    Dropped,
}

/// Why a webhook event was dropped, for `wsgate_webhook_events_dropped_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookDrop {
    /// Its batch failed `--webhook-max-attempts` times.
    MaxAttempts,
    /// The node's queue was full (standalone, or message events waiting to
    /// be written to the stream).
    QueueFull,
    /// It could not be written to the stream.
    StreamWrite,
    /// A stream entry that is not an event.
    Unreadable,
}

impl WebhookDrop {
    const ALL: [WebhookDrop; 4] = [
        WebhookDrop::MaxAttempts,
        WebhookDrop::QueueFull,
        WebhookDrop::StreamWrite,
        WebhookDrop::Unreadable,
    ];

    const fn as_str(self) -> &'static str {
        match self {
            WebhookDrop::MaxAttempts => "max_attempts",
            WebhookDrop::QueueFull => "queue_full",
            WebhookDrop::StreamWrite => "stream_write",
            WebhookDrop::Unreadable => "unreadable",
        }
    }
}

/// The webhook metric handles.
pub struct WebhookMetrics {
    /// `wsgate_webhook_deliveries_total`: [ok, retry, dropped].
    deliveries: [IntCounter; 3],
    dropped: Vec<IntCounter>,
    queue_errors: IntCounter,
    latency: Histogram,
    /// `wsgate_webhook_pending`: events waiting for delivery, this node.
    pub pending: IntGauge,
    /// `wsgate_webhook_oldest_pending_seconds`.
    pub oldest_pending: Gauge,
}

impl WebhookMetrics {
    pub(super) fn new(r: &Registry) -> prometheus::Result<WebhookMetrics> {
        let deliveries = counter_vec(
            r,
            "wsgate_webhook_deliveries_total",
            "Webhook POSTs, by result (ok: answered 2xx; retry: failed, sent again; dropped: failed at the last attempt).",
            "result",
        )?;
        let dropped = counter_vec(
            r,
            "wsgate_webhook_events_dropped_total",
            "Webhook events dropped undelivered, by reason.",
            "reason",
        )?;
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "wsgate_webhook_delivery_latency_seconds",
                "From an event's time to the 2xx answer to the POST that carried it.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
        )?;
        r.register(Box::new(latency.clone()))?;
        let oldest_pending = Gauge::new(
            "wsgate_webhook_oldest_pending_seconds",
            "Age of the oldest webhook event waiting for delivery (held or in flight on this node, or unread in the stream it reads), 0 when none.",
        )?;
        r.register(Box::new(oldest_pending.clone()))?;
        Ok(WebhookMetrics {
            deliveries: [
                deliveries.with_label_values(&["ok"]),
                deliveries.with_label_values(&["retry"]),
                deliveries.with_label_values(&["dropped"]),
            ],
            dropped: WebhookDrop::ALL
                .iter()
                .map(|d| dropped.with_label_values(&[d.as_str()]))
                .collect(),
            queue_errors: counter(
                r,
                "wsgate_webhook_queue_errors_total",
                "Failed reads, acknowledgements and writes of the webhook event queue (Redis).",
            )?,
            latency,
            pending: gauge(
                r,
                "wsgate_webhook_pending",
                "Webhook events waiting for delivery, this node (held, in flight, and unread in the stream when this node reads it).",
            )?,
            oldest_pending,
        })
    }

    /// One webhook POST's outcome.
    pub fn delivery(&self, result: WebhookResult) {
        self.deliveries[result as usize].inc();
    }

    /// One webhook event dropped undelivered.
    pub fn event_dropped(&self, reason: WebhookDrop) {
        self.dropped[reason as usize].inc();
    }

    /// A failed operation on the webhook queue.
    pub fn queue_error(&self) {
        self.queue_errors.inc();
    }

    /// One delivered webhook event's latency.
    pub fn latency(&self, secs: f64) {
        self.latency.observe(secs);
    }
}

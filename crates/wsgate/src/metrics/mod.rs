//! Every metric of the node, created once and cached (contract section 9).
//!
//! Handles for labelled metrics are resolved at start-up into arrays indexed by
//! the label's enum, so the hot path never looks up a label. Every label takes a
//! value from a fixed set (frame type, error code, close code, message kind,
//! rejection reason, API route and status): never a user id or room name.
//! Each labelled series is pre-registered at zero so dashboards and alerts see
//! it before the first event.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use wsgate_protocol::{ClientFrame, CloseCode, ErrorCode, Kind};

mod bus;
mod webhooks;
pub use bus::BusMetrics;
pub use webhooks::{WebhookDrop, WebhookMetrics, WebhookResult};

/// Why an upgrade or connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    BadRequest,
    Unauthorized,
    Origin,
    IpLimit,
    NodeFull,
    Draining,
    NotReady,
    HandshakeLimit,
    HandshakeIpLimit,
    Proxy,
    /// Upgraded, but the cluster registry could not record the connection
    /// (closed with 1013 "registry unavailable").
    Registry,
}

impl RejectReason {
    const ALL: [RejectReason; 11] = [
        RejectReason::BadRequest,
        RejectReason::Unauthorized,
        RejectReason::Origin,
        RejectReason::IpLimit,
        RejectReason::NodeFull,
        RejectReason::Draining,
        RejectReason::NotReady,
        RejectReason::HandshakeLimit,
        RejectReason::HandshakeIpLimit,
        RejectReason::Proxy,
        RejectReason::Registry,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::BadRequest => "bad_request",
            RejectReason::Unauthorized => "unauthorized",
            RejectReason::Origin => "origin",
            RejectReason::IpLimit => "ip_limit",
            RejectReason::NodeFull => "node_full",
            RejectReason::Draining => "draining",
            RejectReason::NotReady => "not_ready",
            RejectReason::HandshakeLimit => "handshake_limit",
            RejectReason::HandshakeIpLimit => "handshake_ip_limit",
            RejectReason::Proxy => "proxy",
            RejectReason::Registry => "registry",
        }
    }
}

/// Why an inbox store was refused, for `wsgate_inbox_refused_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxRefused {
    Full,
    SenderShare,
    Bytes,
    RedisMemory,
}

impl InboxRefused {
    const ALL: [InboxRefused; 4] = [
        InboxRefused::Full,
        InboxRefused::SenderShare,
        InboxRefused::Bytes,
        InboxRefused::RedisMemory,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            InboxRefused::Full => "full",
            InboxRefused::SenderShare => "sender_share",
            InboxRefused::Bytes => "bytes",
            InboxRefused::RedisMemory => "redis_memory",
        }
    }
}

/// A broker operation, for `wsgate_broker_errors_total{op}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerOp {
    Publish,
    Subscribe,
    Presence,
    Registry,
    Inbox,
    Heartbeat,
    Decode,
    Dropped,
    History,
}

impl BrokerOp {
    const ALL: [BrokerOp; 9] = [
        BrokerOp::Publish,
        BrokerOp::Subscribe,
        BrokerOp::Presence,
        BrokerOp::Registry,
        BrokerOp::Inbox,
        BrokerOp::Heartbeat,
        BrokerOp::Decode,
        BrokerOp::Dropped,
        BrokerOp::History,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            BrokerOp::Publish => "publish",
            BrokerOp::Subscribe => "subscribe",
            BrokerOp::Presence => "presence",
            BrokerOp::Registry => "registry",
            BrokerOp::Inbox => "inbox",
            BrokerOp::Heartbeat => "heartbeat",
            BrokerOp::Decode => "decode",
            BrokerOp::Dropped => "dropped",
            BrokerOp::History => "history",
        }
    }
}

/// A server API route, for `wsgate_api_requests_total{route}`. The API
/// (HTTP, and gRPC when served) names its routes with this enum, so the label
/// set is fixed here and both sides share it without importing each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiRoute {
    Publish,
    Rooms,
    History,
    Users,
    Disconnect,
    Nodes,
    OpenApi,
    Unknown,
}

impl ApiRoute {
    pub const ALL: [ApiRoute; 8] = [
        ApiRoute::Publish,
        ApiRoute::Rooms,
        ApiRoute::History,
        ApiRoute::Users,
        ApiRoute::Disconnect,
        ApiRoute::Nodes,
        ApiRoute::OpenApi,
        ApiRoute::Unknown,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ApiRoute::Publish => "publish",
            ApiRoute::Rooms => "rooms",
            ApiRoute::History => "history",
            ApiRoute::Users => "users",
            ApiRoute::Disconnect => "disconnect",
            ApiRoute::Nodes => "nodes",
            ApiRoute::OpenApi => "openapi",
            ApiRoute::Unknown => "unknown",
        }
    }
}

/// Labels for a close that had no close frame (the peer vanished).
pub const DISCONNECT_ABNORMAL: &str = "1006";

/// All metric handles of one node.
pub struct Metrics {
    registry: Registry,
    pub connections: IntGauge,
    pub connections_accepted: IntCounter,
    rejected: Vec<IntCounter>,
    disconnects: Vec<IntCounter>,
    disconnect_abnormal: IntCounter,
    disconnects_by_client: IntCounter,
    frames_received: Vec<IntCounter>,
    frames_received_unknown: IntCounter,
    frame_errors: Vec<IntCounter>,
    published: Vec<IntCounter>,
    delivered: Vec<IntCounter>,
    latency: Vec<Histogram>,
    pub slow_consumer_disconnects: IntCounter,
    pub rate_limited: IntCounter,
    pub rooms: IntGauge,
    pub inbox_stored: IntCounter,
    pub inbox_replayed: IntCounter,
    pub inbox_acked: IntCounter,
    pub inbox_dropped_trimmed: IntCounter,
    pub inbox_dropped_expired: IntCounter,
    inbox_refused: Vec<IntCounter>,
    pub broker_published: IntCounter,
    /// `wsgate_republish_pending`, `wsgate_republished_total{result}` (`node/republish.rs`).
    pub republish_pending: IntGauge,
    pub republished_ok: IntCounter,
    pub republished_dropped: IntCounter,
    pub broker_received: IntCounter,
    broker_errors: Vec<IntCounter>,
    pub broker_up: IntGauge,
    /// `wsgate_bus_lag_seconds`: published on the bus → handled by this node.
    bus_lag: Histogram,
    pub bus: BusMetrics,
    pub cluster_nodes: IntGauge,
    pub redis_replicas: IntGauge,
    /// `--redis-wait-replicas`, so an alert can compare the two gauges.
    pub redis_wait_replicas: IntGauge,
    /// `wsgate_history_recoveries_total`: [recovered, not_recovered].
    history_recoveries: [IntCounter; 2],
    api_requests: IntCounterVec,
    grpc_requests: IntCounterVec,
    pub ready: IntGauge,
    pub draining: IntGauge,
    /// The `wsgate_webhook_*` metrics.
    pub webhooks: WebhookMetrics,
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
) -> prometheus::Result<IntCounterVec> {
    let v = IntCounterVec::new(Opts::new(name, help), &[label])?;
    registry.register(Box::new(v.clone()))?;
    Ok(v)
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    /// Creates and registers every metric (and the process collector).
    /// Fails only on a bad metric definition (a bug caught by every test).
    pub fn new() -> prometheus::Result<Metrics> {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            r.register(Box::new(pc))?;
        }
        let rejected = counter_vec(
            &r,
            "wsgate_connections_rejected_total",
            "Upgrades refused, by reason.",
            "reason",
        )?;
        let disconnects = counter_vec(
            &r,
            "wsgate_disconnects_total",
            "Connections closed, by close code (1006: no close frame).",
            "code",
        )?;
        let frames = counter_vec(
            &r,
            "wsgate_frames_received_total",
            "Client frames decoded, by type (unknown: undecodable or unknown type).",
            "type",
        )?;
        let errors = counter_vec(
            &r,
            "wsgate_frame_errors_total",
            "Error frames sent, by code.",
            "code",
        )?;
        let published = counter_vec(
            &r,
            "wsgate_messages_published_total",
            "Messages accepted by this node, by kind.",
            "kind",
        )?;
        let delivered = counter_vec(
            &r,
            "wsgate_messages_delivered_total",
            "Messages written to client sockets on this node, by kind.",
            "kind",
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "wsgate_delivery_latency_seconds",
                "From acceptance by a node to the write to the recipient socket, by kind.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["kind"],
        )?;
        r.register(Box::new(latency.clone()))?;
        let bus_lag = Histogram::with_opts(
            HistogramOpts::new(
                "wsgate_bus_lag_seconds",
                "From the publishing node handing an envelope to the bus to this node handling it (its inbound queue included).",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )?;
        r.register(Box::new(bus_lag.clone()))?;
        let republished = counter_vec(
            &r,
            "wsgate_republished_total",
            "Direct messages published again after a failed live publish, by result.",
            "result",
        )?;
        let dropped = counter_vec(
            &r,
            "wsgate_inbox_dropped_total",
            "Inbox messages dropped unacked, by reason.",
            "reason",
        )?;
        let refused = counter_vec(
            &r,
            "wsgate_inbox_refused_total",
            "Direct messages refused by the recipient's inbox, by reason.",
            "reason",
        )?;
        let broker_errors = counter_vec(
            &r,
            "wsgate_broker_errors_total",
            "Broker (Redis) failures, by operation.",
            "op",
        )?;
        let api_requests = IntCounterVec::new(
            Opts::new(
                "wsgate_api_requests_total",
                "Server API requests, by route and status.",
            ),
            &["route", "status"],
        )?;
        r.register(Box::new(api_requests.clone()))?;
        for route in ApiRoute::ALL {
            api_requests.with_label_values(&[route.as_str(), "200"]);
        }
        let recoveries = counter_vec(
            &r,
            "wsgate_history_recoveries_total",
            "Joins with `since`, by whether the missed room messages could be replayed.",
            "result",
        )?;
        // Labels: a method of wsgate.v1.Gateway and a canonical status code
        // name: both fixed sets.
        let grpc_requests = IntCounterVec::new(
            Opts::new(
                "wsgate_grpc_requests_total",
                "gRPC server API calls (wsgate.v1.Gateway), by method and status code.",
            ),
            &["method", "code"],
        )?;
        r.register(Box::new(grpc_requests.clone()))?;
        let webhooks = WebhookMetrics::new(&r)?;

        Ok(Metrics {
            connections: gauge(
                &r,
                "wsgate_connections",
                "Open WebSocket connections on this node.",
            )?,
            connections_accepted: counter(
                &r,
                "wsgate_connections_accepted_total",
                "WebSocket upgrades accepted.",
            )?,
            rejected: RejectReason::ALL
                .iter()
                .map(|x| rejected.with_label_values(&[x.as_str()]))
                .collect(),
            disconnects: CloseCode::ALL
                .iter()
                .map(|c| disconnects.with_label_values(&[c.label()]))
                .collect(),
            disconnect_abnormal: disconnects.with_label_values(&[DISCONNECT_ABNORMAL]),
            disconnects_by_client: disconnects.with_label_values(&["client"]),
            frames_received: ClientFrame::TYPES
                .iter()
                .map(|t| frames.with_label_values(&[t]))
                .collect(),
            frames_received_unknown: frames.with_label_values(&["unknown"]),
            frame_errors: ErrorCode::ALL
                .iter()
                .map(|c| errors.with_label_values(&[c.as_str()]))
                .collect(),
            published: Kind::ALL
                .iter()
                .map(|k| published.with_label_values(&[k.as_str()]))
                .collect(),
            delivered: Kind::ALL
                .iter()
                .map(|k| delivered.with_label_values(&[k.as_str()]))
                .collect(),
            latency: Kind::ALL
                .iter()
                .map(|k| latency.with_label_values(&[k.as_str()]))
                .collect(),
            slow_consumer_disconnects: counter(
                &r,
                "wsgate_slow_consumer_disconnects_total",
                "Connections closed with 1013 because they did not read fast enough.",
            )?,
            rate_limited: counter(
                &r,
                "wsgate_rate_limited_total",
                "Client frames refused by the rate limit.",
            )?,
            rooms: gauge(&r, "wsgate_rooms", "Rooms with a member on this node.")?,
            inbox_stored: counter(
                &r,
                "wsgate_inbox_stored_total",
                "Direct messages stored in inboxes.",
            )?,
            inbox_replayed: counter(
                &r,
                "wsgate_inbox_replayed_total",
                "Inbox messages replayed to reconnecting clients.",
            )?,
            inbox_acked: counter(
                &r,
                "wsgate_inbox_acked_total",
                "Inbox messages removed by a recipient's ack.",
            )?,
            inbox_dropped_trimmed: dropped.with_label_values(&["trimmed"]),
            inbox_dropped_expired: dropped.with_label_values(&["expired"]),
            inbox_refused: InboxRefused::ALL
                .iter()
                .map(|r| refused.with_label_values(&[r.as_str()]))
                .collect(),
            broker_published: counter(
                &r,
                "wsgate_broker_published_total",
                "Envelopes this node published on the cluster bus.",
            )?,
            republish_pending: gauge(&r, "wsgate_republish_pending", "Direct messages to publish again.")?,
            republished_ok: republished.with_label_values(&["ok"]),
            republished_dropped: republished.with_label_values(&["dropped"]),
            broker_received: counter(
                &r,
                "wsgate_broker_received_total",
                "Envelopes this node received from the cluster bus.",
            )?,
            broker_errors: BrokerOp::ALL
                .iter()
                .map(|o| broker_errors.with_label_values(&[o.as_str()]))
                .collect(),
            broker_up: gauge(
                &r,
                "wsgate_broker_up",
                "1 when the broker (Redis) is connected and subscribed.",
            )?,
            bus_lag,
            bus: BusMetrics::new(&r)?,
            cluster_nodes: gauge(
                &r,
                "wsgate_cluster_nodes",
                "Live nodes seen in the cluster.",
            )?,
            redis_replicas: gauge(
                &r,
                "wsgate_redis_replicas",
                "Replicas connected to the Redis primary (sentinel mode, and single mode with --redis-wait-replicas).",
            )?,
            redis_wait_replicas: gauge(
                &r,
                "wsgate_redis_wait_replicas",
                "Replicas a direct message must reach before the sender's ok (--redis-wait-replicas; 0 = no wait).",
            )?,
            history_recoveries: [
                recoveries.with_label_values(&["recovered"]),
                recoveries.with_label_values(&["not_recovered"]),
            ],
            api_requests,
            grpc_requests,
            ready: gauge(&r, "wsgate_ready", "1 when /readyz answers 200.")?,
            draining: gauge(
                &r,
                "wsgate_draining",
                "1 while the node drains for shutdown.",
            )?,
            webhooks,
            registry: r,
        })
    }

    pub fn rejected(&self, reason: RejectReason) {
        self.rejected[reason as usize].inc();
    }

    pub fn disconnect(&self, code: Option<CloseCode>) {
        match code {
            Some(c) => match CloseCode::ALL.iter().position(|x| *x == c) {
                Some(i) => self.disconnects[i].inc(),
                None => self.disconnect_abnormal.inc(),
            },
            None => self.disconnect_abnormal.inc(),
        }
    }

    /// A close the client started (any code it chose).
    pub fn disconnect_by_client(&self) {
        self.disconnects_by_client.inc();
    }

    pub fn frame_received(&self, frame: &ClientFrame) {
        let i = ClientFrame::TYPES
            .iter()
            .position(|t| *t == frame.type_name())
            .unwrap_or(0);
        self.frames_received[i].inc();
    }

    pub fn frame_unknown(&self) {
        self.frames_received_unknown.inc();
    }

    pub fn frame_error(&self, code: ErrorCode) {
        self.frame_errors[code as usize].inc();
    }

    pub fn published(&self, kind: Kind) {
        self.published[kind as usize].inc();
    }

    pub fn delivered(&self, kind: Kind, latency_secs: f64) {
        self.delivered[kind as usize].inc();
        self.latency[kind as usize].observe(latency_secs);
    }

    /// An envelope published at `sent_ms` (the publisher's clock) is being
    /// handled now; clock skew below zero counts as no lag.
    pub fn bus_lag(&self, sent_ms: u64) {
        let lag_ms = crate::clock::now_ms().saturating_sub(sent_ms);
        self.bus_lag.observe(lag_ms as f64 / 1000.0);
    }

    pub fn inbox_refused(&self, reason: InboxRefused) {
        self.inbox_refused[reason as usize].inc();
    }

    pub fn broker_error(&self, op: BrokerOp) {
        self.broker_errors[op as usize].inc();
    }

    /// A join with `since` was (or was not) recovered.
    pub fn history_recovery(&self, recovered: bool) {
        self.history_recoveries[usize::from(!recovered)].inc();
    }

    /// One API answer. The status label is bounded: the API only answers
    /// the statuses its error type maps to.
    pub fn api_request(&self, route: ApiRoute, status: u16) {
        self.api_requests
            .with_label_values(&[route.as_str(), &status.to_string()])
            .inc();
    }

    /// One gRPC call: `method` and `code` come from fixed sets (see `grpc::service`).
    pub fn grpc_request(&self, method: &'static str, code: &'static str) {
        self.grpc_requests.with_label_values(&[method, code]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(error = %e, "Metrics encoding failed.");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

//! The bus reader's metrics (`wsgate_bus_*` besides the lag histogram),
//! registered with the rest in [`super::Metrics`]: the inbound queue's
//! overflows, and in Redis Cluster mode what a shard that is down costs
//! (contract 6: the node stays ready; members of the rooms on that shard
//! miss live messages until it is back, and catch up from the history).

use prometheus::{IntCounter, IntGauge, Registry};

use super::{counter, gauge};

/// The bus reader's metric handles.
pub struct BusMetrics {
    /// `wsgate_bus_queue_overflows_total`: the inbound queue was full.
    pub queue_overflows: IntCounter,
    /// `wsgate_bus_shard_losses_total`: a shard connection that holds
    /// neither this node's channel nor the broadcast channel was lost.
    pub shard_losses: IntCounter,
    /// `wsgate_bus_channels_down`: wanted room channels not subscribed
    /// now because their shard is down.
    pub channels_down: IntGauge,
    /// `wsgate_bus_room_catch_ups_total`: rooms caught up from their
    /// history after their shard came back.
    pub room_catch_ups: IntCounter,
}

impl BusMetrics {
    pub(super) fn new(r: &Registry) -> prometheus::Result<BusMetrics> {
        Ok(BusMetrics {
            queue_overflows: counter(
                r,
                "wsgate_bus_queue_overflows_total",
                "Times the bus reader found its queue to the node full and reconnected (the node then catches up as after an outage).",
            )?,
            shard_losses: counter(
                r,
                "wsgate_bus_shard_losses_total",
                "Redis Cluster: times a shard connection holding neither this node's channel nor the broadcast channel was lost; its room channels were resubscribed alone and the node stayed ready.",
            )?,
            channels_down: gauge(
                r,
                "wsgate_bus_channels_down",
                "Redis Cluster: wanted room channels not subscribed now because their shard is down (their local members miss live room messages until it is back).",
            )?,
            room_catch_ups: counter(
                r,
                "wsgate_bus_room_catch_ups_total",
                "Redis Cluster: rooms caught up from their history after their shard came back.",
            )?,
        })
    }
}

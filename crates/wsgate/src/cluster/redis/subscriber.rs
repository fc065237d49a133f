//! The supervised pub/sub loop.
//!
//! One dedicated Redis connection carries every subscription of the node. The
//! loop connects, subscribes the node channel, the broadcast channel and every
//! wanted room channel, re-registers the node (resync), and only then reports
//! up: a node is never ready while deaf. After an outage it lets the sink
//! catch up (inbox redelivery) before it reads the first envelope. It reads
//! envelopes and hands them to the node's sink, which never blocks (outboxes
//! take `try_send`). When the
//! connection drops, or a periodic `PING` fails, the loop ends with a typed
//! [`LoopEnd`], waits a capped exponential backoff with jitter (reset only
//! after a healthy period), and starts again.
//!
//! Room subscriptions: a join awaits its `SUBSCRIBE` (so the join reply means
//! the room's traffic is live); leaves only mark a room unwanted, and the loop
//! unsubscribes unwanted rooms in batches after a short debounce, so a room
//! that empties and refills does not churn.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::{Mutex, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use wsgate_protocol::bus::Envelope;

use super::{Inner, OP_TIMEOUT};
use crate::cluster::{BrokerError, BusSink};
use crate::metrics::BrokerOp;

/// Backoff bounds for reconnecting.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connection that lived this long resets the backoff.
const HEALTHY_PERIOD: Duration = Duration::from_secs(30);
/// How often the loop pings Redis on the pub/sub connection.
const PING_PERIOD: Duration = Duration::from_secs(3);
/// Unsubscribes wait this long, batching leaves.
const UNSUBSCRIBE_DEBOUNCE: Duration = Duration::from_millis(200);

#[derive(Default)]
struct SubState {
    sink: Option<PubSubSink>,
    wanted: HashSet<String>,
    subscribed: HashSet<String>,
}

/// Which room channels the node wants, and which are subscribed now.
#[derive(Default)]
pub(super) struct Subscriptions {
    state: Mutex<SubState>,
    dirty: Notify,
}

impl Subscriptions {
    /// Wants a channel and waits until it is subscribed.
    pub(super) async fn want(&self, channel: String) -> Result<(), BrokerError> {
        let mut st = self.state.lock().await;
        st.wanted.insert(channel.clone());
        if st.subscribed.contains(&channel) {
            return Ok(());
        }
        let Some(mut sink) = st.sink.clone() else {
            // Subscribed by the loop when it reconnects.
            return Err(BrokerError::Unavailable("pub/sub not connected".into()));
        };
        match tokio::time::timeout(OP_TIMEOUT, sink.subscribe(&channel)).await {
            Ok(Ok(())) => {
                st.subscribed.insert(channel);
                Ok(())
            }
            Ok(Err(e)) => Err(BrokerError::Unavailable(e.to_string())),
            Err(_) => Err(BrokerError::Timeout),
        }
    }

    /// No longer wants a channel; the loop unsubscribes it after the debounce.
    pub(super) async fn unwant(&self, channel: String) {
        self.state.lock().await.wanted.remove(&channel);
        self.dirty.notify_one();
    }

    /// Unsubscribes channels no longer wanted.
    async fn apply_unsubscribes(&self) -> Result<(), BrokerError> {
        let mut st = self.state.lock().await;
        let stale: Vec<String> = st.subscribed.difference(&st.wanted).cloned().collect();
        if stale.is_empty() {
            return Ok(());
        }
        let Some(mut sink) = st.sink.clone() else {
            return Ok(());
        };
        match tokio::time::timeout(OP_TIMEOUT, sink.unsubscribe(&stale)).await {
            Ok(Ok(())) => {
                for c in &stale {
                    st.subscribed.remove(c);
                }
                Ok(())
            }
            Ok(Err(e)) => Err(BrokerError::Unavailable(e.to_string())),
            Err(_) => Err(BrokerError::Timeout),
        }
    }
}

/// Why one connection of the loop ended.
enum LoopEnd {
    Shutdown,
    Disconnected(String),
}

/// Runs pub/sub connections until shutdown, reconnecting with backoff.
pub(super) async fn supervise(inner: Arc<Inner>, sink: Weak<dyn BusSink>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = Instant::now();
        let end = connection(&inner, &sink).await;
        inner.subscribed.store(false, Ordering::Release);
        inner.subs.state.lock().await.sink = None;
        inner.mark();
        match end {
            LoopEnd::Shutdown => return,
            LoopEnd::Disconnected(reason) => {
                inner.shared.metrics.broker_error(BrokerOp::Subscribe);
                inner.outage();
                if started.elapsed() >= HEALTHY_PERIOD {
                    backoff = BACKOFF_MIN;
                }
                let jitter = rand::random::<f64>() * 0.5 + 0.75;
                let wait = backoff.mul_f64(jitter);
                warn!(reason = %reason, retry_ms = wait.as_millis() as u64, "Redis pub/sub disconnected; reconnecting.");
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tokio::select! {
                    () = inner.shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

async fn connection(inner: &Arc<Inner>, sink: &Weak<dyn BusSink>) -> LoopEnd {
    let s = &inner.shared;
    let pubsub = tokio::select! {
        () = inner.shutdown.cancelled() => return LoopEnd::Shutdown,
        r = tokio::time::timeout(OP_TIMEOUT, inner.client.get_async_pubsub()) => match r {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return LoopEnd::Disconnected(e.to_string()),
            Err(_) => return LoopEnd::Disconnected("connect timed out".into()),
        },
    };
    let (mut psink, mut stream) = pubsub.split();
    let node_channel = s.key("node", &s.node);
    let broadcast_channel = format!("{}:broadcast", s.prefix);
    {
        let mut st = inner.subs.state.lock().await;
        let mut channels = vec![node_channel.clone(), broadcast_channel.clone()];
        channels.extend(st.wanted.iter().cloned());
        match tokio::time::timeout(OP_TIMEOUT, psink.subscribe(&channels)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return LoopEnd::Disconnected(e.to_string()),
            Err(_) => return LoopEnd::Disconnected("subscribe timed out".into()),
        }
        st.subscribed = st.wanted.clone();
        st.sink = Some(psink.clone());
    }
    if let Err(e) = inner.resync(sink).await {
        return LoopEnd::Disconnected(format!("resync failed: {e}"));
    }
    inner.subscribed.store(true, Ordering::Release);
    let after_outage = inner.reconnected();
    inner.mark();
    info!(node = %s.node, "Subscribed to the cluster bus.");
    if after_outage {
        // Before reading the stream: catch-up frames precede new live ones.
        if let Some(sink) = sink.upgrade() {
            sink.resubscribed().await;
        }
    }
    let mut ping = tokio::time::interval(PING_PERIOD);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return LoopEnd::Shutdown,
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return LoopEnd::Disconnected("connection closed".into());
                };
                let own_channel = msg.get_channel_name() == node_channel;
                match Envelope::decode(msg.get_payload_bytes()) {
                    // Shared channels echo our own publishes; those were delivered locally.
                    Ok(env) if !own_channel && env.origin == s.node => {}
                    Ok(env) => {
                        if let Some(sink) = sink.upgrade() {
                            sink.deliver(env);
                        }
                    }
                    Err(e) => {
                        s.metrics.broker_error(BrokerOp::Decode);
                        debug!(error = %e, "Undecodable bus envelope.");
                    }
                }
            }
            () = inner.subs.dirty.notified() => {
                tokio::time::sleep(UNSUBSCRIBE_DEBOUNCE).await;
                if let Err(e) = inner.subs.apply_unsubscribes().await {
                    return LoopEnd::Disconnected(format!("unsubscribe failed: {e}"));
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(OP_TIMEOUT, psink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return LoopEnd::Disconnected(format!("ping failed: {e}")),
                    Err(_) => return LoopEnd::Disconnected("ping timed out".into()),
                }
            }
        }
    }
}

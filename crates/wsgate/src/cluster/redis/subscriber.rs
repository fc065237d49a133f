//! The supervised pub/sub connection.
//!
//! One dedicated Redis connection carries every subscription of the node (in
//! Redis Cluster: one per shard primary, [`super::shards`], each supervised
//! on its own: see below). The loop connects, subscribes the node channel, the broadcast channel and every
//! wanted room channel, re-registers the node (resync), and only then reports
//! subscribed: a node is never ready while deaf. After an outage it queues a
//! catch-up (inbox redelivery, room history) ahead of the first payload, and
//! the node is not ready until it has run ([`super::inbound`]). Then the
//! reader only reads: it moves each payload into the bounded inbound queue
//! with a `try_send` and goes back to the socket; it never decodes, never
//! delivers, never sleeps and never takes a lock across a round trip (redis-rs
//! buffers between the socket and this reader without a bound, so the reader
//! must keep up). Subscription changes, the unsubscribe debounce and pings run
//! on their own task ([`super::subscriptions`]); resync and reaping on the
//! heartbeat task. When the connection drops, that task's round trip fails,
//! or the inbound queue is full, the loop ends with a typed [`LoopEnd`], waits
//! a capped exponential backoff with jitter (reset only after a healthy
//! period), and starts again.
//!
//! In Redis Cluster only the loss of the shard that serves this node's
//! channel or the broadcast channel ends the loop (contract 6: a node is
//! ready while those two are subscribed). Losing another shard parks its
//! room channels (`wsgate_bus_shard_losses_total`), the node stays ready,
//! and the reader reads the shard map again until the primaries serving
//! those slots are connected (every [`SHARD_RETRY_MIN`], doubling up to
//! [`SHARD_RETRY_MAX`]), then unparks them: the subscription task
//! subscribes them again and their rooms catch up from the history. Once
//! every shard is connected again it also re-registers the node (resync:
//! the promoted replica may lack the last registry writes, replication
//! being asynchronous) and queues an inbox catch-up that keeps the node
//! ready, so a direct message that went only to an inbox meanwhile reaches
//! its open connection.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::PubSubStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

use super::inbound::{Queue, QUEUE_BYTES, QUEUE_LEN};
use super::shards::{End, Lost, Shards};
use super::subscriptions::SubSink;
use super::{subscriptions, Inner};
use crate::metrics::BrokerOp;

/// Backoff bounds for reconnecting.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Retry bounds for connecting a lost shard's primary again: short, since
/// a failover promotes a replica within the cluster's node timeout.
const SHARD_RETRY_MIN: Duration = Duration::from_millis(100);
const SHARD_RETRY_MAX: Duration = Duration::from_secs(2);
/// A connection that lived this long resets the backoff.
const HEALTHY_PERIOD: Duration = Duration::from_secs(30);

/// Why one connection of the loop ended.
enum LoopEnd {
    Shutdown,
    Disconnected(String),
}

/// Runs pub/sub connections until shutdown, reconnecting with backoff.
pub(super) async fn supervise(inner: Arc<Inner>, queue: Queue) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = Instant::now();
        let end = connection(&inner, &queue).await;
        inner.subscribed.store(false, Ordering::Release);
        inner.mark();
        match end {
            LoopEnd::Shutdown => {
                inner.subs.disconnected("shutting down");
                return;
            }
            LoopEnd::Disconnected(reason) => {
                inner.subs.disconnected(&reason);
                inner.metrics.broker_error(BrokerOp::Subscribe);
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

/// What reads the bus on one connection of the loop.
enum Reader {
    /// Single and sentinel modes: the pub/sub connection's message stream.
    Channels(PubSubStream),
    /// Cluster mode: the shard connections' handlers queue the payloads
    /// themselves ([`super::shards`]); this yields when each one ends.
    Shards(Shards, mpsc::UnboundedReceiver<End>),
}

impl Reader {
    /// Reads until the connection must be made again; returns why.
    async fn run(&mut self, inner: &Inner, queue: &Queue, node_channel: &str) -> String {
        match self {
            Reader::Shards(shards, ended) => supervise_shards(inner, queue, shards, ended).await,
            Reader::Channels(stream) => loop {
                let Some(msg) = stream.next().await else {
                    return "connection closed".into();
                };
                let own_channel = msg.get_channel_name() == node_channel;
                if queue
                    .try_push(msg.get_payload_bytes(), own_channel)
                    .is_err()
                {
                    // The node fell behind: start again and catch up, as
                    // after an outage (the policy: see `inbound`).
                    inner.metrics.bus.queue_overflows.inc();
                    return format!(
                        "the bus queue to the node is full ({QUEUE_LEN} payloads or {} MiB)",
                        QUEUE_BYTES >> 20
                    );
                }
            },
        }
    }
}

/// Opens the bus connection(s): one pub/sub connection, or one per shard
/// primary in cluster mode.
async fn open(inner: &Inner, queue: &Queue) -> Result<(SubSink, Reader), String> {
    if inner.redis.is_cluster() {
        let (shards, ended) = Shards::connect(inner, queue).await?;
        return Ok((
            SubSink::Shards(shards.clone()),
            Reader::Shards(shards, ended),
        ));
    }
    let pubsub = inner.redis.pubsub().await.map_err(|e| e.to_string())?;
    let (psink, stream) = pubsub.split();
    Ok((SubSink::Channels(Box::new(psink)), Reader::Channels(stream)))
}

async fn connection(inner: &Arc<Inner>, queue: &Queue) -> LoopEnd {
    let keys = inner.redis.keys();
    // Any change from here on means this connection may be on a demoted primary.
    let mut primary_changes = inner.redis.primary_changes();
    primary_changes.borrow_and_update();
    let (mut sink, mut reader) = tokio::select! {
        () = inner.shutdown.cancelled() => return LoopEnd::Shutdown,
        r = open(inner, queue) => match r {
            Ok(p) => p,
            Err(e) => return LoopEnd::Disconnected(e),
        },
    };
    let node_channel = keys.node_channel(&inner.node);
    let wanted = inner.subs.wanted();
    let mut channels = vec![node_channel.clone(), keys.broadcast_channel()];
    channels.extend(wanted.iter().cloned());
    let down = match sink.subscribe(&channels).await {
        Ok(down) => down,
        Err(e) => return LoopEnd::Disconnected(e),
    };
    if let Some(vital) = channels[..2].iter().find(|c| down.contains(*c)) {
        return LoopEnd::Disconnected(format!("could not subscribe {vital}"));
    }
    let subscribed = wanted
        .into_iter()
        .filter(|c| !down.contains(c))
        .collect::<HashSet<_>>();
    inner.subs.connected(subscribed, down);
    let stop = inner.shutdown.child_token();
    // Stops the changes task however this connection ends.
    let _stop_changes = stop.clone().drop_guard();
    let mut changes = tokio::spawn(subscriptions::run(inner.clone(), queue.clone(), sink, stop));
    if let Err(e) = inner.resync(queue).await {
        return LoopEnd::Disconnected(format!("resync failed: {e}"));
    }
    if inner.reconnected() {
        // Ahead of the first payload: catch-up frames precede new live ones.
        queue.catch_up(inner).await;
    }
    inner.subscribed.store(true, Ordering::Release);
    inner.mark();
    info!(node = %inner.node, "Subscribed to the cluster bus.");
    tokio::select! {
        () = inner.shutdown.cancelled() => LoopEnd::Shutdown,
        _ = primary_changes.changed() => {
            LoopEnd::Disconnected("the Redis primary changed".into())
        }
        ended = &mut changes => {
            let reason = match ended {
                Ok(reason) => reason,
                Err(e) => format!("subscription task failed: {e}"),
            };
            LoopEnd::Disconnected(reason)
        }
        reason = reader.run(inner, queue, &node_channel) => LoopEnd::Disconnected(reason),
    }
}

/// Cluster mode: reads the shard connections' ends until one needs the
/// whole loop made again (returned as the reason), parking and repairing
/// the shards that serve only room channels.
async fn supervise_shards(
    inner: &Inner,
    queue: &Queue,
    shards: &Shards,
    ended: &mut mpsc::UnboundedReceiver<End>,
) -> String {
    let mut retry = SHARD_RETRY_MIN;
    // A shard was lost since the last complete repair.
    let mut lost = false;
    // A shard may be down from the start: its channels were not subscribed.
    let mut repair_at = Some(Instant::now());
    loop {
        tokio::select! {
            end = ended.recv() => match end {
                None => return "the shard connections closed".into(),
                Some(End::Node(reason)) => return reason,
                Some(End::Shard { id, reason }) => match shards.lose(id) {
                    Lost::Stale => {}
                    Lost::Vital => return reason,
                    Lost::Shard(addr) => {
                        let parked = inner.subs.park(|c| shards.serves(&addr, c));
                        inner.metrics.bus.shard_losses.inc();
                        inner.metrics.broker_error(BrokerOp::Subscribe);
                        warn!(
                            shard = %format!("{}:{}", addr.0, addr.1),
                            reason = %reason,
                            room_channels = parked,
                            "A Redis shard connection was lost; its room channels wait for it (the node stays ready)."
                        );
                        lost = true;
                        repair_at.get_or_insert_with(|| Instant::now() + SHARD_RETRY_MIN);
                    }
                },
            },
            () = sleep_until(repair_at) => match shards.repair().await {
                Err(reason) => return reason,
                Ok(all) => {
                    inner.subs.unpark();
                    if all {
                        retry = SHARD_RETRY_MIN;
                        repair_at = None;
                        if std::mem::take(&mut lost) {
                            // The promoted replica may lack the last
                            // registrations (replication is asynchronous):
                            // register again (idempotent), then send local
                            // users what went to their inboxes only.
                            if let Err(e) = inner.resync(queue).await {
                                return format!("resync after a shard failover failed: {e}");
                            }
                            queue.catch_up_ready().await;
                        }
                    } else {
                        retry = (retry * 2).min(SHARD_RETRY_MAX);
                        repair_at = Some(Instant::now() + retry);
                    }
                }
            },
        }
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

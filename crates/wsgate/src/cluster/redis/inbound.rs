//! The bus reader's queue to the node, and the task that empties it.
//!
//! The reader ([`super::subscriber`]) only moves payloads from the pub/sub
//! socket into this queue with [`Queue::try_push`], which never waits. One
//! dispatch task per broker takes them out in order, decodes each envelope,
//! drops the echoes of this node's own publishes, and hands the rest to the
//! node's [`BusSink`] (whose local delivery never waits either: a full
//! outbox closes its connection with 1013). `wsgate_bus_lag_seconds` is
//! observed there, so it includes the time spent in this queue.
//!
//! Bound: [`QUEUE_LEN`] payloads and [`QUEUE_BYTES`] bytes, whichever comes
//! first. Policy when full: the payload that does not fit is not queued and
//! the reader ends its connection as if Redis had dropped it
//! (`wsgate_bus_queue_overflows_total`, a warning, and
//! `wsgate_broker_errors_total{op="subscribe"}`); the node is not ready
//! until it has resubscribed and caught up, exactly as after an outage:
//! direct messages come again from the inboxes and room messages from the
//! room histories, so a node that fell behind loses only what an outage
//! loses (live-only presence, typing, receipts and broadcasts). Dropping
//! payloads and reading on would leave silent gaps; waiting for room
//! would let one slow node push its backlog into redis-rs's unbounded
//! buffer instead.
//!
//! A catch-up ([`Queue::catch_up`]) travels through the same queue: the
//! dispatcher runs [`BusSink::resubscribed`] after everything read before it
//! and before everything read after it, so caught-up frames precede the new
//! subscription's live ones on every connection. While one is pending the
//! broker is not up (`/readyz` answers 503).
//!
//! A room catch-up ([`Queue::catch_up_rooms`], Redis Cluster: rooms whose
//! shard was lost and is back) is queued before the rooms' `SSUBSCRIBE`
//! and waits, at its place in the queue, for the subscribe's outcome (at
//! most twice `OP_TIMEOUT`): then the history read covers everything up to
//! a moment the subscription was already live, and repeats the new
//! subscription brings are dropped by offset in the hub. It does not make
//! the node unready (contract 6: a shard that is down does not).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, oneshot};
use tracing::debug;
use wsgate_protocol::bus::Envelope;

use super::Inner;
use crate::cluster::BusSink;
use crate::metrics::BrokerOp;
use crate::redis::OP_TIMEOUT;

/// Payloads read from the bus and not yet handled, at most.
pub(super) const QUEUE_LEN: usize = 16_384;
/// Bytes of payloads read from the bus and not yet handled, at most.
pub(super) const QUEUE_BYTES: usize = 64 << 20;

enum Item {
    /// A payload, and whether it came on this node's own channel.
    Payload { bytes: Vec<u8>, own_channel: bool },
    /// The node missed envelopes: catch up before what follows.
    CatchUp,
    /// The same catch-up while the node stays ready (a shard came back
    /// after a failover: see [`Queue::catch_up_ready`]).
    CatchUpReady,
    /// These rooms' channels are subscribed again (the gate says which,
    /// once the subscribe is confirmed): catch them up.
    CatchUpRooms(oneshot::Receiver<Vec<String>>),
    /// An event the broker itself emits for this node (a reaped member's
    /// leave), in order with what the bus brought.
    Local(Box<Envelope>),
}

/// The reader's end of the queue.
#[derive(Clone)]
pub(super) struct Queue {
    tx: mpsc::Sender<Item>,
    bytes: Arc<AtomicUsize>,
}

/// The queue is full: the payload was not queued.
pub(super) struct Full;

impl Queue {
    /// Queues a payload without waiting; [`Full`] when it does not fit.
    pub(super) fn try_push(&self, payload: &[u8], own_channel: bool) -> Result<(), Full> {
        let len = payload.len();
        if self.bytes.fetch_add(len, Ordering::AcqRel) + len > QUEUE_BYTES {
            self.bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(Full);
        }
        let item = Item::Payload {
            bytes: payload.to_vec(),
            own_channel,
        };
        if self.tx.try_send(item).is_err() {
            self.bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(Full);
        }
        Ok(())
    }

    /// Queues an event of the broker's own for local delivery; waits for
    /// room (the heartbeat task calls it, never the reader).
    pub(super) async fn local(&self, envelope: Envelope) {
        #[expect(
            clippy::let_underscore_must_use,
            reason = "only fails when the dispatcher is gone (shutdown): nobody left to tell"
        )]
        let _ = self.tx.send(Item::Local(Box::new(envelope))).await;
    }

    /// Queues a catch-up after what is queued now; the broker is not up
    /// until the dispatcher has run it. Waits for room (never called by the
    /// reader while it reads).
    pub(super) async fn catch_up(&self, inner: &Inner) {
        inner.catch_ups.fetch_add(1, Ordering::AcqRel);
        inner.mark();
        if self.tx.send(Item::CatchUp).await.is_err() {
            // The dispatcher is gone (shutdown): nothing to catch up for.
            inner.catch_ups.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Queue {
    /// Queues a catch-up that does not make the node unready: after a
    /// shard that held only users and rooms came back (its promoted
    /// replica may miss the last registry writes, so direct messages
    /// meanwhile may have gone to the inboxes only).
    pub(super) async fn catch_up_ready(&self) {
        #[expect(
            clippy::let_underscore_must_use,
            reason = "only fails when the dispatcher is gone (shutdown): nothing to catch up for"
        )]
        let _ = self.tx.send(Item::CatchUpReady).await;
    }

    /// Queues a catch-up of the rooms the gate will name, after what is
    /// queued now (the subscription task, before it subscribes them).
    pub(super) async fn catch_up_rooms(&self, gate: oneshot::Receiver<Vec<String>>) {
        #[expect(
            clippy::let_underscore_must_use,
            reason = "only fails when the dispatcher is gone (shutdown): nothing to catch up for"
        )]
        let _ = self.tx.send(Item::CatchUpRooms(gate)).await;
    }
}

/// Starts the dispatch task; it ends when every [`Queue`] is dropped.
pub(super) fn start(inner: Arc<Inner>, sink: Weak<dyn BusSink>) -> Queue {
    let (tx, rx) = mpsc::channel(QUEUE_LEN);
    let bytes = Arc::new(AtomicUsize::new(0));
    tokio::spawn(dispatch(rx, bytes.clone(), inner, sink));
    Queue { tx, bytes }
}

async fn dispatch(
    mut rx: mpsc::Receiver<Item>,
    bytes: Arc<AtomicUsize>,
    inner: Arc<Inner>,
    sink: Weak<dyn BusSink>,
) {
    while let Some(item) = rx.recv().await {
        match item {
            Item::Payload {
                bytes: payload,
                own_channel,
            } => {
                handle(&inner, &sink, &payload, own_channel);
                bytes.fetch_sub(payload.len(), Ordering::AcqRel);
            }
            Item::Local(envelope) => {
                if let Some(sink) = sink.upgrade() {
                    sink.deliver(*envelope);
                }
            }
            Item::CatchUp => {
                if let Some(sink) = sink.upgrade() {
                    sink.resubscribed().await;
                }
                inner.catch_ups.fetch_sub(1, Ordering::AcqRel);
                inner.mark();
            }
            Item::CatchUpReady => {
                if let Some(sink) = sink.upgrade() {
                    sink.resubscribed().await;
                }
            }
            Item::CatchUpRooms(gate) => {
                // The subscribes run at once, each within `OP_TIMEOUT`.
                let Ok(Ok(rooms)) = tokio::time::timeout(OP_TIMEOUT * 2, gate).await else {
                    continue;
                };
                if let (false, Some(sink)) = (rooms.is_empty(), sink.upgrade()) {
                    sink.rooms_resubscribed(&rooms).await;
                    inner.metrics.bus.room_catch_ups.inc_by(rooms.len() as u64);
                }
            }
        }
    }
}

fn handle(inner: &Inner, sink: &Weak<dyn BusSink>, payload: &[u8], own_channel: bool) {
    match Envelope::decode(payload) {
        // Shared channels echo our own publishes; those were delivered
        // locally, except sequenced room messages, which every node
        // delivers from here only (offset order).
        Ok(env) if !own_channel && env.origin == inner.node && !env.event.is_sequenced() => {}
        Ok(env) => {
            if let Some(sink) = sink.upgrade() {
                sink.deliver(env);
            }
        }
        Err(e) => {
            inner.metrics.broker_error(BrokerOp::Decode);
            debug!(error = %e, "Undecodable bus envelope.");
        }
    }
}

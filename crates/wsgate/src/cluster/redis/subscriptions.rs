//! Subscription changes, on their own task: the pub/sub reader only reads.
//!
//! [`Subscriptions`] holds which room channels the node wants and which are
//! subscribed on the current connection, behind a short `std` mutex never
//! held across an await. A join ([`Subscriptions::want`]) records the
//! channel, registers a waiter and wakes the task, then awaits the waiter:
//! the join reply goes out once `SUBSCRIBE` is confirmed, so it means the
//! room's traffic is live. A leave ([`Subscriptions::unwant`]) only records
//! it, and only when the room has no member here at that moment (a last
//! leave and a first join race: the join's `want` may come first); the task unsubscribes channels unwanted for [`UNSUBSCRIBE_DEBOUNCE`]
//! in one batch, so a room that empties and refills does not churn. A channel
//! being unsubscribed leaves the subscribed set before the round trip, so a
//! join meanwhile waits for the task to subscribe it again (commands on the
//! connection run in order). The task also pings the connection; any failed
//! round trip ends it, and the subscriber reconnects and resubscribes
//! everything wanted.
//!
//! The commands go through a [`SubSink`]: one pub/sub connection
//! (`SUBSCRIBE`, a batch per pass) in single and sentinel modes, or the
//! shard connections of Redis Cluster (`SSUBSCRIBE`, one per channel, on
//! the primary of its slot: [`super::shards`]).
//!
//! In Redis Cluster a room channel whose shard is down is *parked*: not
//! subscribed, not retried, and a join that needs it answers `unavailable`
//! (`wsgate_bus_channels_down` counts them). The subscriber parks the
//! channels of a lost shard ([`Subscriptions::park`]) and unparks them all
//! once it has connected the primaries that serve their slots now
//! ([`Subscriptions::unpark`]); this task then subscribes them again like
//! new wants. Channels that were subscribed when their shard was lost are
//! *recovering*: before their `SSUBSCRIBE` the task queues a room catch-up
//! that the dispatcher runs once the subscribe is confirmed, so the room's
//! local members get what the history kept from the time they missed,
//! ahead of the new subscription's live messages.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::PubSubSink;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::inbound::Queue;
use super::shards::Shards;
use super::Inner;
use crate::cluster::BrokerError;
use crate::redis::OP_TIMEOUT;

/// Where subscription changes go.
pub(super) enum SubSink {
    /// One pub/sub connection (single and sentinel modes).
    Channels(PubSinkBox),
    /// A connection per shard primary (cluster mode).
    Shards(Shards),
}

/// The single-mode sink (boxed: it is much larger than [`Shards`]).
pub(super) type PubSinkBox = Box<PubSubSink>;

impl SubSink {
    /// Subscribes `channels`; returns those whose shard is down (cluster
    /// mode), the error is the reason to reconnect.
    pub(super) async fn subscribe(&mut self, channels: &[String]) -> Result<Vec<String>, String> {
        match self {
            SubSink::Channels(sink) => {
                match tokio::time::timeout(OP_TIMEOUT, sink.subscribe(channels)).await {
                    Ok(Ok(())) => Ok(Vec::new()),
                    Ok(Err(e)) => Err(format!("subscribe failed: {e}")),
                    Err(_) => Err("subscribe timed out".into()),
                }
            }
            SubSink::Shards(shards) => Ok(shards.subscribe(channels).await),
        }
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> Result<(), String> {
        match self {
            SubSink::Channels(sink) => {
                match tokio::time::timeout(OP_TIMEOUT, sink.unsubscribe(channels)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!("unsubscribe failed: {e}")),
                    Err(_) => Err("unsubscribe timed out".into()),
                }
            }
            SubSink::Shards(shards) => {
                shards.unsubscribe(channels).await;
                Ok(())
            }
        }
    }

    async fn ping(&mut self) -> Result<(), String> {
        match self {
            SubSink::Channels(sink) => {
                match tokio::time::timeout(OP_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("ping failed: {e}")),
                    Err(_) => Err("ping timed out".into()),
                }
            }
            SubSink::Shards(shards) => {
                shards.ping().await;
                Ok(())
            }
        }
    }
}

/// How often the task pings Redis on the pub/sub connection.
const PING_PERIOD: Duration = Duration::from_secs(3);
/// Unsubscribes wait this long, batching leaves.
const UNSUBSCRIBE_DEBOUNCE: Duration = Duration::from_millis(200);

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Default)]
struct SubState {
    /// A pub/sub connection is live (subscribe requests can be served).
    connected: bool,
    wanted: HashSet<String>,
    subscribed: HashSet<String>,
    /// Wanted channels whose shard is down (cluster mode).
    parked: HashSet<String>,
    /// Channels lost with their shard: caught up when subscribed again.
    recovering: HashSet<String>,
    /// Joins waiting for their channel's `SUBSCRIBE`. At most one entry per
    /// pending join; resolved on every pass of the task and on disconnect.
    waiters: HashMap<String, Vec<Waiter>>,
}

/// Which room channels the node wants, and which are subscribed now.
#[derive(Default)]
pub(super) struct Subscriptions {
    state: Mutex<SubState>,
    changed: Notify,
}

impl Subscriptions {
    fn lock(&self) -> MutexGuard<'_, SubState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wants a channel and waits until it is subscribed.
    pub(super) async fn want(&self, channel: String) -> Result<(), BrokerError> {
        let rx = {
            let mut st = self.lock();
            st.wanted.insert(channel.clone());
            if st.subscribed.contains(&channel) {
                return Ok(());
            }
            if st.parked.contains(&channel) {
                // Subscribed when its shard is back.
                return Err(BrokerError::Unavailable(format!(
                    "the Redis shard of {channel} is down"
                )));
            }
            if !st.connected {
                // Subscribed by the subscriber when it reconnects.
                return Err(BrokerError::Unavailable("pub/sub not connected".into()));
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.entry(channel).or_default().push(tx);
            rx
        };
        self.changed.notify_one();
        match tokio::time::timeout(OP_TIMEOUT, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(BrokerError::Unavailable(reason)),
            Ok(Err(_)) => Err(BrokerError::Unavailable("pub/sub connection lost".into())),
            Err(_) => Err(BrokerError::Timeout),
        }
    }

    /// No longer wants a channel if `empty()` (asked under the lock, so a
    /// first join that wanted it again since the last leave is seen: it
    /// joined the hub before its [`Subscriptions::want`]); the task
    /// unsubscribes it after the debounce.
    pub(super) fn unwant(&self, channel: String, empty: impl FnOnce() -> bool) {
        {
            let mut st = self.lock();
            if !empty() {
                return;
            }
            st.wanted.remove(&channel);
        }
        self.changed.notify_one();
    }

    /// A new connection subscribed `channels` (everything wanted when it
    /// started but `down`, whose shard is down): record them and release
    /// the joins they satisfy.
    pub(super) fn connected(&self, channels: HashSet<String>, down: Vec<String>) {
        let mut st = self.lock();
        st.connected = true;
        st.subscribed = channels;
        st.recovering = down.iter().cloned().collect();
        st.parked = down.into_iter().collect();
        settle(&mut st);
    }

    /// The subscribed channels `lost(channel)` selects lost their shard:
    /// park them until [`Subscriptions::unpark`]. Returns how many.
    pub(super) fn park(&self, lost: impl Fn(&str) -> bool) -> usize {
        let parked = {
            let mut st = self.lock();
            let channels: Vec<String> = st.subscribed.iter().filter(|c| lost(c)).cloned().collect();
            for c in &channels {
                st.subscribed.remove(c);
                st.parked.insert(c.clone());
                st.recovering.insert(c.clone());
            }
            channels.len()
        };
        // The task counts them (`wsgate_bus_channels_down`).
        self.changed.notify_one();
        parked
    }

    /// The shards were connected again: subscribe every parked channel
    /// (one whose shard is still down is parked again).
    pub(super) fn unpark(&self) {
        let any = {
            let mut st = self.lock();
            let any = !st.parked.is_empty();
            st.parked.clear();
            any
        };
        if any {
            self.changed.notify_one();
        }
    }

    /// The connection is gone: nothing is subscribed; pending joins fail.
    pub(super) fn disconnected(&self, reason: &str) {
        let mut st = self.lock();
        st.connected = false;
        st.subscribed.clear();
        st.parked.clear();
        st.recovering.clear();
        for (_, waiters) in st.waiters.drain() {
            for w in waiters {
                #[expect(
                    clippy::let_underscore_must_use,
                    reason = "a join that gave up (timed out) dropped its receiver: nothing to tell"
                )]
                let _ = w.send(Err(reason.to_owned()));
            }
        }
    }

    /// Everything wanted now (for a new connection's first `SUBSCRIBE`).
    pub(super) fn wanted(&self) -> Vec<String> {
        self.lock().wanted.iter().cloned().collect()
    }
}

/// Releases joins whose channel is subscribed, or no longer wanted.
fn settle(st: &mut SubState) {
    let SubState {
        waiters,
        subscribed,
        wanted,
        ..
    } = st;
    waiters.retain(|channel, list| {
        if subscribed.contains(channel) || !wanted.contains(channel) {
            for w in list.drain(..) {
                #[expect(
                    clippy::let_underscore_must_use,
                    reason = "the join may have timed out and dropped its receiver"
                )]
                let _ = w.send(Ok(()));
            }
            false
        } else {
            true
        }
    });
}

/// Applies subscription changes and pings on one connection until `stop`
/// or a failed round trip (returned as the reason).
pub(super) async fn run(
    inner: Arc<Inner>,
    queue: Queue,
    mut sink: SubSink,
    stop: CancellationToken,
) -> String {
    let subs = inner.subs.clone();
    let mut unsubscribe_at: Option<Instant> = None;
    let mut ping = tokio::time::interval(PING_PERIOD);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        // New wants (and unparked channels): subscribe at once.
        let (fresh, back): (Vec<String>, Vec<String>) = {
            let mut st = subs.lock();
            let fresh: Vec<String> = st
                .wanted
                .iter()
                .filter(|c| !st.subscribed.contains(*c) && !st.parked.contains(*c))
                .cloned()
                .collect();
            let back = fresh
                .iter()
                .filter(|c| st.recovering.remove(*c))
                .cloned()
                .collect();
            (fresh, back)
        };
        if !fresh.is_empty() {
            // Queued ahead of anything the new subscriptions bring.
            let gate = if back.is_empty() {
                None
            } else {
                let (tx, rx) = oneshot::channel();
                queue.catch_up_rooms(rx).await;
                Some(tx)
            };
            let down = match sink.subscribe(&fresh).await {
                Ok(down) => down,
                Err(reason) => return reason,
            };
            if let Some(gate) = gate {
                let keys = inner.redis.keys();
                let rooms = back
                    .iter()
                    .filter(|c| !down.contains(*c))
                    .filter_map(|c| keys.room_of_channel(c).map(str::to_owned))
                    .collect();
                #[expect(
                    clippy::let_underscore_must_use,
                    reason = "the dispatcher gave up waiting (or shut down): the rooms are caught up at the next resubscribe"
                )]
                let _ = gate.send(rooms);
            }
            let mut st = subs.lock();
            for c in fresh {
                if !down.contains(&c) {
                    st.subscribed.insert(c);
                }
            }
            for c in down {
                if back.contains(&c) {
                    st.recovering.insert(c.clone());
                }
                for w in st.waiters.remove(&c).unwrap_or_default() {
                    #[expect(
                        clippy::let_underscore_must_use,
                        reason = "a join that gave up (timed out) dropped its receiver: nothing to tell"
                    )]
                    let _ = w.send(Err(format!("the Redis shard of {c} is down")));
                }
                if st.parked.insert(c.clone()) {
                    debug!(channel = %c, "The Redis shard of a room channel is down; subscribing it when it is back.");
                }
            }
        }
        // Unwanted channels: after the debounce, in one batch.
        let stale: Vec<String> = {
            let mut st = subs.lock();
            settle(&mut st);
            let SubState {
                wanted,
                parked,
                recovering,
                ..
            } = &mut *st;
            parked.retain(|c| wanted.contains(c));
            recovering.retain(|c| wanted.contains(c));
            inner
                .metrics
                .bus
                .channels_down
                .set(i64::try_from(parked.len()).unwrap_or(i64::MAX));
            st.subscribed.difference(&st.wanted).cloned().collect()
        };
        if stale.is_empty() {
            unsubscribe_at = None;
        } else {
            let due = *unsubscribe_at.get_or_insert_with(|| Instant::now() + UNSUBSCRIBE_DEBOUNCE);
            if Instant::now() >= due {
                {
                    let mut st = subs.lock();
                    for c in &stale {
                        st.subscribed.remove(c);
                    }
                }
                unsubscribe_at = None;
                if let Err(reason) = sink.unsubscribe(&stale).await {
                    return reason;
                }
                // A join may have come for one of them meanwhile.
                continue;
            }
        }
        tokio::select! {
            () = stop.cancelled() => return "stopped".into(),
            () = subs.changed.notified() => {}
            () = sleep_until(unsubscribe_at) => {}
            _ = ping.tick() => {
                if let Err(reason) = sink.ping().await {
                    return reason;
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_last_leave_after_a_first_join_keeps_the_room_wanted() {
        let subs = Subscriptions::default();
        // Not connected: the want is recorded (subscribed at reconnect).
        assert!(subs.want("room:a".into()).await.is_err());
        // The stale last leave of an earlier member arrives after the new
        // member's first join: the room has a member, so it stays wanted.
        subs.unwant("room:a".into(), || false);
        assert_eq!(subs.wanted(), vec!["room:a".to_owned()]);
        subs.unwant("room:a".into(), || true);
        assert!(subs.wanted().is_empty());
    }
}

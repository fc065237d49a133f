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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::PubSubSink;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::shards::Shards;
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
    /// Subscribes `channels`; the error is the reason to reconnect.
    pub(super) async fn subscribe(&mut self, channels: &[String]) -> Result<(), String> {
        match self {
            SubSink::Channels(sink) => {
                match tokio::time::timeout(OP_TIMEOUT, sink.subscribe(channels)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!("subscribe failed: {e}")),
                    Err(_) => Err("subscribe timed out".into()),
                }
            }
            SubSink::Shards(shards) => shards.subscribe(channels).await,
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
            SubSink::Shards(shards) => shards.unsubscribe(channels).await,
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
            SubSink::Shards(shards) => shards.ping().await,
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
    /// started): record them and release the joins they satisfy.
    pub(super) fn connected(&self, channels: HashSet<String>) {
        let mut st = self.lock();
        st.connected = true;
        st.subscribed = channels;
        settle(&mut st);
    }

    /// The connection is gone: nothing is subscribed; pending joins fail.
    pub(super) fn disconnected(&self, reason: &str) {
        let mut st = self.lock();
        st.connected = false;
        st.subscribed.clear();
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
    subs: Arc<Subscriptions>,
    mut sink: SubSink,
    stop: CancellationToken,
) -> String {
    let mut unsubscribe_at: Option<Instant> = None;
    let mut ping = tokio::time::interval(PING_PERIOD);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        // New wants: subscribe at once.
        let fresh: Vec<String> = {
            let st = subs.lock();
            st.wanted.difference(&st.subscribed).cloned().collect()
        };
        if !fresh.is_empty() {
            if let Err(reason) = sink.subscribe(&fresh).await {
                return reason;
            }
            let mut st = subs.lock();
            st.subscribed.extend(fresh);
        }
        // Unwanted channels: after the debounce, in one batch.
        let stale: Vec<String> = {
            let mut st = subs.lock();
            settle(&mut st);
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

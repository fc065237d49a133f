//! Cluster mode over Redis: routing by instance ID, the user registry,
//! cluster-wide room membership, node liveness. Keys, channels, scripts and
//! the connections come from the leaf [`crate::redis`] (its module doc lists
//! every key and channel).
//!
//! The jobs, one file each:
//! - this file: [`RedisBroker`], the [`Broker`] operations (publish, registry,
//!   membership, node list);
//! - [`liveness`]: heartbeats, finding dead nodes, reaping them;
//! - [`resync`]: re-registering what the hub holds after every (re)connection;
//! - [`subscriber`]: the supervised pub/sub connection and its reader, which
//!   only reads and queues payloads;
//! - [`inbound`]: the bounded queue from the reader to the node (its policy
//!   when full), and the task that decodes and delivers, catch-ups included;
//! - [`shards`]: cluster mode's pub/sub, one connection per shard primary
//!   and one `SSUBSCRIBE` per channel;
//! - [`subscriptions`]: subscription changes (room wants, debounced
//!   unsubscribes, pings) on their own task, so the reader never waits on a
//!   round trip or a lock.
//!
//! Two-slot changes are split into single-slot steps, node side first on the
//! way in and last on the way out (see [`crate::redis`]): a user's connection
//! counts the node's `node-users` before the user's registry and the other
//! way round on close, so `node-users` always covers the registry; a room
//! membership is written to `node-rooms` before the room's idempotent join,
//! and removed from it after the room's idempotent leave.
//!
//! With webhooks on, the user and room steps are the webhook scripts
//! instead ([`crate::webhooks::outbox`]): the same counts, and in the same
//! slot the event a zero crossing causes, moved to `{p}:events` after.

mod inbound;
mod intent;
mod liveness;
mod resync;
mod shards;
mod subscriber;
mod subscriptions;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use redis::AsyncCommands;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use wsgate_protocol::bus::Envelope;

use super::{Broker, BrokerError, BusSink, LocalView, NodeInfo, Route};
use crate::clock::now_ms;
use crate::config::{Config, RedisMode};
use crate::metrics::{BrokerOp, Metrics};
use crate::redis::{Redis, RedisError, OP_TIMEOUT};
use crate::webhooks::outbox::{Outboxes, UserCount};
use intent::Intent;
use subscriptions::Subscriptions;

/// How long after regaining Redis a node waits before reaping others: the
/// longest reconnect backoff with jitter, plus a connect timeout.
const REAP_GRACE: Duration = Duration::from_millis(
    subscriber::BACKOFF_MAX.as_millis() as u64 * 5 / 4 + OP_TIMEOUT.as_millis() as u64,
);

/// The pauses before each retry of a failed registry update (connect or
/// close): two retries, within about half a second plus their round trips.
const REGISTRY_RETRY_PAUSES: [Duration; 2] =
    [Duration::from_millis(100), Duration::from_millis(400)];

/// State shared by the broker handle and its background tasks.
struct Inner {
    redis: Arc<Redis>,
    metrics: Arc<Metrics>,
    node: String,
    node_ttl: Duration,
    started_at: u64,
    /// Poll the primary's replica count (`wsgate_redis_replicas`).
    watch_replicas: bool,
    subs: Arc<Subscriptions>,
    /// The hub, read-only: memberships for resync, rooms for unsubscribes.
    view: Arc<dyn LocalView>,
    /// Local users' counts, and the order of live updates and resync.
    intent: Intent,
    /// The webhook steps, when `--webhook-url` is set.
    webhooks: Option<Arc<Outboxes>>,
    subscribed: AtomicBool,
    heartbeat_ok: AtomicBool,
    /// Catch-ups queued and not yet run (see [`inbound`]).
    catch_ups: AtomicU64,
    local_connections: AtomicU64,
    /// When this node may reap others; `None` while Redis is lost.
    reap_from: Mutex<Option<Instant>>,
    shutdown: CancellationToken,
}

/// The cluster over Redis.
pub struct RedisBroker {
    inner: Arc<Inner>,
}

impl RedisBroker {
    /// A broker on `redis` that reads this node's hub through `view`;
    /// background work begins at [`Broker::start`].
    /// `webhooks`: the webhook steps, when `--webhook-url` is set.
    pub fn new(
        redis: Arc<Redis>,
        config: &Config,
        metrics: Arc<Metrics>,
        view: Arc<dyn LocalView>,
        webhooks: Option<Arc<Outboxes>>,
    ) -> RedisBroker {
        metrics
            .redis_wait_replicas
            .set(i64::try_from(config.redis_wait_replicas).unwrap_or(i64::MAX));
        RedisBroker {
            inner: Arc::new(Inner {
                redis,
                metrics,
                node: config.node_id.clone(),
                node_ttl: config.node_ttl,
                started_at: now_ms(),
                // `ROLE` asks one primary: not in cluster mode, whose
                // shards each have their own (`WAIT` tells per store).
                watch_replicas: config.redis_mode == RedisMode::Sentinel
                    || (config.redis_wait_replicas > 0 && config.redis_mode != RedisMode::Cluster),
                subs: Arc::default(),
                view,
                intent: Intent::default(),
                webhooks,
                subscribed: AtomicBool::new(false),
                heartbeat_ok: AtomicBool::new(false),
                catch_ups: AtomicU64::new(0),
                local_connections: AtomicU64::new(0),
                reap_from: Mutex::new(Some(Instant::now())),
                shutdown: CancellationToken::new(),
            }),
        }
    }
}

impl Inner {
    /// Subscribed, heartbeating, and caught up after any outage or reap.
    fn is_up(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
            && self.heartbeat_ok.load(Ordering::Acquire)
            && self.catch_ups.load(Ordering::Acquire) == 0
    }

    /// Redis was lost: no reaping until [`REAP_GRACE`] after it is back.
    fn outage(&self) {
        *self
            .reap_from
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Subscriptions are live again (the first connection has no grace).
    /// Returns true when this ends an outage.
    fn reconnected(&self) -> bool {
        let mut from = self
            .reap_from
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if from.is_none() {
            *from = Some(Instant::now() + REAP_GRACE);
            return true;
        }
        false
    }

    fn may_reap(&self) -> bool {
        self.reap_from
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|t| Instant::now() >= t)
    }

    /// Keeps the broker not up (`/readyz` 503) until the guard drops.
    fn hold_ready(&self) -> ReadyHold<'_> {
        self.catch_ups.fetch_add(1, Ordering::AcqRel);
        self.mark();
        ReadyHold(self)
    }

    fn mark(&self) {
        self.metrics.broker_up.set(i64::from(self.is_up()));
    }
}

/// See [`Inner::hold_ready`].
struct ReadyHold<'a>(&'a Inner);

impl Drop for ReadyHold<'_> {
    fn drop(&mut self) {
        self.0.catch_ups.fetch_sub(1, Ordering::AcqRel);
        self.0.mark();
    }
}

fn counted(metrics: &Metrics, op: BrokerOp) -> impl Fn(RedisError) -> BrokerError + '_ {
    move |e| {
        metrics.broker_error(op);
        BrokerError::from(e)
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn start(&self, sink: Weak<dyn BusSink>) {
        let queue = inbound::start(self.inner.clone(), sink);
        tokio::spawn(subscriber::supervise(self.inner.clone(), queue.clone()));
        tokio::spawn(liveness::heartbeat_loop(self.inner.clone(), queue));
    }

    async fn publish(&self, envelope: &Envelope) -> Result<usize, BrokerError> {
        let route = &envelope.route;
        let r = &self.inner.redis;
        let keys = r.keys();
        let bytes = envelope
            .encode()
            .map_err(|e| BrokerError::Unavailable(format!("envelope encoding: {e}")))?;
        let mut conn = r.conn().await?;
        let reached = match route {
            Route::User(user) => {
                // Two steps, each in one slot: the user's registry, then the
                // node channels. Concurrent publishes share the connection
                // and stay in command order.
                let nodes: Vec<String> = r.timed(conn.hkeys(keys.user(user))).await?;
                let others: Vec<String> = nodes
                    .into_iter()
                    .filter(|n| *n != self.inner.node)
                    .collect();
                let sent = join_all(others.iter().map(|n| {
                    let mut c = conn.clone();
                    let channel = keys.node_channel(n);
                    let bytes = &bytes;
                    async move {
                        r.timed(r.publish_cmd(&channel, bytes).query_async::<u64>(&mut c))
                            .await
                    }
                }))
                .await;
                for s in sent {
                    s?;
                }
                others.len()
            }
            Route::Room(room) => {
                let channel = keys.room_channel(room);
                r.timed(
                    r.publish_cmd(&channel, &bytes)
                        .query_async::<usize>(&mut conn),
                )
                .await?
            }
            Route::Broadcast => {
                let channel = keys.broadcast_channel();
                r.timed(
                    r.publish_cmd(&channel, &bytes)
                        .query_async::<usize>(&mut conn),
                )
                .await?
            }
        };
        Ok(reached)
    }

    async fn user_connections(&self, user: &str, delta: i64) -> Result<(), BrokerError> {
        let inner = &self.inner;
        let r = &inner.redis;
        let keys = r.keys();
        let conn = r.conn().await?;
        let count = |key: String, field: String| {
            let mut c = conn.clone();
            async move {
                r.timed(
                    r.scripts()
                        .count
                        .key(key)
                        .arg(field)
                        .arg(delta)
                        .invoke_async::<i64>(&mut c),
                )
                .await
            }
        };
        let first: Result<(), RedisError> = async {
            // In order with resync for this user (see `intent`).
            let _order = inner.intent.lock(user).await;
            inner.intent.apply(user, delta);
            let node_side = count(keys.node_users(&inner.node), user.to_owned());
            let user_side = async {
                match &inner.webhooks {
                    Some(hooks) => {
                        let mut c = conn.clone();
                        hooks
                            .user_count(&mut c, user, &inner.node, UserCount::Add(delta))
                            .await
                            .map(|()| 0)
                    }
                    None => count(keys.user(user), inner.node.clone()).await,
                }
            };
            // Opening: the node's index first, so it always covers the registry;
            // closing: the registry first. A node dying between leaves an index
            // entry its reaper undoes (removing an absent field is harmless).
            if delta > 0 {
                node_side.await?;
                user_side.await?;
            } else {
                user_side.await?;
                node_side.await?;
            }
            Ok(())
        }
        .await;
        let Err(mut last) = first else {
            return Ok(());
        };
        // The delta may or may not have been applied (a timeout after Redis
        // ran it): sending it again could count twice. The retries write the
        // absolute count this node means instead, as resync does, which is
        // idempotent. Bounded: `REGISTRY_RETRY_PAUSES`, each attempt bounded
        // by `OP_TIMEOUT`; only at connect and close, never on the message path.
        for pause in REGISTRY_RETRY_PAUSES {
            inner.metrics.broker_error(BrokerOp::Registry);
            tokio::time::sleep(pause).await;
            let attempt = async {
                let conn = r.conn().await?;
                inner.register_user(conn, user, true).await
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last.into())
    }

    async fn user_status(&self, user: &str) -> Result<u64, BrokerError> {
        let r = &self.inner.redis;
        let mut conn = r.conn().await?;
        let counts: Vec<i64> = r.timed(conn.hvals(r.keys().user(user))).await?;
        Ok(counts
            .into_iter()
            .filter(|n| *n > 0)
            .map(|n| n as u64)
            .sum())
    }

    async fn room_member(&self, room: &str, user: &str, joined: bool) -> Result<bool, BrokerError> {
        let inner = &self.inner;
        let r = &inner.redis;
        let keys = r.keys();
        let mut conn = r.conn().await?;
        let node_entry = format!("{room} {user}");
        let room_entry = format!("{} {user}", inner.node);
        let script = if joined {
            &r.scripts().room_join
        } else {
            &r.scripts().room_leave
        };
        let mut room_conn = conn.clone();
        let room_side = async {
            match &inner.webhooks {
                Some(hooks) => hooks
                    .room_member(&mut room_conn, room, user, &inner.node, joined)
                    .await
                    .map(i64::from),
                None => {
                    let mut invocation = script.key(keys.members(room));
                    invocation
                        .key(keys.member_nodes(room))
                        .arg(user)
                        .arg(room_entry);
                    r.timed(invocation.invoke_async::<i64>(&mut room_conn))
                        .await
                }
            }
        };
        let changed = if joined {
            // The node's index first: a reaper finds the membership and undoes it.
            r.timed(conn.sadd::<_, _, u64>(keys.node_rooms(&inner.node), &node_entry))
                .await?;
            room_side.await?
        } else {
            let changed = room_side.await?;
            r.timed(conn.srem::<_, _, u64>(keys.node_rooms(&inner.node), &node_entry))
                .await?;
            changed
        };
        Ok(changed == 1)
    }

    async fn room_members(&self, room: &str) -> Result<Vec<String>, BrokerError> {
        let r = &self.inner.redis;
        let mut conn = r.conn().await?;
        let mut members: Vec<String> = r.timed(conn.hkeys(r.keys().members(room))).await?;
        members.sort();
        Ok(members)
    }

    async fn room_size(&self, room: &str) -> Result<u64, BrokerError> {
        let r = &self.inner.redis;
        let mut conn = r.conn().await?;
        Ok(r.timed(conn.hlen(r.keys().members(room))).await?)
    }

    /// `HSCAN` pages: the cursor is `"{scan cursor}:{skip}"`, because one
    /// `HSCAN` step may return more than `limit` fields (a small hash comes
    /// back whole): the rest of that step is skipped into on the next page.
    async fn room_members_page(
        &self,
        room: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>), BrokerError> {
        let r = &self.inner.redis;
        let mut conn = r.conn().await?;
        let (mut scan, mut skip) = match cursor.and_then(|c| c.split_once(':')) {
            Some((a, b)) => (
                a.parse::<u64>().unwrap_or(0),
                b.parse::<usize>().unwrap_or(0),
            ),
            None => (0, 0),
        };
        let key = r.keys().members(room);
        let mut page = Vec::with_capacity(limit.min(1024));
        loop {
            let (next, flat): (u64, Vec<String>) = r
                .timed(
                    redis::cmd("HSCAN")
                        .arg(&key)
                        .arg(scan)
                        .arg("COUNT")
                        .arg(limit.max(10))
                        .query_async(&mut conn),
                )
                .await?;
            let users: Vec<String> = flat.into_iter().step_by(2).collect();
            let want = limit - page.len();
            let available = users.len().saturating_sub(skip);
            page.extend(users.into_iter().skip(skip).take(want));
            if available > want {
                return Ok((page, Some(format!("{scan}:{}", skip + want))));
            }
            skip = 0;
            if next == 0 {
                return Ok((page, None));
            }
            scan = next;
            if page.len() == limit {
                return Ok((page, Some(format!("{scan}:0"))));
            }
        }
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, BrokerError> {
        let inner = &self.inner;
        let nodes = liveness::live_nodes(inner)
            .await
            .map_err(counted(&inner.metrics, BrokerOp::Registry))?;
        Ok(nodes)
    }

    async fn room_interest(&self, room: &str, interested: bool) -> Result<(), BrokerError> {
        let channel = self.inner.redis.keys().room_channel(room);
        if interested {
            self.inner.subs.want(channel).await
        } else {
            // A first join may have come since the hub's last leave: only
            // an empty room is unwanted.
            let view = &self.inner.view;
            self.inner.subs.unwant(channel, || !view.has_room(room));
            Ok(())
        }
    }

    fn set_local_connections(&self, n: u64) {
        self.inner.local_connections.store(n, Ordering::Relaxed);
    }

    fn is_up(&self) -> bool {
        self.inner.is_up()
    }

    async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        if let Err(e) = liveness::leave_cluster(&self.inner).await {
            // The survivors reap this node after node-ttl instead.
            self.inner.metrics.broker_error(BrokerOp::Registry);
            tracing::debug!(error = %e, "Could not remove this node from the cluster.");
        }
        self.inner.subscribed.store(false, Ordering::Release);
        self.inner.mark();
    }
}

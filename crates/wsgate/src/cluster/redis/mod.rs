//! Cluster mode over Redis: routing by instance ID, registry, presence, node
//! liveness.
//!
//! Connections: a `deadpool-redis` pool makes the command connection (one
//! multiplexed connection shared by all tasks, replaced after a failure;
//! every call bounded by a timeout) and one dedicated pub/sub connection run by the supervised loop in
//! [`subscriber`]. Multi-key changes are Lua scripts ([`scripts`]): atomic, one
//! round trip each, using Redis time.
//!
//! Channels (`{p}` is `--redis-prefix`):
//! - `{p}:node:{node_id}`: traffic for users on that node (direct messages,
//!   typing, receipts, disconnects); subscribed for the node's lifetime;
//! - `{p}:broadcast`: cluster broadcast; subscribed for the node's lifetime;
//! - `{p}:room:{room}`: room messages, presence and typing; subscribed while
//!   the room has a member on this node (unsubscribes are debounced).
//!
//! Keys:
//! - `{p}:inbox:{user}` (list): the user's unacked direct messages, entries
//!   `id|msgpack`; expires `inbox-ttl` after the last store (+ a safety margin,
//!   the sweeper counts the expiry); see [`crate::inbox::redis`];
//! - `{p}:inbox-expiry` (zset): user → inbox expiry (ms), for the sweeper;
//! - `{p}:user:{user}` (hash): node → connections of the user on that node;
//!   the registry that routes direct messages; field removed at zero;
//! - `{p}:members:{room}` (hash): user → nodes where the user has a member
//!   connection; the room's cluster-wide member list;
//! - `{p}:node-users:{node}` (set) and `{p}:node-rooms:{node}` (set of
//!   "room user"): what a node registered, so survivors can remove it;
//! - `{p}:nodes` (zset): node → last heartbeat (Redis time, ms);
//! - `{p}:nodeinfo:{node}` (hash): connections, started_at; expires after
//!   3 × `node-ttl`.
//!
//! Liveness: each node heartbeats every `node-ttl / 3`; each node also looks
//! for nodes silent for `node-ttl`, and reaps one it sees silent at two
//! checks in a row with one script (only one reaper wins), then announces the
//! leaves that follow. After every
//! (re)connection the node re-registers what its hub holds (resync), so a
//! Redis restart, with or without persistence, converges. A node that lost
//! Redis does not reap for `REAP_GRACE` after it is back: the others were
//! likely cut off too and are still backing off, their heartbeats are old
//! only because Redis was away, and reaping them would announce leaves of
//! users who never left. Direct messages published to this node while it was
//! off the bus are in the inboxes only: after an outage the node has its
//! sessions catch up from their inboxes ([`BusSink::resubscribed`]) before it
//! reads the new subscription, so a connection that outlived the outage still
//! gets every message, in each sender's order.

mod scripts;
mod subscriber;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Script};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wsgate_protocol::bus::Envelope;

use super::{Broker, BrokerError, BusSink, NodeInfo, Route};
use crate::config::{Config, ConfigError};
use crate::inbox::redis::ListInbox;
use crate::inbox::Inbox;
use crate::metrics::{BrokerOp, Metrics};
use crate::node::now_ms;
use subscriber::Subscriptions;

/// Longest any Redis command may take before it counts as a failure.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Pooled command connections.
const POOL_SIZE: usize = 32;
/// How long after regaining Redis a node waits before reaping others: the
/// longest reconnect backoff with jitter, plus a connect timeout.
const REAP_GRACE: Duration = Duration::from_millis(
    subscriber::BACKOFF_MAX.as_millis() as u64 * 5 / 4 + OP_TIMEOUT.as_millis() as u64,
);

/// What the broker and the inbox share: the pool, names, metrics.
pub struct RedisShared {
    pub pool: Pool,
    shared_conn: Mutex<Option<MultiplexedConnection>>,
    pub prefix: String,
    pub node: String,
    pub metrics: Arc<Metrics>,
    pub(crate) scripts: Scripts,
}

pub(crate) struct Scripts {
    publish_user: Script,
    user_connections: Script,
    room_member: Script,
    heartbeat: Script,
    live_nodes: Script,
    dead_nodes: Script,
    reap_node: Script,
    pub(crate) inbox_store: Script,
    pub(crate) inbox_pending: Script,
    pub(crate) inbox_ack: Script,
    pub(crate) inbox_sweep: Script,
}

impl RedisShared {
    /// The command connection: one multiplexed connection taken from the
    /// pool and shared by every task (commands pipeline on it, in order).
    /// Checking a connection out of the pool for each command would cost a
    /// `PING` round trip each time (deadpool's recycle check); the pool
    /// (re)creates the shared connection after a failure.
    pub async fn conn(&self) -> Result<MultiplexedConnection, BrokerError> {
        if let Some(conn) = self.lock_shared().clone() {
            return Ok(conn);
        }
        let fresh = self
            .pool
            .get()
            .await
            .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
        let conn = deadpool_redis::Connection::take(fresh);
        *self.lock_shared() = Some(conn.clone());
        Ok(conn)
    }

    fn lock_shared(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.shared_conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a Redis future with the operation timeout. A failure drops the
    /// shared connection, so the next command starts on a fresh one.
    pub async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BrokerError> {
        let result = match tokio::time::timeout(OP_TIMEOUT, fut).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if !(e.is_io_error() || e.is_connection_dropped() || e.is_timeout()) => {
                // A command error (e.g. a script error): the connection is fine.
                return Err(BrokerError::Unavailable(e.to_string()));
            }
            Ok(Err(e)) => Err(BrokerError::Unavailable(e.to_string())),
            Err(_) => Err(BrokerError::Timeout),
        };
        *self.lock_shared() = None;
        result
    }

    pub fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{name}", self.prefix)
    }

    fn room_channel(&self, room: &str) -> String {
        self.key("room", room)
    }
}

/// A node's cluster backend: the broker and the inbox sharing one pool.
pub type BrokerAndInbox = (Arc<dyn Broker>, Arc<dyn Inbox>);

/// Builds the Redis broker and inbox for a node. Connecting happens in the
/// background: a node starts (not ready) even while Redis is down.
pub fn connect(
    url: &str,
    config: &Config,
    metrics: Arc<Metrics>,
) -> Result<BrokerAndInbox, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "redis-url",
        value: url.to_owned(),
        reason,
    };
    let client = redis::Client::open(url).map_err(|e| invalid(e.to_string()))?;
    let mut pool_config = deadpool_redis::Config::from_url(url);
    pool_config.pool = Some(PoolConfig {
        max_size: POOL_SIZE,
        timeouts: Timeouts {
            wait: Some(OP_TIMEOUT),
            create: Some(OP_TIMEOUT),
            recycle: Some(OP_TIMEOUT),
        },
        ..PoolConfig::default()
    });
    let pool = pool_config
        .create_pool(Some(Runtime::Tokio1))
        .map_err(|e| invalid(e.to_string()))?;
    let shared = Arc::new(RedisShared {
        pool,
        shared_conn: Mutex::new(None),
        prefix: config.redis_prefix.clone(),
        node: config.node_id.clone(),
        metrics,
        scripts: Scripts {
            publish_user: Script::new(scripts::PUBLISH_USER),
            user_connections: Script::new(scripts::USER_CONNECTIONS),
            room_member: Script::new(scripts::ROOM_MEMBER),
            heartbeat: Script::new(scripts::HEARTBEAT),
            live_nodes: Script::new(scripts::LIVE_NODES),
            dead_nodes: Script::new(scripts::DEAD_NODES),
            reap_node: Script::new(scripts::REAP_NODE),
            inbox_store: Script::new(scripts::INBOX_STORE),
            inbox_pending: Script::new(scripts::INBOX_PENDING),
            inbox_ack: Script::new(scripts::INBOX_ACK),
            inbox_sweep: Script::new(scripts::INBOX_SWEEP),
        },
    });
    let broker = Arc::new(RedisBroker {
        inner: Arc::new(Inner {
            shared: shared.clone(),
            client,
            node_ttl: config.node_ttl,
            started_at: now_ms(),
            subs: Subscriptions::default(),
            subscribed: AtomicBool::new(false),
            heartbeat_ok: AtomicBool::new(false),
            local_connections: AtomicU64::new(0),
            reap_from: Mutex::new(Some(Instant::now())),
            shutdown: CancellationToken::new(),
        }),
    });
    let inbox = Arc::new(ListInbox::new(shared, config.inbox_max, config.inbox_ttl));
    Ok((broker, inbox))
}

/// State shared by the broker handle and its background loops.
struct Inner {
    shared: Arc<RedisShared>,
    client: redis::Client,
    node_ttl: Duration,
    started_at: u64,
    subs: Subscriptions,
    subscribed: AtomicBool,
    heartbeat_ok: AtomicBool,
    local_connections: AtomicU64,
    /// When this node may reap others; `None` while Redis is lost.
    reap_from: Mutex<Option<Instant>>,
    shutdown: CancellationToken,
}

/// The cluster over Redis.
pub struct RedisBroker {
    inner: Arc<Inner>,
}

impl Inner {
    fn is_up(&self) -> bool {
        self.subscribed.load(Ordering::Acquire) && self.heartbeat_ok.load(Ordering::Acquire)
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

    fn mark(&self) {
        self.shared.metrics.broker_up.set(i64::from(self.is_up()));
    }

    /// Writes this node's heartbeat. Returns true when the node had been
    /// reaped by others meanwhile (its registrations must be re-done).
    async fn heartbeat(&self) -> Result<bool, BrokerError> {
        let s = &self.shared;
        let mut conn = s.conn().await?;
        let nodes_key = format!("{}:nodes", s.prefix);
        let was_there: Option<f64> = s.timed(conn.zscore(&nodes_key, &s.node)).await?;
        let info_ttl = (self.node_ttl * 3).as_millis() as u64;
        let _: u64 = s
            .timed(
                s.scripts
                    .heartbeat
                    .key(&nodes_key)
                    .key(s.key("nodeinfo", &s.node))
                    .arg(&s.node)
                    .arg(self.local_connections.load(Ordering::Relaxed))
                    .arg(self.started_at)
                    .arg(info_ttl)
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(was_there.is_none())
    }

    /// Reaps nodes silent for `node-ttl` that were already silent at the
    /// previous check (`suspects`); returns the (room, user) leaves.
    ///
    /// Two sightings, each after a successful heartbeat of this node, because
    /// one is not proof: when Redis stalls (frozen, overloaded), every node's
    /// heartbeat looks old the moment it resumes, and commands queued during
    /// the stall (this node's check among them) run before the others'
    /// heartbeats. A live node heartbeats again within one period, so it is
    /// never seen dead twice.
    async fn reap_dead(
        &self,
        suspects: &mut HashSet<String>,
    ) -> Result<Vec<(String, String)>, BrokerError> {
        let s = &self.shared;
        let mut conn = s.conn().await?;
        let nodes_key = format!("{}:nodes", s.prefix);
        let ttl = self.node_ttl.as_millis() as u64;
        let dead: Vec<String> = s
            .timed(
                s.scripts
                    .dead_nodes
                    .key(&nodes_key)
                    .arg(ttl)
                    .invoke_async(&mut conn),
            )
            .await?;
        let confirmed: Vec<String> = dead
            .iter()
            .filter(|n| **n != s.node && suspects.contains(*n))
            .cloned()
            .collect();
        *suspects = dead.into_iter().collect();
        let mut leaves = Vec::new();
        for node in confirmed {
            let entries = self.reap(&mut conn, &node, false).await?;
            info!(node = %node, leaves = entries.len(), "Reaped a dead node.");
            leaves.extend(entries);
        }
        Ok(leaves)
    }

    async fn reap(
        &self,
        conn: &mut MultiplexedConnection,
        node: &str,
        force: bool,
    ) -> Result<Vec<(String, String)>, BrokerError> {
        let s = &self.shared;
        let entries: Vec<String> = s
            .timed(
                s.scripts
                    .reap_node
                    .key(format!("{}:nodes", s.prefix))
                    .arg(node)
                    .arg(&s.prefix)
                    .arg(self.node_ttl.as_millis() as u64)
                    .arg(if force { "1" } else { "0" })
                    .invoke_async(conn),
            )
            .await?;
        Ok(entries
            .into_iter()
            .filter_map(|e| e.split_once(' ').map(|(r, u)| (r.to_owned(), u.to_owned())))
            .collect())
    }

    /// Replaces this node's registrations with what its hub holds now.
    async fn resync(&self, sink: &Weak<dyn BusSink>) -> Result<(), BrokerError> {
        let s = &self.shared;
        let mut conn = s.conn().await?;
        let stale = self.reap(&mut conn, &s.node.clone(), true).await?;
        let state = sink.upgrade().map(|k| k.local_state()).unwrap_or_default();
        // Memberships this node registered before (a restart with the same id,
        // or a Redis outage) that its hub no longer holds have ended: announce them.
        let ended: Vec<(String, String)> = stale
            .into_iter()
            .filter(|(room, user)| {
                !state
                    .rooms
                    .iter()
                    .any(|(r, users)| r == room && users.iter().any(|u| u == user))
            })
            .collect();
        if !ended.is_empty() {
            if let Some(sink) = sink.upgrade() {
                sink.nodes_died(ended);
            }
        }
        let node_users = s.key("node-users", &s.node);
        let node_rooms = s.key("node-rooms", &s.node);
        let mut pipe = redis::pipe();
        let mut queued = 0;
        for (user, n) in &state.users {
            pipe.hset(s.key("user", user), &s.node, *n).ignore();
            pipe.sadd(&node_users, user).ignore();
            queued += 1;
        }
        for (room, users) in &state.rooms {
            for user in users {
                pipe.hincr(s.key("members", room), user, 1).ignore();
                pipe.sadd(&node_rooms, format!("{room} {user}")).ignore();
                queued += 1;
            }
        }
        if queued > 0 {
            let _: () = s.timed(pipe.query_async(&mut conn)).await?;
        }
        self.heartbeat().await?;
        self.heartbeat_ok.store(true, Ordering::Release);
        info!(
            users = state.users.len(),
            rooms = state.rooms.len(),
            "Registered this node in the cluster."
        );
        Ok(())
    }
}

/// Heartbeats and reaping, every `node-ttl / 3`.
async fn heartbeat_loop(inner: Arc<Inner>, sink: Weak<dyn BusSink>) {
    let period = (inner.node_ttl / 3).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut suspects = HashSet::new();
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !inner.subscribed.load(Ordering::Acquire) {
            suspects.clear();
            continue;
        }
        match inner.heartbeat().await {
            Ok(reaped) => {
                inner.heartbeat_ok.store(true, Ordering::Release);
                if reaped {
                    warn!("This node was declared dead by the cluster; registering again.");
                    if let Err(e) = inner.resync(&sink).await {
                        inner.shared.metrics.broker_error(BrokerOp::Registry);
                        debug!(error = %e, "Resync failed.");
                    }
                }
            }
            Err(e) => {
                inner.heartbeat_ok.store(false, Ordering::Release);
                inner.shared.metrics.broker_error(BrokerOp::Heartbeat);
                debug!(error = %e, "Heartbeat failed.");
                inner.mark();
                suspects.clear();
                continue;
            }
        }
        inner.mark();
        if !inner.may_reap() {
            suspects.clear();
            continue;
        }
        match inner.reap_dead(&mut suspects).await {
            Ok(leaves) if !leaves.is_empty() => {
                if let Some(sink) = sink.upgrade() {
                    sink.nodes_died(leaves);
                }
            }
            Ok(_) => {}
            Err(_) => inner.shared.metrics.broker_error(BrokerOp::Heartbeat),
        }
    }
}

fn broker_err(metrics: &Metrics, op: BrokerOp) -> impl Fn(BrokerError) -> BrokerError + '_ {
    move |e| {
        metrics.broker_error(op);
        e
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn start(&self, sink: Weak<dyn BusSink>) {
        tokio::spawn(subscriber::supervise(self.inner.clone(), sink.clone()));
        tokio::spawn(heartbeat_loop(self.inner.clone(), sink));
    }

    async fn publish(&self, route: &Route, envelope: &Envelope) -> Result<usize, BrokerError> {
        let s = &self.inner.shared;
        let bytes = envelope
            .encode()
            .map_err(|e| BrokerError::Unavailable(format!("envelope encoding: {e}")))?;
        let mut conn = s.conn().await?;
        let reached: usize = match route {
            Route::User(user) => {
                s.timed(
                    s.scripts
                        .publish_user
                        .key(s.key("user", user))
                        .arg(&bytes)
                        .arg(&s.prefix)
                        .arg(&s.node)
                        .invoke_async(&mut conn),
                )
                .await?
            }
            Route::Room(room) => s.timed(conn.publish(s.room_channel(room), &bytes)).await?,
            Route::Broadcast => {
                s.timed(conn.publish(format!("{}:broadcast", s.prefix), &bytes))
                    .await?
            }
        };
        Ok(reached)
    }

    async fn user_connections(&self, user: &str, delta: i64) -> Result<(), BrokerError> {
        let s = &self.inner.shared;
        let mut conn = s.conn().await?;
        let _: i64 = s
            .timed(
                s.scripts
                    .user_connections
                    .key(s.key("user", user))
                    .key(s.key("node-users", &s.node))
                    .arg(&s.node)
                    .arg(delta)
                    .arg(user)
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(())
    }

    async fn user_status(&self, user: &str) -> Result<u64, BrokerError> {
        let s = &self.inner.shared;
        let mut conn = s.conn().await?;
        let counts: Vec<i64> = s.timed(conn.hvals(s.key("user", user))).await?;
        Ok(counts
            .into_iter()
            .filter(|n| *n > 0)
            .map(|n| n as u64)
            .sum())
    }

    async fn room_member(&self, room: &str, user: &str, joined: bool) -> Result<bool, BrokerError> {
        let s = &self.inner.shared;
        let mut conn = s.conn().await?;
        let changed: i64 = s
            .timed(
                s.scripts
                    .room_member
                    .key(s.key("members", room))
                    .key(s.key("node-rooms", &s.node))
                    .arg(user)
                    .arg(format!("{room} {user}"))
                    .arg(if joined { "1" } else { "0" })
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn room_members(&self, room: &str) -> Result<Vec<String>, BrokerError> {
        let s = &self.inner.shared;
        let mut conn = s.conn().await?;
        let mut members: Vec<String> = s.timed(conn.hkeys(s.key("members", room))).await?;
        members.sort();
        Ok(members)
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, BrokerError> {
        let s = &self.inner.shared;
        let mut conn = s.conn().await?;
        let flat: Vec<String> = s
            .timed(
                s.scripts
                    .live_nodes
                    .key(format!("{}:nodes", s.prefix))
                    .arg(&s.prefix)
                    .arg(self.inner.node_ttl.as_millis() as u64)
                    .invoke_async(&mut conn),
            )
            .await
            .map_err(broker_err(&s.metrics, BrokerOp::Registry))?;
        let mut nodes: Vec<NodeInfo> = flat
            .chunks_exact(3)
            .map(|c| NodeInfo {
                node: c[0].clone(),
                connections: c[1].parse().unwrap_or(0),
                started_at: c[2].parse().unwrap_or(0),
            })
            .collect();
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(nodes)
    }

    async fn room_interest(&self, room: &str, interested: bool) -> Result<(), BrokerError> {
        let channel = self.inner.shared.room_channel(room);
        if interested {
            self.inner.subs.want(channel).await
        } else {
            self.inner.subs.unwant(channel).await;
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
        let s = &self.inner.shared;
        if let Ok(mut conn) = s.conn().await {
            let node = s.node.clone();
            let _ = self.inner.reap(&mut conn, &node, true).await;
        }
        self.inner.subscribed.store(false, Ordering::Release);
        self.inner.mark();
    }
}

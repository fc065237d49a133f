//! Cluster mode's pub/sub (`--redis-mode cluster`): one RESP3 connection
//! per shard primary, and one `SSUBSCRIBE` per channel, sent to the primary
//! of the channel's slot ([`crate::redis::cluster::ShardMap`], read with
//! `CLUSTER SLOTS`). Never a multi-slot batch: a node answers one with
//! `CROSSSLOT` and subscribes none of it.
//!
//! Messages arrive as RESP3 pushes (`smessage`). redis-rs hands each push
//! to the connection's handler inside its reader, so the handler only queues
//! the payload with [`Queue::try_push`] (which never waits), like the
//! single-mode reader.
//!
//! Shards are supervised one by one (contract 6: a shard that is down does
//! not make nodes unready). A connection ends with an [`End`] on the
//! subscriber's channel: [`End::Shard`] when it is lost (`Disconnection`, a
//! failed round trip, or a `sunsubscribe` this node did not ask for: its
//! slot moved or its shard failed over), [`End::Node`] when the bus queue
//! is full (the node fell behind: it catches up as after an outage). The
//! subscriber asks [`Shards::lose`] what a lost connection means: when it
//! served this node's channel or the broadcast channel ([`Lost::Vital`]),
//! everything is made again (not ready until then, as after a Redis
//! restart); otherwise ([`Lost::Shard`]) only that shard's room channels
//! are parked, the node stays ready, and [`Shards::repair`] reads the shard
//! map again and connects the primaries that serve those slots now, after
//! which the channels are subscribed there and their rooms caught up from
//! the history (`subscriptions`).
//!
//! Bounds: each connection sends at most one [`End::Shard`] and the set at
//! most one [`End::Node`] (flags), so the unbounded end channel holds at
//! most one entry per connection opened.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use tokio::sync::mpsc;

use super::inbound::Queue;
use super::Inner;
use crate::redis::cluster::ShardMap;
use crate::redis::{Redis, CONNECT_TIMEOUT, OP_TIMEOUT};

/// A primary's host and port.
type Addr = (String, u16);

/// Why a shard connection (or the whole set) must be made again.
pub(super) enum End {
    /// The node must resubscribe everything and catch up.
    Node(String),
    /// Connection `id` is lost.
    Shard { id: u64, reason: String },
}

/// What a lost connection means ([`Shards::lose`]).
pub(super) enum Lost {
    /// A connection already replaced: nothing to do.
    Stale,
    /// It served this node's channel or the broadcast channel.
    Vital,
    /// It served only room channels: those on this primary are to park.
    Shard(Addr),
}

/// One shard primary's connection.
struct Link {
    id: u64,
    conn: MultiplexedConnection,
    /// Set once its [`End::Shard`] is sent.
    lost: Arc<AtomicBool>,
}

struct State {
    map: ShardMap,
    links: HashMap<Addr, Link>,
}

/// The subscriber's connections to the shard primaries. Cheap to clone:
/// the subscriber's reader and the subscription task share them.
#[derive(Clone)]
pub(super) struct Shards {
    shared: Arc<Shared>,
}

struct Shared {
    redis: Arc<crate::redis::Redis>,
    state: Mutex<State>,
    /// This node's channel and the broadcast channel.
    vital: [String; 2],
    handler: Handler,
    next_id: AtomicU64,
}

/// What a shard connection's push handler needs.
#[derive(Clone)]
struct Handler {
    queue: Queue,
    node_channel: String,
    /// Channels this node is unsubscribing: their `sunsubscribe` is expected.
    leaving: Arc<Mutex<HashSet<String>>>,
    ended: mpsc::UnboundedSender<End>,
    node_ended: Arc<AtomicBool>,
    overflows: prometheus::IntCounter,
    id: u64,
    lost: Arc<AtomicBool>,
}

fn report(ended: &mpsc::UnboundedSender<End>, lost: &AtomicBool, id: u64, reason: String) {
    if !lost.swap(true, Ordering::AcqRel) && ended.send(End::Shard { id, reason }).is_err() {
        tracing::trace!("A shard connection ended after the subscriber.");
    }
}

impl Handler {
    fn push(&self, info: PushInfo) {
        match info.kind {
            PushKind::SMessage | PushKind::Message => {
                let (Some(channel), Some(Value::BulkString(payload))) =
                    (info.data.first(), info.data.get(1))
                else {
                    return;
                };
                let own = matches!(channel, Value::BulkString(c) if c.as_slice() == self.node_channel.as_bytes());
                if self.queue.try_push(payload, own).is_err() {
                    self.overflows.inc();
                    let reason = format!(
                        "the bus queue to the node is full ({} payloads or {} MiB)",
                        super::inbound::QUEUE_LEN,
                        super::inbound::QUEUE_BYTES >> 20
                    );
                    if !self.node_ended.swap(true, Ordering::AcqRel)
                        && self.ended.send(End::Node(reason)).is_err()
                    {
                        tracing::trace!("The bus queue filled after the subscriber ended.");
                    }
                }
            }
            PushKind::SUnsubscribe => {
                let channel = match info.data.first() {
                    Some(Value::BulkString(c)) => String::from_utf8_lossy(c).into_owned(),
                    _ => String::new(),
                };
                let asked = lock(&self.leaving).remove(&channel);
                if !asked {
                    report(
                        &self.ended,
                        &self.lost,
                        self.id,
                        format!(
                        "Redis unsubscribed {channel} (its slot moved or its shard failed over)"
                    ),
                    );
                }
            }
            PushKind::Disconnection => report(
                &self.ended,
                &self.lost,
                self.id,
                "a shard connection was lost".into(),
            ),
            _ => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shards {
    /// Reads the shard map and connects to every primary. Fails only when
    /// the primary of this node's channel or of the broadcast channel cannot
    /// be reached; the other shards' room channels wait for
    /// [`Shards::repair`]. The receiver yields each connection's end.
    pub(super) async fn connect(
        inner: &Inner,
        queue: &Queue,
    ) -> Result<(Shards, mpsc::UnboundedReceiver<End>), String> {
        let redis = &inner.redis;
        let map = redis.shard_map().await.map_err(|e| e.to_string())?;
        if map.primaries().is_empty() {
            return Err("CLUSTER SLOTS names no primary".into());
        }
        // Unbounded but small: each shard connection reports its end at most
        // once (its `lost` flag), so it holds at most one entry per link.
        let (ended, end_rx) = mpsc::unbounded_channel();
        let keys = redis.keys();
        let shards = Shards {
            shared: Arc::new(Shared {
                redis: redis.clone(),
                state: Mutex::new(State {
                    map: map.clone(),
                    links: HashMap::new(),
                }),
                vital: [keys.node_channel(&inner.node), keys.broadcast_channel()],
                handler: Handler {
                    queue: queue.clone(),
                    node_channel: keys.node_channel(&inner.node),
                    leaving: Arc::default(),
                    ended,
                    node_ended: Arc::default(),
                    overflows: inner.metrics.bus.queue_overflows.clone(),
                    id: 0,
                    lost: Arc::default(),
                },
                next_id: AtomicU64::new(1),
            }),
        };
        let errors = shards.open_missing(&map).await;
        let state = lock(&shards.shared.state);
        for v in &shards.shared.vital {
            let up = map
                .primary_of(v)
                .is_some_and(|a| state.links.contains_key(a));
            if !up {
                return Err(format!("the shard of {v} is down: {}", errors.join("; ")));
            }
        }
        drop(state);
        Ok((shards, end_rx))
    }

    /// Connects each primary of `map` that has no connection; returns the
    /// errors of those that could not be reached.
    async fn open_missing(&self, map: &ShardMap) -> Vec<String> {
        let missing: Vec<Addr> = {
            let state = lock(&self.shared.state);
            map.primaries()
                .iter()
                .filter(|a| !state.links.contains_key(*a))
                .cloned()
                .collect()
        };
        let opened = join_all(missing.into_iter().map(|addr| async move {
            let link = self.open(&addr).await;
            (addr, link)
        }))
        .await;
        let mut errors = Vec::new();
        let mut state = lock(&self.shared.state);
        for (addr, link) in opened {
            match link {
                Ok(link) => {
                    state.links.insert(addr, link);
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    async fn open(&self, (host, port): &Addr) -> Result<Link, String> {
        let redis: &Redis = &self.shared.redis;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let lost = Arc::new(AtomicBool::new(false));
        let handler = Handler {
            id,
            lost: lost.clone(),
            ..self.shared.handler.clone()
        };
        let client = redis.node_client(host, *port).map_err(|e| e.to_string())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None)
            .set_push_sender(
                move |info: PushInfo| -> Result<(), std::convert::Infallible> {
                    handler.push(info);
                    Ok(())
                },
            );
        match tokio::time::timeout(
            CONNECT_TIMEOUT,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(Ok(conn)) => Ok(Link { id, conn, lost }),
            Ok(Err(e)) => Err(format!("shard {host}:{port}: {e}")),
            Err(_) => Err(format!("shard {host}:{port}: connect timed out")),
        }
    }

    /// What the loss of connection `id` means. A shard that served only
    /// room channels is forgotten here (its channels fail to subscribe
    /// until [`Shards::repair`] connects its slots' primary).
    pub(super) fn lose(&self, id: u64) -> Lost {
        let mut state = lock(&self.shared.state);
        let Some(addr) = state
            .links
            .iter()
            .find(|(_, l)| l.id == id)
            .map(|(a, _)| a.clone())
        else {
            return Lost::Stale;
        };
        let map = &state.map;
        if self
            .shared
            .vital
            .iter()
            .any(|v| map.primary_of(v) == Some(&addr))
        {
            return Lost::Vital;
        }
        state.links.remove(&addr);
        Lost::Shard(addr)
    }

    /// Whether `channel`'s slot is served by the primary at `addr`.
    pub(super) fn serves(&self, addr: &Addr, channel: &str) -> bool {
        lock(&self.shared.state).map.primary_of(channel) == Some(addr)
    }

    /// Reads the shard map again and connects the primaries without a
    /// connection. `Ok(true)` once every primary is connected, `Ok(false)`
    /// to try again later; `Err` when this node's channel or the broadcast
    /// channel moved to another primary (everything must be made again).
    pub(super) async fn repair(&self) -> Result<bool, String> {
        let map = match tokio::time::timeout(OP_TIMEOUT, self.shared.redis.shard_map()).await {
            Ok(Ok(map)) if !map.primaries().is_empty() => map,
            Ok(Ok(_)) => return Ok(false),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "Could not read the shard map.");
                return Ok(false);
            }
            Err(_) => return Ok(false),
        };
        {
            let state = lock(&self.shared.state);
            for v in &self.shared.vital {
                if map.primary_of(v) != state.map.primary_of(v) {
                    return Err(format!("the slot of {v} moved to another primary"));
                }
            }
        }
        let errors = self.open_missing(&map).await;
        let mut state = lock(&self.shared.state);
        state.links.retain(|a, _| map.primaries().contains(a));
        state.map = map;
        if !errors.is_empty() {
            tracing::debug!(errors = %errors.join("; "), "Some shards are still down.");
        }
        Ok(errors.is_empty())
    }

    /// Sends `command channel` for each channel to the primary of its slot,
    /// all at once, and waits for every answer. Returns the channels it
    /// could not send (their shard has no connection, or the round trip
    /// failed: that connection is reported lost).
    async fn each(&self, command: &str, channels: &[String]) -> Vec<String> {
        let sent = join_all(channels.iter().map(|channel| async move {
            let link = {
                let state = lock(&self.shared.state);
                state
                    .map
                    .primary_of(channel)
                    .and_then(|a| state.links.get(a))
                    .map(|l| (l.id, l.conn.clone(), l.lost.clone()))
            };
            let Some((id, mut conn, lost)) = link else {
                return Some(channel.clone());
            };
            let mut cmd = redis::cmd(command);
            cmd.arg(channel);
            let failed =
                match tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<Value>(&mut conn)).await {
                    Ok(Ok(_)) => return None,
                    Ok(Err(e)) => format!("{command} {channel}: {e}"),
                    Err(_) => format!("{command} {channel} timed out"),
                };
            report(&self.shared.handler.ended, &lost, id, failed);
            Some(channel.clone())
        }))
        .await;
        sent.into_iter().flatten().collect()
    }

    /// `SSUBSCRIBE`s each channel on its shard; returns those not subscribed.
    pub(super) async fn subscribe(&self, channels: &[String]) -> Vec<String> {
        self.each("SSUBSCRIBE", channels).await
    }

    /// `SUNSUBSCRIBE`s each channel on its shard (one on a lost shard is
    /// gone with its connection).
    pub(super) async fn unsubscribe(&self, channels: &[String]) {
        lock(&self.shared.handler.leaving).extend(channels.iter().cloned());
        let failed = self.each("SUNSUBSCRIBE", channels).await;
        let mut leaving = lock(&self.shared.handler.leaving);
        for c in failed {
            leaving.remove(&c);
        }
    }

    /// Pings every shard connection; a failed ping reports it lost.
    pub(super) async fn ping(&self) {
        let links: Vec<_> = lock(&self.shared.state)
            .links
            .values()
            .map(|l| (l.id, l.conn.clone(), l.lost.clone()))
            .collect();
        join_all(links.into_iter().map(|(id, mut c, lost)| async move {
            let failed = match tokio::time::timeout(
                OP_TIMEOUT,
                redis::cmd("PING").query_async::<Value>(&mut c),
            )
            .await
            {
                Ok(Ok(_)) => return,
                Ok(Err(e)) => format!("ping failed: {e}"),
                Err(_) => "ping timed out".to_owned(),
            };
            report(&self.shared.handler.ended, &lost, id, failed);
        }))
        .await;
    }
}

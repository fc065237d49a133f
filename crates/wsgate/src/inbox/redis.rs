//! Inboxes in Redis (contract 5.2): per user a list `{p}:inbox:{user}` of
//! `"SEQ ID"` (the order), a hash `{p}:inbox-msgs:{user}` id →
//! `sender|msgpack` (the messages) and a hash `{p}:inbox-meta:{user}` (bytes,
//! per-sender counts, last sequence), all in the user's slot. The scripts,
//! with the cost of each, are in [`crate::redis::scripts::inbox`]: a store
//! checks every limit and the id atomically, an ack is O(1) per id, a page
//! reads at most [`PAGE_MESSAGES`] entries.
//!
//! Connections: stores and acks go on the shared command connection (or the
//! replica-confirmed one with `--redis-wait-replicas`); pages and
//! redelivery reads go on the bulk connection ([`Redis::bulk_conn`]), so a
//! large reply never queues heartbeats, registry updates or publishes.
//!
//! Memory headroom (`--redis-memory-reserve`): a watcher task reads `INFO
//! memory` every [`MEMORY_POLL`] and keeps the headroom, `maxmemory × (1 −
//! reserve) − used_memory`; each store takes its estimated cost
//! ([`store_cost`]) from it until the next reading, and a store that does
//! not fit is refused with `unavailable` (counted as `redis_memory`) before
//! it reaches Redis. So a burst between two readings cannot run into the
//! reserve either, and the space left is there for heartbeats, the registry
//! and presence. With `maxmemory 0` Redis has no limit and nothing is
//! refused; before the first reading nothing is refused either.
//!
//! Expiry: each inbox's expiry (Redis time) is `{p}:inbox-expiry:{user}`, in
//! the user's slot, renewed by every store; reads treat an expired inbox as
//! empty and count its messages. A sweeper on every node deletes expired
//! inboxes and counts them: it finds candidates in the global index
//! `{p}:inbox-expiries` (user → expiry), which every store updates as a
//! separate command sent together with the store (one round trip), and asks
//! each inbox's own slot whether it is really due (a store may have renewed
//! it) before deleting; only one node wins each delete, so nothing is counted
//! twice. Every inbox key also carries a Redis TTL an hour past the expiry, a
//! safety net if no node runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::{AsyncCommands, Value};
use tracing::{debug, info, warn};
use wsgate_protocol::MessageFrame;

use super::{
    decode_entry, entry, Acked, Inbox, InboxError, InboxLimits, Page, Refusal, Sender, Stored,
    PAGE_BYTES, PAGE_MESSAGES,
};
use crate::config::Config;
use crate::metrics::{BrokerOp, Metrics};
use crate::redis::{Conn, Redis, RedisError, OP_TIMEOUT};

/// Redis TTL margin past the inbox expiry.
const SAFETY_MS: u64 = 3_600_000;
/// Inboxes looked at per sweep step.
const SWEEP_BATCH: u64 = 100;
/// How often the memory watcher reads `INFO memory`.
pub const MEMORY_POLL: Duration = Duration::from_millis(250);

/// What a stored entry of `len` bytes is taken to cost Redis: the entry in
/// the hash, its id in the list, their per-element overhead. An estimate on
/// the high side; the next `INFO memory` reading replaces it with the truth.
pub fn store_cost(len: usize) -> u64 {
    len as u64 * 2 + 256
}

/// Inboxes in Redis.
pub struct ListInbox {
    redis: Arc<Redis>,
    metrics: Arc<Metrics>,
    limits: InboxLimits,
    /// `--redis-wait-replicas` and `--redis-wait-timeout`.
    wait: Option<(usize, Duration)>,
    /// `--redis-memory-reserve`, a fraction of `maxmemory`.
    reserve: f64,
    /// Bytes stores may still take before Redis reaches the reserve: set by
    /// the memory watcher, lowered by each store (`u64::MAX` = no limit known).
    headroom: Arc<AtomicU64>,
}

fn entries(value: Option<&Value>) -> Vec<&[u8]> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(bulk).collect(),
        _ => Vec::new(),
    }
}

fn bulk(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b.as_slice()),
        _ => None,
    }
}

fn int(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

impl ListInbox {
    pub fn new(redis: Arc<Redis>, metrics: Arc<Metrics>, config: &Config) -> ListInbox {
        ListInbox {
            redis,
            metrics,
            limits: InboxLimits::from_config(config),
            wait: (config.redis_wait_replicas > 0)
                .then_some((config.redis_wait_replicas, config.redis_wait_timeout)),
            reserve: config.redis_memory_reserve,
            headroom: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    /// With `--redis-wait-replicas N`: `WAIT N` on the connection that made
    /// the store (in Redis Cluster: to the primary of `key`'s slot, on the
    /// same connection), so the store is on N replicas before the sender's `ok`.
    async fn confirm(&self, conn: &mut Conn, key: &str) -> Result<(), RedisError> {
        let Some((wanted, timeout)) = self.wait else {
            return Ok(());
        };
        let acked: usize = self
            .redis
            .timed_for(
                timeout + OP_TIMEOUT,
                conn.query_at(
                    key,
                    redis::cmd("WAIT")
                        .arg(wanted)
                        .arg(timeout.as_millis() as u64),
                ),
            )
            .await?;
        if acked < wanted {
            return Err(RedisError::Replicas { acked, wanted });
        }
        Ok(())
    }

    fn decode(&self, raw: &[u8]) -> Option<MessageFrame> {
        let m = decode_entry(raw);
        if m.is_none() {
            self.metrics.broker_error(BrokerOp::Decode);
        }
        m
    }
}

#[async_trait]
impl Inbox for ListInbox {
    async fn store(
        &self,
        user: &str,
        sender: Sender<'_>,
        message: &MessageFrame,
    ) -> Result<Stored, InboxError> {
        let value = entry(sender, message)?;
        let cost = store_cost(value.len());
        let fits = self
            .headroom
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                (h == u64::MAX).then_some(h).or_else(|| h.checked_sub(cost))
            });
        if fits.is_err() {
            return Err(InboxError::RedisMemory);
        }
        let r = &self.redis;
        let keys = r.keys();
        let limits = &self.limits;
        let ttl_ms = limits.ttl.as_millis() as u64;
        if let (Some((wanted, _)), Some(known)) = (self.wait, r.known_replicas()) {
            if known < wanted {
                return Err(RedisError::Replicas {
                    acked: known,
                    wanted,
                }
                .into());
            }
        }
        // Stores that wait for replicas have a connection of their own:
        // `WAIT` blocks the connection it runs on.
        let mut conn = if self.wait.is_some() {
            r.durable_conn().await?
        } else {
            r.conn().await?
        };
        let mut index_conn = r.conn().await?;
        // The index entry goes out first, in the same round trip. Its time is
        // this node's estimate; the sweeper checks the inbox's own expiry
        // before deleting, so a skewed clock only moves when it looks.
        let index_at = crate::clock::now_ms() + ttl_ms;
        let index_key = keys.inbox_expiries();
        let index = r.timed(index_conn.zadd::<_, _, _, ()>(&index_key, user, index_at));
        let mut invocation = r.scripts().inbox_store.prepare_invoke();
        for k in keys.inbox_keys(user) {
            invocation.key(k);
        }
        let share = if sender.has_share() {
            limits.max_per_sender
        } else {
            0
        };
        invocation
            .arg(&message.id)
            .arg(sender.key())
            .arg(value)
            .arg(limits.max)
            .arg(limits.max_bytes)
            .arg(share)
            .arg(limits.overflow.as_str())
            .arg(ttl_ms)
            .arg(SAFETY_MS);
        let store = r.timed(invocation.invoke_async::<(u64, u64, u64)>(&mut conn));
        let (indexed, stored) = tokio::join!(index, store);
        let (status, trimmed, expired) = stored?;
        self.metrics.inbox_dropped_expired.inc_by(expired);
        if let Err(e) = indexed {
            // Only the sweeper's count of this inbox's expiry may be lost (the
            // Redis TTL still removes it, and a read counts it).
            self.metrics.broker_error(BrokerOp::Inbox);
            debug!(error = %e, "Could not index an inbox expiry.");
        }
        let outcome = match status {
            0 => Stored::New { trimmed },
            1 => Stored::Duplicate,
            2 => return Err(InboxError::IdTaken),
            3 => return Err(InboxError::Refused(Refusal::Full)),
            4 => return Err(InboxError::Refused(Refusal::SenderShare)),
            5 => return Err(InboxError::Refused(Refusal::Bytes)),
            _ => return Err(RedisError::Reply("inbox store status").into()),
        };
        // A duplicate waits too: its first store may not have reached the
        // replicas (that is why the sender retried).
        match self.confirm(&mut conn, &keys.inbox(user)).await {
            Ok(()) => Ok(outcome),
            Err(e) if matches!(outcome, Stored::New { .. }) => Err(InboxError::Unconfirmed(e)),
            Err(e) => Err(e.into()),
        }
    }

    async fn page(&self, user: &str, after: u64) -> Result<Page, InboxError> {
        let r = &self.redis;
        let mut conn = r.bulk_conn().await?;
        let mut invocation = r.scripts().inbox_page.prepare_invoke();
        for k in r.keys().inbox_keys(user) {
            invocation.key(k);
        }
        invocation.arg(after).arg(PAGE_MESSAGES).arg(PAGE_BYTES);
        let value: Value = r.timed(invocation.invoke_async(&mut conn)).await?;
        let Value::Array(parts) = value else {
            return Err(RedisError::Reply("inbox page").into());
        };
        let expired = int(parts.first()).unwrap_or(0);
        self.metrics.inbox_dropped_expired.inc_by(expired);
        let last = int(parts.get(1)).ok_or(RedisError::Reply("inbox page cursor"))?;
        let more = int(parts.get(2)) == Some(1);
        let messages = parts
            .iter()
            .skip(3)
            .filter_map(bulk)
            .filter_map(|e| self.decode(e))
            .collect();
        Ok(Page {
            messages,
            next: more.then_some(last),
        })
    }

    async fn get(&self, user: &str, ids: &[String]) -> Result<Vec<MessageFrame>, InboxError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let r = &self.redis;
        let mut conn = r.bulk_conn().await?;
        // O(K) for K ids. An inbox past its expiry but not swept yet may
        // still answer: the redelivery of a message its client has not
        // acked is harmless (the replay drops expired inboxes).
        let found: Vec<Option<Vec<u8>>> = r
            .timed(
                redis::cmd("HMGET")
                    .arg(r.keys().inbox_msgs(user))
                    .arg(ids)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(found
            .iter()
            .flatten()
            .filter_map(|e| self.decode(e))
            .collect())
    }

    async fn ack(&self, user: &str, ids: &[String]) -> Result<Vec<Acked>, InboxError> {
        let r = &self.redis;
        let mut conn = r.conn().await?;
        let mut invocation = r.scripts().inbox_ack.prepare_invoke();
        for k in r.keys().inbox_keys(user) {
            invocation.key(k);
        }
        for id in ids {
            invocation.arg(id);
        }
        let removed: Value = r.timed(invocation.invoke_async(&mut conn)).await?;
        Ok(entries(Some(&removed))
            .into_iter()
            .filter_map(|e| {
                let e = std::str::from_utf8(e).ok()?;
                let (id, from) = e.split_once('|')?;
                Some(Acked {
                    id: id.to_owned(),
                    from: from.to_owned(),
                })
            })
            .collect())
    }

    fn start(&self) {
        let redis = Arc::downgrade(&self.redis);
        let metrics = self.metrics.clone();
        let period =
            (self.limits.ttl / 4).clamp(Duration::from_millis(200), Duration::from_secs(10));
        tokio::spawn(sweeper(redis.clone(), metrics.clone(), period));
        tokio::spawn(memory_watch(
            redis,
            metrics,
            self.reserve,
            self.headroom.clone(),
        ));
    }
}

/// Deletes expired inboxes, counting their messages, until the node is gone.
async fn sweeper(redis: Weak<Redis>, metrics: Arc<Metrics>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(redis) = redis.upgrade() else {
            return;
        };
        match sweep(&redis).await {
            Ok(n) => metrics.inbox_dropped_expired.inc_by(n),
            Err(e) => {
                metrics.broker_error(BrokerOp::Inbox);
                debug!(error = %e, "Inbox sweep failed.");
            }
        }
    }
}

/// One sweep step: up to [`SWEEP_BATCH`] due inboxes. Returns the messages
/// dropped. Each step touches one slot: the index, then each inbox, then the
/// index again (only if no store re-indexed the user meanwhile).
async fn sweep(redis: &Redis) -> Result<u64, RedisError> {
    let keys = redis.keys();
    let scripts = redis.scripts();
    let mut conn = redis.conn().await?;
    let due: Vec<(String, u64)> = redis
        .timed(
            scripts
                .inbox_due
                .key(keys.inbox_expiries())
                .arg(SWEEP_BATCH)
                .invoke_async(&mut conn),
        )
        .await?;
    let mut dropped = 0;
    for (user, score) in due {
        let mut expire = scripts.inbox_expire.prepare_invoke();
        for k in keys.inbox_keys(&user) {
            expire.key(k);
        }
        let (n, renewed): (u64, u64) = redis.timed(expire.invoke_async(&mut conn)).await?;
        dropped += n;
        let _: u64 = redis
            .timed(
                scripts
                    .inbox_reindex
                    .key(keys.inbox_expiries())
                    .arg(&user)
                    .arg(score)
                    .arg(renewed)
                    .invoke_async(&mut conn),
            )
            .await?;
    }
    Ok(dropped)
}

/// The bytes stores may take before `used` reaches the reserve of `max`:
/// `u64::MAX` when `max` is 0 (no limit), 0 inside the reserve.
pub fn headroom(used: u64, max: u64, reserve: f64) -> u64 {
    if max == 0 {
        return u64::MAX;
    }
    let limit = (max as f64 * (1.0 - reserve)) as u64;
    limit.saturating_sub(used)
}

/// The text(s) of an `INFO` answer: one from a single Redis, one per
/// primary (a map address → text) from a Redis Cluster.
fn info_texts(v: &Value) -> Vec<String> {
    match v {
        Value::BulkString(b) => vec![String::from_utf8_lossy(b).into_owned()],
        Value::SimpleString(t) => vec![t.clone()],
        Value::VerbatimString { text, .. } => vec![text.clone()],
        Value::Map(entries) => entries.iter().flat_map(|(_, v)| info_texts(v)).collect(),
        Value::Array(items) => items.iter().flat_map(info_texts).collect(),
        _ => Vec::new(),
    }
}

/// `used_memory` and `maxmemory` from an `INFO memory` answer.
fn parse_memory(info: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((field("used_memory")?, field("maxmemory")?))
}

/// Reads `INFO memory` every [`MEMORY_POLL`] and sets the headroom. A
/// failed read keeps the last value (the stores themselves then fail
/// honestly if Redis is gone).
async fn memory_watch(
    redis: Weak<Redis>,
    metrics: Arc<Metrics>,
    reserve: f64,
    room: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(MEMORY_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refusing = false;
    loop {
        tick.tick().await;
        let Some(redis) = redis.upgrade() else {
            return;
        };
        let info: Result<Value, RedisError> = async {
            let mut conn = redis.conn().await?;
            redis
                .timed(redis::cmd("INFO").arg("memory").query_async(&mut conn))
                .await
        }
        .await;
        // One answer per primary in Redis Cluster: the fullest shard decides
        // (an inbox's shard is not known here; being strict is the safe side).
        let answers: Vec<(u64, u64)> = match &info {
            Ok(v) => info_texts(v)
                .iter()
                .filter_map(|t| parse_memory(t))
                .collect(),
            Err(_) => Vec::new(),
        };
        let Some(h) = answers
            .iter()
            .map(|(used, max)| headroom(*used, *max, reserve))
            .min()
        else {
            metrics.broker_error(BrokerOp::Inbox);
            continue;
        };
        let (used, max) = answers
            .iter()
            .copied()
            .min_by_key(|(used, max)| headroom(*used, *max, reserve))
            .unwrap_or_default();
        room.store(h, Ordering::Relaxed);
        let now_refusing = h < store_cost(PAGE_BYTES);
        if now_refusing != refusing {
            refusing = now_refusing;
            if refusing {
                warn!(
                    used_memory = used,
                    maxmemory = max,
                    "Redis memory reached --redis-memory-reserve: direct messages are refused (unavailable) until it frees up."
                );
            } else {
                info!(
                    used_memory = used,
                    maxmemory = max,
                    "Redis memory is below the reserve again: direct messages are stored."
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{headroom, parse_memory};

    #[test]
    fn reads_info_memory() {
        let info = "# Memory\r\nused_memory:1000\r\nused_memory_human:1000B\r\nmaxmemory:2000\r\nmaxmemory_human:2K\r\n";
        assert_eq!(parse_memory(info), Some((1000, 2000)));
        assert_eq!(parse_memory("used_memory:5\r\n"), None);
    }

    #[test]
    fn the_reserve_is_a_share_of_maxmemory() {
        assert_eq!(headroom(80, 100, 0.1), 10);
        assert_eq!(headroom(95, 100, 0.1), 0);
        assert_eq!(
            headroom(u64::MAX, 0, 0.1),
            u64::MAX,
            "maxmemory 0: no limit"
        );
    }
}

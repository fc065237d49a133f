//! Inboxes in Redis lists: `{p}:inbox:{user}` (contract 5.2).
//!
//! Entries are `id|msgpack(message)`, appended with `RPUSH` and trimmed to
//! `inbox-max` in the same script, so per-sender order is the list order.
//! An ack removes entries by id (a script scanning the list, stopping when
//! every id is found). The scripts are in [`crate::redis::scripts::inbox`].
//!
//! Expiry: each inbox's expiry (Redis time) is `{p}:inbox-expiry:{user}`, in
//! the user's slot, renewed by every store; reads treat an expired inbox as
//! empty and count its messages. A sweeper on every node deletes expired
//! inboxes and counts them: it finds candidates in the global index
//! `{p}:inbox-expiries` (user → expiry), which every store updates as a
//! separate command sent together with the store (one round trip), and asks
//! each inbox's own slot whether it is really due (a store may have renewed
//! it) before deleting; only one node wins each delete, so nothing is counted
//! twice. Both inbox keys also carry a Redis TTL an hour past the expiry, a
//! safety net if no node runs.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::{AsyncCommands, Value};
use tracing::debug;
use wsgate_protocol::MessageFrame;

use super::{Acked, Inbox, InboxError};
use crate::config::Config;
use crate::metrics::{BrokerOp, Metrics};
use crate::redis::{Redis, RedisError, OP_TIMEOUT};

/// Redis TTL margin past the inbox expiry.
const SAFETY_MS: u64 = 3_600_000;
/// Inboxes looked at per sweep step.
const SWEEP_BATCH: u64 = 100;

/// Inboxes as Redis lists.
pub struct ListInbox {
    redis: Arc<Redis>,
    metrics: Arc<Metrics>,
    max: usize,
    ttl: Duration,
    /// `--redis-wait-replicas` and `--redis-wait-timeout`.
    wait: Option<(usize, Duration)>,
}

fn encode_entry(message: &MessageFrame) -> Result<Vec<u8>, InboxError> {
    let body =
        rmp_serde::to_vec_named(message).map_err(|e| InboxError::Unavailable(e.to_string()))?;
    let mut entry = Vec::with_capacity(message.id.len() + 1 + body.len());
    entry.extend_from_slice(message.id.as_bytes());
    entry.push(b'|');
    entry.extend_from_slice(&body);
    Ok(entry)
}

fn decode_entry(entry: &[u8]) -> Option<MessageFrame> {
    let bar = entry.iter().position(|b| *b == b'|')?;
    rmp_serde::from_slice(&entry[bar + 1..]).ok()
}

fn entries(value: &Value) -> Vec<&[u8]> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| match v {
                Value::BulkString(b) => Some(b.as_slice()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl ListInbox {
    pub fn new(redis: Arc<Redis>, metrics: Arc<Metrics>, config: &Config) -> ListInbox {
        ListInbox {
            redis,
            metrics,
            max: config.inbox_max,
            ttl: config.inbox_ttl,
            wait: (config.redis_wait_replicas > 0)
                .then_some((config.redis_wait_replicas, config.redis_wait_timeout)),
        }
    }

    /// With `--redis-wait-replicas N`: `WAIT N` on the connection that made
    /// the store, so the store is on N replicas before the sender's `ok`.
    /// Refused at once while the primary is known to have fewer than N.
    async fn confirm(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
    ) -> Result<(), RedisError> {
        let Some((wanted, timeout)) = self.wait else {
            return Ok(());
        };
        let acked: usize = self
            .redis
            .timed_for(
                timeout + OP_TIMEOUT,
                redis::cmd("WAIT")
                    .arg(wanted)
                    .arg(timeout.as_millis() as u64)
                    .query_async(conn),
            )
            .await?;
        if acked < wanted {
            return Err(RedisError::Replicas { acked, wanted });
        }
        Ok(())
    }
}

#[async_trait]
impl Inbox for ListInbox {
    async fn store(&self, user: &str, message: &MessageFrame) -> Result<u64, InboxError> {
        let r = &self.redis;
        let keys = r.keys();
        let mut message = message.clone();
        message.replay = false;
        let entry = encode_entry(&message)?;
        let ttl_ms = self.ttl.as_millis() as u64;
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
        // The index entry goes out first on the same connection, in the same
        // round trip. Its time is this node's estimate; the sweeper checks
        // the inbox's own expiry before deleting, so a skewed clock only
        // moves when it looks.
        let index_at = crate::clock::now_ms() + ttl_ms;
        let index_key = keys.inbox_expiries();
        let index = r.timed(index_conn.zadd::<_, _, _, ()>(&index_key, user, index_at));
        let mut invocation = r.scripts().inbox_store.key(keys.inbox(user));
        invocation
            .key(keys.inbox_expiry(user))
            .arg(entry)
            .arg(self.max)
            .arg(ttl_ms)
            .arg(SAFETY_MS);
        let store = r.timed(invocation.invoke_async::<(u64, u64, u64)>(&mut conn));
        let (indexed, stored) = tokio::join!(index, store);
        let (trimmed, expired, _expires) = stored?;
        self.confirm(&mut conn).await?;
        if let Err(e) = indexed {
            // The message is stored; only the sweeper's count of its expiry
            // may be lost (the Redis TTL still removes it, and a read counts it).
            self.metrics.broker_error(BrokerOp::Inbox);
            debug!(error = %e, "Could not index an inbox expiry.");
        }
        self.metrics.inbox_dropped_expired.inc_by(expired);
        Ok(trimmed)
    }

    async fn pending(&self, user: &str) -> Result<Vec<MessageFrame>, InboxError> {
        let r = &self.redis;
        let mut conn = r.conn().await?;
        let value: Value = r
            .timed(
                r.scripts()
                    .inbox_pending
                    .key(r.keys().inbox(user))
                    .key(r.keys().inbox_expiry(user))
                    .invoke_async(&mut conn),
            )
            .await?;
        let Value::Array(parts) = value else {
            return Err(RedisError::Reply("inbox read").into());
        };
        if let Some(Value::Int(expired)) = parts.first() {
            self.metrics
                .inbox_dropped_expired
                .inc_by((*expired).max(0) as u64);
        }
        let list = parts.get(1).map(entries).unwrap_or_default();
        Ok(list
            .into_iter()
            .filter_map(|e| {
                let m = decode_entry(e);
                if m.is_none() {
                    self.metrics.broker_error(BrokerOp::Decode);
                }
                m
            })
            .collect())
    }

    async fn ack(&self, user: &str, ids: &[String]) -> Result<Vec<Acked>, InboxError> {
        let r = &self.redis;
        let mut conn = r.conn().await?;
        let mut invocation = r.scripts().inbox_ack.key(r.keys().inbox(user));
        invocation.key(r.keys().inbox_expiry(user));
        for id in ids {
            invocation.arg(id);
        }
        let removed: Value = r.timed(invocation.invoke_async(&mut conn)).await?;
        Ok(entries(&removed)
            .into_iter()
            .filter_map(decode_entry)
            .map(|m| Acked {
                id: m.id,
                from: m.from,
            })
            .collect())
    }

    fn start(&self) {
        let redis = Arc::downgrade(&self.redis);
        let metrics = self.metrics.clone();
        let period = (self.ttl / 4).clamp(Duration::from_millis(200), Duration::from_secs(10));
        tokio::spawn(sweeper(redis, metrics, period));
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
        let (n, renewed): (u64, u64) = redis
            .timed(
                scripts
                    .inbox_expire
                    .key(keys.inbox(&user))
                    .key(keys.inbox_expiry(&user))
                    .invoke_async(&mut conn),
            )
            .await?;
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

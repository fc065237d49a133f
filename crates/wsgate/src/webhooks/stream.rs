//! Cluster mode, the reading side: the stream `{p}:events`, read through
//! one consumer group (`wsgate`) in which every node is a consumer named by
//! its node id.
//!
//! One node at a time reads: the holder of the reader lease
//! `{p}:webhook-reader` (taken with `SET NX`-like semantics, renewed at every
//! read and every third of its length by [`StreamQueue::keep_lease`],
//! lasting `node-ttl`). One reader keeps the order of the stream, so
//! each user's (and room's) events are POSTed in the order they were
//! decided; the others are stand-by consumers of the same group. A node
//! that takes the lease first claims every pending entry of the group
//! (`XAUTOCLAIM ... 0`, in pages): the entries a dead reader read but did
//! not acknowledge, its held `user.offline` events included, are delivered
//! by the new reader, within `node-ttl` (the lease) plus a read, well
//! inside the contract's `node-ttl` + 10 s. Then it reads new entries with
//! `XREADGROUP ... BLOCK` on a connection of its own.
//!
//! Acknowledged entries are trimmed: the reader trims the stream below the
//! group's oldest pending entry (or, with none pending, its last delivered
//! one) with `XTRIM MINID ~`, once a second; the writers cap it at
//! [`super::outbox::STREAM_MAX`] entries besides.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use tokio::time::Instant;
use tracing::{debug, info};

use super::outbox::MARKER_TTL;
use super::queue::{Backlog, Entry, EventQueue, QueueError};
use crate::redis::{Conn, Redis, RedisError, OP_TIMEOUT};

/// The consumer group every node reads through.
pub const GROUP: &str = "wsgate";

#[derive(Default)]
struct ReadState {
    conn: Option<Conn>,
    holder: bool,
    /// `XAUTOCLAIM` cursor while claiming after taking the lease.
    claiming: Option<String>,
    group_ready: bool,
}

/// The reading side of `{p}:events`.
pub struct StreamQueue {
    redis: Arc<Redis>,
    node: String,
    lease: Duration,
    state: tokio::sync::Mutex<ReadState>,
    holder: AtomicBool,
    trimmed_at: Mutex<Option<Instant>>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Stream entries (`[id, [field, value, ...]]`...) as events; an entry
/// without an `event` field is returned with empty JSON (the worker counts
/// and acknowledges it).
fn entries(v: &Value) -> Vec<Entry> {
    let Value::Array(list) = v else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let Value::Array(parts) = e else { return None };
            let key = text(parts.first()?)?;
            let json = match parts.get(1) {
                Some(Value::Array(fields)) => fields
                    .chunks(2)
                    .find(|kv| kv.first().and_then(text).as_deref() == Some("event"))
                    .and_then(|kv| kv.get(1).and_then(text))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            Some(Entry { key, json })
        })
        .collect()
}

/// The milliseconds part of a stream id.
fn id_ms(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

impl StreamQueue {
    pub fn new(redis: Arc<Redis>, node: &str, lease: Duration) -> StreamQueue {
        StreamQueue {
            redis,
            node: node.to_owned(),
            lease,
            state: tokio::sync::Mutex::default(),
            holder: AtomicBool::new(false),
            trimmed_at: Mutex::new(None),
        }
    }

    /// Whether this node reads the stream now.
    pub fn is_reader(&self) -> bool {
        self.holder.load(Ordering::Acquire)
    }

    async fn ensure_group(&self, conn: &mut Conn) -> Result<(), RedisError> {
        let r = &self.redis;
        // From the stream's start: events queued before the first reader
        // existed are delivered too.
        let made: Result<(), RedisError> = r
            .timed(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(r.keys().events())
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async(conn),
            )
            .await;
        match made {
            Ok(()) => Ok(()),
            Err(RedisError::Command(e)) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Renews the lease every third of its length while this node holds it,
    /// also while the worker is busy retrying a batch (reads renew it too),
    /// so a reader that is alive keeps it.
    pub async fn keep_lease(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval((self.lease / 3).max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !self.is_reader() {
                continue;
            }
            match self.lease_step().await {
                Ok(true) => {}
                Ok(false) => {
                    info!("Another node reads the webhook events now.");
                    self.holder.store(false, Ordering::Release);
                }
                Err(e) => debug!(error = %e, "Webhook reader lease not renewed."),
            }
        }
    }

    /// Takes or renews the lease; true while this node holds it.
    async fn lease_step(&self) -> Result<bool, RedisError> {
        let r = &self.redis;
        let mut conn = r.conn().await?;
        let held: i64 = r
            .timed(
                r.scripts()
                    .webhook_reader_lease
                    .key(r.keys().webhook_reader())
                    .arg(&self.node)
                    .arg(self.lease.as_millis() as u64)
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(held == 1)
    }

    /// Gives the lease up (a clean exit): another node reads at once.
    pub async fn release(&self) -> Result<(), RedisError> {
        let r = &self.redis;
        let mut conn = r.conn().await?;
        r.timed(
            r.scripts()
                .webhook_reader_release
                .key(r.keys().webhook_reader())
                .arg(&self.node)
                .invoke_async::<i64>(&mut conn),
        )
        .await?;
        self.holder.store(false, Ordering::Release);
        Ok(())
    }

    async fn read_inner(
        &self,
        state: &mut ReadState,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Entry>, RedisError> {
        let r = &self.redis;
        let keys = r.keys();
        let mut shared = r.conn().await?;
        if !self.lease_step().await? {
            if state.holder {
                info!("Another node reads the webhook events now.");
            }
            state.holder = false;
            self.holder.store(false, Ordering::Release);
            // Stand by; the lease is asked again after the wait.
            tokio::time::sleep(wait.max(Duration::from_millis(200))).await;
            return Ok(Vec::new());
        }
        if !state.holder || !self.is_reader() {
            info!("This node reads the webhook events now.");
            state.holder = true;
            state.claiming = Some("0-0".into());
            self.holder.store(true, Ordering::Release);
        }
        if !state.group_ready {
            self.ensure_group(&mut shared).await?;
            state.group_ready = true;
        }
        if let Some(cursor) = state.claiming.clone() {
            let reply: Value = r
                .timed(
                    redis::cmd("XAUTOCLAIM")
                        .arg(keys.events())
                        .arg(GROUP)
                        .arg(&self.node)
                        .arg(0)
                        .arg(&cursor)
                        .arg("COUNT")
                        .arg(max)
                        .query_async(&mut shared),
                )
                .await?;
            let Value::Array(parts) = reply else {
                return Err(RedisError::Reply("XAUTOCLAIM"));
            };
            let next = parts.first().and_then(text).unwrap_or_else(|| "0-0".into());
            state.claiming = (next != "0-0").then_some(next);
            let claimed = parts.get(1).map(entries).unwrap_or_default();
            if !claimed.is_empty() {
                debug!(entries = claimed.len(), "Claimed pending webhook events.");
                return Ok(claimed);
            }
            if state.claiming.is_some() {
                return Ok(Vec::new());
            }
        }
        let mut conn = match state.conn.clone() {
            Some(c) => c,
            None => {
                let c = r.dedicated_conn(&r.keys().events()).await?;
                state.conn = Some(c.clone());
                c
            }
        };
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.node)
            .arg("COUNT")
            .arg(max);
        if !wait.is_zero() {
            cmd.arg("BLOCK").arg(wait.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(keys.events()).arg(">");
        let reply = tokio::time::timeout(wait + OP_TIMEOUT, cmd.query_async::<Value>(&mut conn))
            .await
            .map_err(|_| RedisError::Timeout(wait + OP_TIMEOUT));
        let reply = match reply {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                state.conn = None;
                if e.code() == Some("NOGROUP") {
                    // The stream is gone (a Redis restart without
                    // persistence): made again at the next read.
                    state.group_ready = false;
                }
                return Err(RedisError::Command(e));
            }
            Err(e) => {
                state.conn = None;
                return Err(e);
            }
        };
        // RESP2: `[[name, entries]]`; RESP3 (cluster mode's connection to
        // the stream's primary): `{name: entries}`.
        Ok(match reply {
            Value::Array(streams) => streams
                .first()
                .and_then(|s| match s {
                    Value::Array(kv) => kv.get(1).map(entries),
                    _ => None,
                })
                .unwrap_or_default(),
            Value::Map(streams) => streams.first().map(|(_, e)| entries(e)).unwrap_or_default(),
            _ => Vec::new(),
        })
    }

    /// Trims what the group has acknowledged (`XTRIM MINID ~`). O(log N +
    /// trimmed), at most once a second.
    async fn trim(&self, conn: &mut Conn) -> Result<(), RedisError> {
        {
            let mut at = self
                .trimmed_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if at.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return Ok(());
            }
            *at = Some(Instant::now());
        }
        let r = &self.redis;
        let stream = r.keys().events();
        let summary: Value = r
            .timed(
                redis::cmd("XPENDING")
                    .arg(&stream)
                    .arg(GROUP)
                    .query_async(conn),
            )
            .await?;
        let oldest_pending = match &summary {
            Value::Array(p) if p.first().is_some_and(|n| *n != Value::Int(0)) => {
                p.get(1).and_then(text)
            }
            _ => None,
        };
        let floor = match oldest_pending {
            Some(id) => Some(id),
            None => self.group_info(conn).await?.map(|(last, _)| last),
        };
        if let Some(floor) = floor.filter(|f| f != "0-0") {
            r.timed(
                redis::cmd("XTRIM")
                    .arg(&stream)
                    .arg("MINID")
                    .arg("~")
                    .arg(floor)
                    .query_async::<i64>(conn),
            )
            .await?;
        }
        Ok(())
    }

    /// The group's last delivered id and lag (entries not yet read).
    async fn group_info(
        &self,
        conn: &mut Conn,
    ) -> Result<Option<(String, Option<u64>)>, RedisError> {
        let r = &self.redis;
        let groups: Value = r
            .timed(
                redis::cmd("XINFO")
                    .arg("GROUPS")
                    .arg(r.keys().events())
                    .query_async(conn),
            )
            .await?;
        let Value::Array(groups) = groups else {
            return Ok(None);
        };
        for g in groups {
            let fields: Vec<(String, Value)> = match g {
                Value::Array(kv) => kv
                    .chunks(2)
                    .filter_map(|c| Some((text(c.first()?)?, c.get(1)?.clone())))
                    .collect(),
                Value::Map(kv) => kv
                    .into_iter()
                    .filter_map(|(k, v)| Some((text(&k)?, v)))
                    .collect(),
                _ => continue,
            };
            let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
            if get("name").and_then(text).as_deref() != Some(GROUP) {
                continue;
            }
            let last = get("last-delivered-id").and_then(text).unwrap_or_default();
            let lag = match get("lag") {
                Some(Value::Int(n)) => u64::try_from(*n).ok(),
                _ => None,
            };
            return Ok(Some((last, lag)));
        }
        Ok(None)
    }
}

#[async_trait]
impl EventQueue for StreamQueue {
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<Entry>, QueueError> {
        let mut state = self.state.lock().await;
        let read = self.read_inner(&mut state, max, wait).await;
        if read.is_err() {
            // Connection trouble: take the lease again before reading on.
            state.group_ready = false;
        }
        Ok(read?)
    }

    async fn ack(&self, keys: &[String]) -> Result<(), QueueError> {
        if keys.is_empty() {
            return Ok(());
        }
        let r = &self.redis;
        let mut conn = r.conn().await?;
        r.timed(
            redis::cmd("XACK")
                .arg(r.keys().events())
                .arg(GROUP)
                .arg(keys)
                .query_async::<i64>(&mut conn),
        )
        .await?;
        Ok(())
    }

    async fn offline_due(&self, user: &str, event_id: &str) -> Result<bool, QueueError> {
        let r = &self.redis;
        let keys = r.keys();
        let mut conn = r.conn().await?;
        let due: i64 = r
            .timed(
                r.scripts()
                    .webhook_offline_due
                    .key(keys.webhook_offline(user))
                    .key(keys.user(user))
                    .arg(event_id)
                    .arg(MARKER_TTL.as_millis() as u64)
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(due == 1)
    }

    async fn backlog(&self) -> Result<Backlog, QueueError> {
        if !self.is_reader() {
            return Ok(Backlog::default());
        }
        let r = &self.redis;
        let mut conn = r.conn().await?;
        self.trim(&mut conn).await?;
        let Some((last, lag)) = self.group_info(&mut conn).await? else {
            return Ok(Backlog::default());
        };
        let waiting = lag.unwrap_or(0);
        if waiting == 0 {
            return Ok(Backlog::default());
        }
        let next: Value = r
            .timed(
                redis::cmd("XRANGE")
                    .arg(r.keys().events())
                    .arg(format!("({last}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(&mut conn),
            )
            .await?;
        let oldest_ms = entries(&next).first().and_then(|e| id_ms(&e.key));
        Ok(Backlog { waiting, oldest_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::id_ms;

    #[test]
    fn stream_ids_carry_their_time() {
        assert_eq!(id_ms("1700000000123-4"), Some(1_700_000_000_123));
        assert_eq!(id_ms("x"), None);
    }
}

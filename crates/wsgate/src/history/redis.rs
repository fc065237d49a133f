//! Room history in Redis: per room a stream of its last `history-size`
//! messages and a hash with its epoch and last offset, both in the room's
//! slot, both expiring `history-ttl` after the room's last message.
//!
//! Keys (`{p}` is `--redis-prefix`): `{p}:history:{room}` (stream; entry id
//! `OFFSET-0`, field `m` = the message's bus envelope, MessagePack) and
//! `{p}:history-meta:{room}` (hash: `epoch`, `offset`). One script gives a
//! message its offset, appends it (`XADD ... MAXLEN history-size`) and
//! publishes it to the room's channel as a sequenced payload
//! (`#EPOCH:OFFSET:ENVELOPE`, see [`wsgate_protocol::bus`]), so offsets
//! follow publish order and every subscribed node, the publishing one
//! included, gets the room's messages in offset order. Reads are
//! `XRANGE` pages from an offset. A lost hash (expiry, a Redis restart
//! without persistence) means a lost history: the next script starts a new
//! epoch on an empty stream. The scripts are in
//! [`crate::redis::scripts::history`], the key names in [`crate::redis::keys`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use tracing::debug;
use wsgate_protocol::bus::{BusEvent, Envelope};
use wsgate_protocol::{MessageFrame, Position, ServerFrame};

use super::{new_epoch, History, HistoryError, Page, PAGE_MAX};
use crate::config::{Config, RedisMode};
use crate::metrics::{BrokerOp, Metrics};
use crate::redis::{Redis, RedisError};

/// Offsets above this are treated as this in reads: Lua numbers are
/// doubles, exact up to 2^53 (a room would need 285 years at a million
/// messages a second to get there).
const MAX_LUA_OFFSET: u64 = (1 << 53) - 1;

/// Room history in Redis streams.
pub struct StreamHistory {
    redis: Arc<Redis>,
    metrics: Arc<Metrics>,
    size: usize,
    ttl: Duration,
    /// `PUBLISH`, or `SPUBLISH` in Redis Cluster (room channels are sharded).
    publish: &'static str,
}

impl StreamHistory {
    /// Keeps `history-size` messages per room for `history-ttl`.
    pub fn new(redis: Arc<Redis>, metrics: Arc<Metrics>, config: &Config) -> StreamHistory {
        StreamHistory {
            redis,
            metrics,
            size: config.history_size,
            ttl: config.history_ttl,
            publish: match config.redis_mode {
                RedisMode::Cluster => "SPUBLISH",
                RedisMode::Single | RedisMode::Sentinel => "PUBLISH",
            },
        }
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
    }
}

fn reply_error(what: &'static str) -> HistoryError {
    HistoryError::Redis(RedisError::Reply(what))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => text(other)?.parse().ok(),
    }
}

/// One stream entry `[id, [field, value, ...]]` as a room message.
fn entry(v: &Value, epoch: &str) -> Option<MessageFrame> {
    let Value::Array(parts) = v else {
        return None;
    };
    let offset: u64 = text(parts.first()?)?.strip_suffix("-0")?.parse().ok()?;
    let Value::Array(fields) = parts.get(1)? else {
        return None;
    };
    let body = fields
        .chunks_exact(2)
        .find(|kv| text(&kv[0]).as_deref() == Some("m"))
        .and_then(|kv| match &kv[1] {
            Value::BulkString(b) => Some(b.as_slice()),
            _ => None,
        })?;
    let BusEvent::Frame {
        frame: ServerFrame::Message(mut message),
        ..
    } = Envelope::decode(body).ok()?.event
    else {
        return None;
    };
    message.replay = false;
    message.offset = Some(offset);
    message.epoch = Some(epoch.to_owned());
    Some(message)
}

#[async_trait]
impl History for StreamHistory {
    async fn publish(&self, room: &str, envelope: &Envelope) -> Result<Position, HistoryError> {
        let s = &self.redis;
        let keys = s.keys();
        let bytes = envelope.encode().map_err(HistoryError::Encode)?;
        let mut conn = s.conn().await?;
        let (epoch, offset): (String, u64) = s
            .timed(
                s.scripts()
                    .history_publish
                    .key(keys.history_meta(room))
                    .key(keys.history(room))
                    .key(keys.room_channel(room))
                    .arg(bytes)
                    .arg(new_epoch())
                    .arg(self.size)
                    .arg(self.ttl_ms())
                    .arg(self.publish)
                    .invoke_async(&mut conn),
            )
            .await?;
        self.metrics.broker_published.inc();
        Ok(Position { epoch, offset })
    }

    async fn read(&self, room: &str, after: u64, limit: usize) -> Result<Page, HistoryError> {
        let s = &self.redis;
        let keys = s.keys();
        let mut conn = s.conn().await?;
        let reply: Value = s
            .timed(
                s.scripts()
                    .history_read
                    .key(keys.history_meta(room))
                    .key(keys.history(room))
                    .arg(new_epoch())
                    .arg(self.ttl_ms())
                    .arg(after.min(MAX_LUA_OFFSET))
                    .arg(limit.min(PAGE_MAX))
                    .invoke_async(&mut conn),
            )
            .await?;
        let Value::Array(parts) = reply else {
            return Err(reply_error("not an array"));
        };
        let epoch = parts.first().and_then(text).ok_or(reply_error("epoch"))?;
        let offset = parts.get(1).and_then(int).ok_or(reply_error("offset"))?;
        let entries = match parts.get(2) {
            Some(Value::Array(e)) => e.as_slice(),
            _ => &[],
        };
        let mut messages = Vec::with_capacity(entries.len());
        for e in entries {
            match entry(e, &epoch) {
                Some(m) => messages.push(m),
                None => {
                    // Skipped: the gap makes a recovery through it fail.
                    self.metrics.broker_error(BrokerOp::Decode);
                    debug!(room = %room, "Undecodable room history entry.");
                }
            }
        }
        Ok(Page {
            position: Position { epoch, offset },
            messages,
        })
    }
}

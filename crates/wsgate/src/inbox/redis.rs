//! Inboxes in Redis lists: `{p}:inbox:{user}` (contract 5.2).
//!
//! Entries are `id|msgpack(message)`, appended with `RPUSH` and trimmed to
//! `inbox-max` in the same script, so per-sender order is the list order.
//! An ack removes entries by id (a script scanning the list, stopping when
//! every id is found). Expiry: `{p}:inbox-expiry` holds each inbox's expiry,
//! renewed on every store; a sweeper on every node deletes expired inboxes and
//! counts their messages (only one node wins each, so nothing is counted
//! twice); reads treat an expired inbox as empty. The list key also carries a
//! Redis TTL one hour past its expiry, a safety net if no node runs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use tracing::debug;
use wsgate_protocol::MessageFrame;

use super::{Acked, Inbox, InboxError};
use crate::cluster::redis::RedisShared;
use crate::cluster::BrokerError;
use crate::metrics::BrokerOp;

/// Redis TTL margin past the inbox expiry.
const SAFETY_MS: u64 = 3_600_000;
/// Inboxes deleted per sweep step.
const SWEEP_BATCH: u64 = 100;

/// Inboxes as Redis lists.
pub struct ListInbox {
    shared: Arc<RedisShared>,
    max: usize,
    ttl: Duration,
}

impl From<BrokerError> for InboxError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::Timeout => InboxError::Timeout,
            BrokerError::Unavailable(m) => InboxError::Unavailable(m),
        }
    }
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
    pub fn new(shared: Arc<RedisShared>, max: usize, ttl: Duration) -> ListInbox {
        ListInbox { shared, max, ttl }
    }

    fn keys(&self, user: &str) -> (String, String) {
        (
            self.shared.key("inbox", user),
            format!("{}:inbox-expiry", self.shared.prefix),
        )
    }
}

#[async_trait]
impl Inbox for ListInbox {
    async fn store(&self, user: &str, message: &MessageFrame) -> Result<u64, InboxError> {
        let s = &self.shared;
        let mut message = message.clone();
        message.replay = false;
        let entry = encode_entry(&message)?;
        let (inbox, expiry) = self.keys(user);
        let mut conn = s.conn().await?;
        let (trimmed, expired): (u64, u64) = s
            .timed(
                s.scripts
                    .inbox_store
                    .key(inbox)
                    .key(expiry)
                    .arg(entry)
                    .arg(self.max)
                    .arg(self.ttl.as_millis() as u64)
                    .arg(user)
                    .arg(SAFETY_MS)
                    .invoke_async(&mut conn),
            )
            .await?;
        s.metrics.inbox_dropped_expired.inc_by(expired);
        Ok(trimmed)
    }

    async fn pending(&self, user: &str) -> Result<Vec<MessageFrame>, InboxError> {
        let s = &self.shared;
        let (inbox, expiry) = self.keys(user);
        let mut conn = s.conn().await?;
        let value: Value = s
            .timed(
                s.scripts
                    .inbox_pending
                    .key(inbox)
                    .key(expiry)
                    .arg(user)
                    .invoke_async(&mut conn),
            )
            .await?;
        let Value::Array(parts) = value else {
            return Err(InboxError::Unavailable(
                "unexpected reply to the inbox read".into(),
            ));
        };
        if let Some(Value::Int(expired)) = parts.first() {
            s.metrics
                .inbox_dropped_expired
                .inc_by((*expired).max(0) as u64);
        }
        let list = parts.get(1).map(entries).unwrap_or_default();
        Ok(list
            .into_iter()
            .filter_map(|e| {
                let m = decode_entry(e);
                if m.is_none() {
                    s.metrics.broker_error(BrokerOp::Decode);
                }
                m
            })
            .collect())
    }

    async fn ack(&self, user: &str, ids: &[String]) -> Result<Vec<Acked>, InboxError> {
        let s = &self.shared;
        let (inbox, expiry) = self.keys(user);
        let mut conn = s.conn().await?;
        let mut invocation = s.scripts.inbox_ack.key(inbox);
        invocation.key(expiry).arg(user);
        for id in ids {
            invocation.arg(id);
        }
        let removed: Value = s.timed(invocation.invoke_async(&mut conn)).await?;
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
        let shared = self.shared.clone();
        let period = (self.ttl / 4).clamp(Duration::from_millis(200), Duration::from_secs(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let expiry = format!("{}:inbox-expiry", shared.prefix);
            loop {
                tick.tick().await;
                if Arc::strong_count(&shared) == 1 {
                    return;
                }
                let Ok(mut conn) = shared.conn().await else {
                    continue;
                };
                let swept: Result<u64, _> = shared
                    .timed(
                        shared
                            .scripts
                            .inbox_sweep
                            .key(&expiry)
                            .arg(&shared.prefix)
                            .arg(SWEEP_BATCH)
                            .invoke_async(&mut conn),
                    )
                    .await;
                match swept {
                    Ok(n) => shared.metrics.inbox_dropped_expired.inc_by(n),
                    Err(e) => {
                        shared.metrics.broker_error(BrokerOp::Inbox);
                        debug!(error = %e, "Inbox sweep failed.");
                    }
                }
            }
        });
    }
}

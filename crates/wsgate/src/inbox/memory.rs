//! In-memory inboxes for standalone mode, with the same semantics and costs
//! as the Redis layout (`crate::redis::scripts::inbox`): limits checked at
//! store, idempotent ids, O(1) acks, paged reads, expiry after the last store.
//!
//! Each inbox keeps its messages by id (a map) and their order in a queue of
//! (sequence, id); an ack removes the message from the map and pops acked
//! heads off the queue (amortized O(1)); the queue is compacted once it holds
//! more than twice the live messages plus 64 (amortized O(1) per store). A
//! page finds its start by binary search on the sequence (O(log n)).
//!
//! A sweeper task drops expired inboxes (counted as `expired`); reads also
//! check expiry so a stale inbox is never replayed between sweeps. One inbox
//! may be shared by several nodes of one process (see
//! [`crate::cluster::memory::MemoryBus::inbox`]); only the first `start`
//! spawns the sweeper.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use wsgate_protocol::MessageFrame;

use super::{
    entry, Acked, Inbox, InboxError, InboxLimits, Overflow, Page, Refusal, Sender, Stored,
    PAGE_BYTES, PAGE_MESSAGES,
};
use crate::metrics::Metrics;

struct Entry {
    sender: String,
    message: MessageFrame,
    size: usize,
}

#[derive(Default)]
struct UserInbox {
    /// (sequence, id) in store order; ids no longer in `entries` are acked.
    order: VecDeque<(u64, String)>,
    entries: HashMap<String, Entry>,
    bytes: usize,
    per_sender: HashMap<String, usize>,
    expires_at: Option<Instant>,
}

impl UserInbox {
    fn remove(&mut self, id: &str) -> Option<Entry> {
        let e = self.entries.remove(id)?;
        self.bytes -= e.size;
        if let Some(n) = self.per_sender.get_mut(&e.sender) {
            *n -= 1;
            if *n == 0 {
                self.per_sender.remove(&e.sender);
            }
        }
        Some(e)
    }

    /// Pops acked ids off the head of the queue.
    fn pop_acked(&mut self) {
        while let Some((_, id)) = self.order.front() {
            if self.entries.contains_key(id) {
                break;
            }
            self.order.pop_front();
        }
    }

    /// Drops the oldest live message; false when there is none.
    fn drop_oldest(&mut self) -> bool {
        while let Some((_, id)) = self.order.pop_front() {
            if self.remove(&id).is_some() {
                return true;
            }
        }
        false
    }

    fn compact(&mut self) {
        if self.order.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.order.retain(|(_, id)| entries.contains_key(id));
        }
    }
}

/// Inboxes held in this process.
pub struct MemoryInbox {
    inboxes: Arc<Mutex<HashMap<String, UserInbox>>>,
    limits: InboxLimits,
    metrics: Arc<Metrics>,
    started: AtomicBool,
    /// Sequence of the last store, across inboxes: a cursor stays valid when
    /// an inbox empties and starts again.
    seq: AtomicU64,
}

impl MemoryInbox {
    pub fn new(limits: InboxLimits, metrics: Arc<Metrics>) -> MemoryInbox {
        MemoryInbox {
            inboxes: Arc::default(),
            limits,
            metrics,
            started: AtomicBool::new(false),
            seq: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UserInbox>> {
        self.inboxes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sweep(inboxes: &Mutex<HashMap<String, UserInbox>>, metrics: &Metrics) {
        let now = Instant::now();
        let mut map = inboxes.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, inbox| {
            let live = inbox.expires_at.is_some_and(|t| t > now);
            if !live {
                metrics
                    .inbox_dropped_expired
                    .inc_by(inbox.entries.len() as u64);
            }
            live
        });
    }

    /// The user's inbox if it has not expired; an expired one is dropped
    /// (counted).
    fn live<'m>(
        &self,
        map: &'m mut HashMap<String, UserInbox>,
        user: &str,
    ) -> Option<&'m mut UserInbox> {
        let expired = map
            .get(user)?
            .expires_at
            .is_some_and(|t| t <= Instant::now());
        if expired {
            if let Some(inbox) = map.remove(user) {
                self.metrics
                    .inbox_dropped_expired
                    .inc_by(inbox.entries.len() as u64);
            }
            return None;
        }
        map.get_mut(user)
    }
}

#[async_trait]
impl Inbox for MemoryInbox {
    async fn store(
        &self,
        user: &str,
        sender: Sender<'_>,
        message: &MessageFrame,
    ) -> Result<Stored, InboxError> {
        let size = entry(sender, message)?.len();
        let limits = &self.limits;
        let mut map = self.lock();
        self.live(&mut map, user);
        let inbox = map.entry(user.to_owned()).or_default();
        if let Some(old) = inbox.entries.get(&message.id) {
            return if old.sender == sender.key() {
                Ok(Stored::Duplicate)
            } else {
                Err(InboxError::IdTaken)
            };
        }
        if size > limits.max_bytes {
            return Err(InboxError::Refused(Refusal::Bytes));
        }
        if sender.has_share()
            && inbox.per_sender.get(sender.key()).copied().unwrap_or(0) >= limits.max_per_sender
        {
            return Err(InboxError::Refused(Refusal::SenderShare));
        }
        let over =
            |i: &UserInbox| i.entries.len() + 1 > limits.max || i.bytes + size > limits.max_bytes;
        let mut trimmed = 0;
        if over(inbox) {
            if limits.overflow == Overflow::Reject {
                return Err(InboxError::Refused(
                    if inbox.entries.len() + 1 > limits.max {
                        Refusal::Full
                    } else {
                        Refusal::Bytes
                    },
                ));
            }
            while over(inbox) && inbox.drop_oldest() {
                trimmed += 1;
            }
        }
        let mut message = message.clone();
        message.replay = false;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        inbox.order.push_back((seq, message.id.clone()));
        inbox.bytes += size;
        *inbox.per_sender.entry(sender.key().to_owned()).or_default() += 1;
        inbox.entries.insert(
            message.id.clone(),
            Entry {
                sender: sender.key().to_owned(),
                message,
                size,
            },
        );
        inbox.compact();
        inbox.expires_at = Some(Instant::now() + limits.ttl);
        Ok(Stored::New { trimmed })
    }

    async fn page(&self, user: &str, after: u64) -> Result<Page, InboxError> {
        let mut map = self.lock();
        let Some(inbox) = self.live(&mut map, user) else {
            return Ok(Page::default());
        };
        let start = inbox.order.partition_point(|(seq, _)| *seq <= after);
        let mut page = Page::default();
        let mut bytes = 0;
        let mut last = after;
        let mut read = 0;
        for (seq, id) in inbox.order.range(start..) {
            if read == PAGE_MESSAGES {
                break;
            }
            if let Some(e) = inbox.entries.get(id) {
                if bytes > 0 && bytes + e.size > PAGE_BYTES {
                    break;
                }
                bytes += e.size;
                page.messages.push(e.message.clone());
            }
            last = *seq;
            read += 1;
        }
        if start + read < inbox.order.len() {
            page.next = Some(last);
        }
        Ok(page)
    }

    async fn get(&self, user: &str, ids: &[String]) -> Result<Vec<MessageFrame>, InboxError> {
        let mut map = self.lock();
        let Some(inbox) = self.live(&mut map, user) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| inbox.entries.get(id).map(|e| e.message.clone()))
            .collect())
    }

    async fn ack(&self, user: &str, ids: &[String]) -> Result<Vec<Acked>, InboxError> {
        let mut map = self.lock();
        let Some(inbox) = map.get_mut(user) else {
            return Ok(Vec::new());
        };
        let mut acked = Vec::new();
        for id in ids {
            if let Some(e) = inbox.remove(id) {
                acked.push(Acked {
                    id: id.clone(),
                    from: e.message.from,
                });
            }
        }
        inbox.pop_acked();
        if inbox.entries.is_empty() {
            map.remove(user);
        }
        Ok(acked)
    }

    fn start(&self) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let inboxes = Arc::downgrade(&self.inboxes);
        let metrics = self.metrics.clone();
        let period =
            (self.limits.ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inboxes) = inboxes.upgrade() else {
                    return;
                };
                MemoryInbox::sweep(&inboxes, &metrics);
            }
        });
    }
}

#[cfg(test)]
mod tests;

//! In-memory inboxes for standalone mode, with the same semantics as the
//! Redis lists: capped, expiring after the last store, removed by ack.
//!
//! A sweeper task drops expired inboxes (counted as `expired`); reads also
//! check expiry so a stale inbox is never replayed between sweeps. One inbox
//! may be shared by several nodes of one process (see
//! [`crate::cluster::memory::MemoryBus::inbox`]); only the first `start`
//! spawns the sweeper.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use wsgate_protocol::MessageFrame;

use super::{Acked, Inbox, InboxError};
use crate::metrics::Metrics;

struct UserInbox {
    messages: VecDeque<MessageFrame>,
    expires_at: Instant,
}

/// Inboxes held in this process.
pub struct MemoryInbox {
    inboxes: Arc<Mutex<HashMap<String, UserInbox>>>,
    max: usize,
    ttl: Duration,
    metrics: Arc<Metrics>,
    started: AtomicBool,
}

impl MemoryInbox {
    pub fn new(max: usize, ttl: Duration, metrics: Arc<Metrics>) -> MemoryInbox {
        MemoryInbox {
            inboxes: Arc::default(),
            max,
            ttl,
            metrics,
            started: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UserInbox>> {
        self.inboxes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sweep(inboxes: &Mutex<HashMap<String, UserInbox>>, metrics: &Metrics) {
        let now = Instant::now();
        let mut map = inboxes.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, inbox| {
            let live = inbox.expires_at > now;
            if !live {
                metrics
                    .inbox_dropped_expired
                    .inc_by(inbox.messages.len() as u64);
            }
            live
        });
    }
}

#[async_trait]
impl Inbox for MemoryInbox {
    async fn store(&self, user: &str, message: &MessageFrame) -> Result<u64, InboxError> {
        let now = Instant::now();
        let mut map = self.lock();
        let inbox = map.entry(user.to_owned()).or_insert_with(|| UserInbox {
            messages: VecDeque::new(),
            expires_at: now + self.ttl,
        });
        if inbox.expires_at <= now {
            self.metrics
                .inbox_dropped_expired
                .inc_by(inbox.messages.len() as u64);
            inbox.messages.clear();
        }
        inbox.expires_at = now + self.ttl;
        let mut message = message.clone();
        message.replay = false;
        inbox.messages.push_back(message);
        let mut trimmed = 0;
        while inbox.messages.len() > self.max {
            inbox.messages.pop_front();
            trimmed += 1;
        }
        Ok(trimmed)
    }

    async fn pending(&self, user: &str) -> Result<Vec<MessageFrame>, InboxError> {
        let mut map = self.lock();
        let Some(inbox) = map.get(user) else {
            return Ok(Vec::new());
        };
        if inbox.expires_at <= Instant::now() {
            if let Some(inbox) = map.remove(user) {
                self.metrics
                    .inbox_dropped_expired
                    .inc_by(inbox.messages.len() as u64);
            }
            return Ok(Vec::new());
        }
        Ok(inbox.messages.iter().cloned().collect())
    }

    async fn ack(&self, user: &str, ids: &[String]) -> Result<Vec<Acked>, InboxError> {
        let mut map = self.lock();
        let Some(inbox) = map.get_mut(user) else {
            return Ok(Vec::new());
        };
        let mut acked = Vec::new();
        inbox.messages.retain(|m| {
            let hit = ids.contains(&m.id);
            if hit {
                acked.push(Acked {
                    id: m.id.clone(),
                    from: m.from.clone(),
                });
            }
            !hit
        });
        if inbox.messages.is_empty() {
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
        let period = (self.ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
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

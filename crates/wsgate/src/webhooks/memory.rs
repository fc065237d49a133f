//! Standalone mode: the event queue in memory, shared by the nodes of one
//! [`crate::cluster::memory::MemoryBus`].
//!
//! The memory broker calls [`MemoryEvents::user`] and
//! [`MemoryEvents::member`] under its own lock, at the moment a count
//! crosses zero, so the queue's order is the order of the transitions. The
//! `user.offline` rule is the one the Redis scripts keep
//! (`redis::scripts::webhooks::USER_COUNT`): an offline event leaves a
//! pending marker (its id and time); the user's next first connection
//! decides it: back within the offline delay, the offline is dropped and no
//! `user.online` is sent; back later, the offline is marked sent and the
//! online queued. A marker still pending when the worker asks (the delay
//! over, the user not back) is sent. Online and offline alternate.
//!
//! Bounded: at most [`MemoryEvents::MAX`] events wait; past that a new event
//! is dropped and counted (`wsgate_webhook_events_dropped_total{reason="queue_full"}`).
//! The queue lives in the process: events not yet delivered at exit are lost
//! (cluster mode keeps them in Redis).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use uuid::Uuid;
use wsgate_protocol::{Kind, MessageFrame};

use super::event::{Event, EventSet, EventType, Subject};
use super::queue::{Backlog, Entry, EventQueue, EventSink, QueueError};
use crate::clock::now_ms;
use crate::metrics::{Metrics, WebhookDrop};

#[derive(Default)]
struct State {
    next: u64,
    /// Unread events: (sequence, queued at ms, JSON).
    queue: VecDeque<(u64, u64, String)>,
    /// user → its undecided `user.offline` (id, time ms).
    pending: HashMap<String, (String, u64)>,
    /// `user.offline` ids decided sent, until the worker asks.
    sent: HashSet<String>,
}

/// The in-memory event queue.
pub struct MemoryEvents {
    types: EventSet,
    offline_delay: Duration,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    notify: Notify,
}

impl MemoryEvents {
    /// Most events waiting at once.
    pub const MAX: usize = 100_000;

    pub fn new(types: EventSet, offline_delay: Duration, metrics: Arc<Metrics>) -> MemoryEvents {
        MemoryEvents {
            types,
            offline_delay,
            metrics,
            state: Mutex::default(),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, state: &mut State, kind: EventType, subject: Subject<'_>) {
        if !self.types.has(kind) {
            return;
        }
        if state.queue.len() >= Self::MAX {
            self.metrics.webhooks.event_dropped(WebhookDrop::QueueFull);
            return;
        }
        let now = now_ms();
        let json = Event::encode(&Uuid::now_v7().to_string(), kind, now, subject);
        state.next += 1;
        let seq = state.next;
        state.queue.push_back((seq, now, json));
        self.notify.notify_one();
    }

    /// `user`'s connections went from none to some (`online`) or from some
    /// to none, cluster-wide.
    pub fn user(&self, user: &str, online: bool) {
        let mut state = self.lock();
        if online {
            let mut announce = true;
            if let Some((id, time)) = state.pending.remove(user) {
                if now_ms().saturating_sub(time) < self.offline_delay.as_millis() as u64 {
                    announce = false;
                } else {
                    state.sent.insert(id);
                }
            }
            if announce {
                self.push(&mut state, EventType::UserOnline, Subject::User(user));
            }
            return;
        }
        if !self.types.has(EventType::UserOffline) {
            return;
        }
        let id = Uuid::now_v7().to_string();
        if state.queue.len() >= Self::MAX {
            self.metrics.webhooks.event_dropped(WebhookDrop::QueueFull);
            return;
        }
        let now = now_ms();
        let json = Event::encode(&id, EventType::UserOffline, now, Subject::User(user));
        state.pending.insert(user.to_owned(), (id, now));
        state.next += 1;
        let seq = state.next;
        state.queue.push_back((seq, now, json));
        self.notify.notify_one();
    }

    /// `user` joined (or left) `room` cluster-wide; `room_changed` when the
    /// room went from empty to occupied (or back).
    pub fn member(&self, room: &str, user: &str, joined: bool, room_changed: bool) {
        let mut state = self.lock();
        let member = Subject::Member { room, user };
        if joined {
            if room_changed {
                self.push(&mut state, EventType::RoomOccupied, Subject::Room(room));
            }
            self.push(&mut state, EventType::MemberJoined, member);
        } else {
            self.push(&mut state, EventType::MemberLeft, member);
            if room_changed {
                self.push(&mut state, EventType::RoomVacated, Subject::Room(room));
            }
        }
    }
}

impl EventSink for MemoryEvents {
    fn message(&self, frame: &MessageFrame) {
        let kind = match frame.kind {
            Kind::Direct => EventType::MessageDirect,
            Kind::Room => EventType::MessageRoom,
            Kind::Broadcast => return,
        };
        let mut state = self.lock();
        self.push(&mut state, kind, Subject::Message(frame));
    }
}

#[async_trait]
impl EventQueue for MemoryEvents {
    async fn read(&self, max: usize, wait: Duration) -> Result<Vec<Entry>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.notify.notified();
            {
                let mut state = self.lock();
                if !state.queue.is_empty() {
                    let n = max.min(state.queue.len());
                    return Ok(state
                        .queue
                        .drain(..n)
                        .map(|(seq, _, json)| Entry {
                            key: seq.to_string(),
                            json,
                        })
                        .collect());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, _keys: &[String]) -> Result<(), QueueError> {
        // Read events leave the memory queue at once; the worker holds them.
        Ok(())
    }

    async fn offline_due(&self, user: &str, event_id: &str) -> Result<bool, QueueError> {
        let mut state = self.lock();
        if state.sent.remove(event_id) {
            return Ok(true);
        }
        if state
            .pending
            .get(user)
            .is_some_and(|(id, _)| id == event_id)
        {
            // Sent now: the next first connection is a `user.online`.
            state.pending.remove(user);
            return Ok(true);
        }
        Ok(false)
    }

    async fn backlog(&self) -> Result<Backlog, QueueError> {
        let state = self.lock();
        Ok(Backlog {
            waiting: state.queue.len() as u64,
            oldest_ms: state.queue.front().map(|(_, t, _)| *t),
        })
    }
}

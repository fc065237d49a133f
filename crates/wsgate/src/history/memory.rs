//! Room history in memory: standalone mode, and several nodes of one process
//! sharing a [`crate::cluster::memory::MemoryBus`].
//!
//! Per room: an epoch, the last offset, and a ring of the last
//! `history-size` messages (contiguous offsets, oldest first), which expires
//! `history-ttl` after the room's last message (or after the read that
//! started its epoch). An expired room starts a new epoch on its next use.
//!
//! One lock holds every room. [`History::publish`] takes it, gives the
//! message its offset, keeps it and hands it to the [`RoomFanout`] before
//! letting go, so offsets follow publish order and every node receives a
//! room's messages in offset order. The fan-out only queues into outboxes
//! (it never waits on a connection), so the lock is held briefly.
//!
//! Memory is bounded twice: at most `history-size` messages per room, and at
//! most `budget` bytes in all (each message counted by an estimate of its
//! size, each room by a fixed overhead plus its name). Over the budget, the
//! room published to least recently loses its oldest messages first (its
//! recovery window shrinks, the epoch stays), and a room with none left is
//! forgotten (its next use starts a new epoch). Rooms are kept in the order
//! they were last published to, which is also the order they expire in, so
//! the sweeper and the eviction both take from the front.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::time::Instant;
use wsgate_protocol::bus::{BusEvent, Envelope};
use wsgate_protocol::{MessageFrame, Position, ServerFrame};

use super::{new_epoch, History, HistoryError, Page, PAGE_MAX};

/// Delivers a sequenced room message to every node with a member of the
/// room, the publishing node included. Called with the history locked: it
/// must only queue, never wait.
pub trait RoomFanout: Send + Sync {
    fn fan_out(&self, room: &str, envelope: &Envelope);
}

/// The default byte budget of a node's (or a memory bus's) history: 256 MiB,
/// about 2.6 million messages of 100 bytes.
pub const DEFAULT_BUDGET: usize = 256 << 20;

/// Bytes counted for a room besides its name and messages.
const ROOM_OVERHEAD: usize = 160;
/// Bytes counted for a message besides its content and names.
const MESSAGE_OVERHEAD: usize = 96;

struct Room {
    epoch: Arc<str>,
    last: u64,
    /// (message with offset and epoch set, bytes counted for it)
    kept: VecDeque<(MessageFrame, usize)>,
    expires_at: Instant,
    /// Key in [`Rooms::by_touch`].
    touch: u64,
}

#[derive(Default)]
struct Rooms {
    map: HashMap<Arc<str>, Room>,
    /// Rooms by last publish (or epoch start), oldest first.
    by_touch: BTreeMap<u64, Arc<str>>,
    next_touch: u64,
    bytes: usize,
}

impl Rooms {
    /// The room, started or restarted (new epoch) when missing or expired.
    fn room(&mut self, name: &str, now: Instant, ttl: Duration) -> &mut Room {
        if self.map.get(name).is_some_and(|r| r.expires_at <= now) {
            self.forget(name);
        }
        let (by_touch, next_touch, bytes) =
            (&mut self.by_touch, &mut self.next_touch, &mut self.bytes);
        match self.map.entry(Arc::from(name)) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                let touch = *next_touch;
                *next_touch += 1;
                by_touch.insert(touch, v.key().clone());
                *bytes += ROOM_OVERHEAD + name.len();
                v.insert(Room {
                    epoch: Arc::from(new_epoch()),
                    last: 0,
                    kept: VecDeque::new(),
                    expires_at: now + ttl,
                    touch,
                })
            }
        }
    }

    /// Moves a room to the back of the touch order.
    fn touch(&mut self, name: &str) {
        let Some(room) = self.map.get_mut(name) else {
            return;
        };
        let touch = self.next_touch;
        self.next_touch += 1;
        if let Some(n) = self.by_touch.remove(&room.touch) {
            self.by_touch.insert(touch, n);
        }
        room.touch = touch;
    }

    fn forget(&mut self, name: &str) {
        if let Some((name, room)) = self.map.remove_entry(name) {
            self.by_touch.remove(&room.touch);
            let kept: usize = room.kept.iter().map(|(_, b)| b).sum();
            self.bytes -= ROOM_OVERHEAD + name.len() + kept;
        }
    }

    /// Drops expired rooms (they are at the front of the touch order).
    fn sweep(&mut self, now: Instant) {
        while let Some((_, name)) = self.by_touch.first_key_value() {
            let name = name.clone();
            if self.map.get(&name).is_some_and(|r| r.expires_at > now) {
                return;
            }
            self.forget(&name);
        }
    }

    /// Evicts from the least recently published rooms until within
    /// `budget`; never the last message of `keep`.
    fn evict(&mut self, budget: usize, keep: &str) {
        while self.bytes > budget {
            let Some((_, name)) = self.by_touch.first_key_value() else {
                return;
            };
            let name = name.clone();
            let is_keep = *name == *keep;
            let Some(room) = self.map.get_mut(&name) else {
                return;
            };
            if room.kept.len() > usize::from(is_keep) {
                if let Some((_, b)) = room.kept.pop_front() {
                    self.bytes -= b;
                }
            } else if is_keep {
                return;
            } else {
                self.forget(&name);
            }
        }
    }
}

/// Room history held in this process.
pub struct MemoryHistory {
    rooms: Arc<Mutex<Rooms>>,
    size: usize,
    ttl: Duration,
    budget: usize,
    fanout: Arc<dyn RoomFanout>,
    started: AtomicBool,
}

impl MemoryHistory {
    /// Keeps `size` messages per room for `ttl`, at most `budget` bytes in
    /// all, and publishes through `fanout`.
    pub fn new(
        size: usize,
        ttl: Duration,
        budget: usize,
        fanout: Arc<dyn RoomFanout>,
    ) -> MemoryHistory {
        MemoryHistory {
            rooms: Arc::default(),
            size,
            ttl,
            budget,
            fanout,
            started: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Rooms> {
        lock(&self.rooms)
    }

    /// Bytes counted now (for tests and the budget).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

// A poisoned lock only means a panic mid-update of plain data; keep serving.
fn lock(rooms: &Mutex<Rooms>) -> MutexGuard<'_, Rooms> {
    rooms.lock().unwrap_or_else(|e| e.into_inner())
}

/// An estimate of what a message costs in memory.
fn message_bytes(m: &MessageFrame) -> usize {
    MESSAGE_OVERHEAD
        + m.id.len()
        + m.from.len()
        + m.room.as_ref().map_or(0, String::len)
        + value_bytes(&m.content)
}

/// An estimate of a JSON value's size, without allocating. Content is at
/// most 128 deep (the codecs' limit), so the recursion is bounded.
fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 8,
        Value::Number(_) => 16,
        Value::String(s) => 24 + s.len(),
        Value::Array(a) => 24 + a.iter().map(value_bytes).sum::<usize>(),
        Value::Object(o) => {
            48 + o
                .iter()
                .map(|(k, v)| 24 + k.len() + value_bytes(v))
                .sum::<usize>()
        }
    }
}

impl MemoryHistory {
    /// [`History::publish`] at `now`.
    fn publish_at(
        &self,
        room: &str,
        envelope: &Envelope,
        now: Instant,
    ) -> Result<Position, HistoryError> {
        let BusEvent::Frame {
            frame: ServerFrame::Message(message),
            accepted_ms,
        } = &envelope.event
        else {
            return Err(HistoryError::NotARoomMessage);
        };
        let mut rooms = self.lock();
        let r = rooms.room(room, now, self.ttl);
        r.last += 1;
        r.expires_at = now + self.ttl;
        let position = Position {
            epoch: r.epoch.to_string(),
            offset: r.last,
        };
        let mut message = message.clone();
        message.replay = false;
        message.offset = Some(position.offset);
        message.epoch = Some(position.epoch.clone());
        let mut added = 0;
        let mut removed = 0;
        if self.size > 0 {
            let b = message_bytes(&message);
            r.kept.push_back((message.clone(), b));
            added = b;
            while r.kept.len() > self.size {
                if let Some((_, b)) = r.kept.pop_front() {
                    removed += b;
                }
            }
        }
        rooms.bytes = rooms.bytes + added - removed;
        rooms.touch(room);
        rooms.evict(self.budget, room);
        let sequenced = Envelope {
            origin: envelope.origin.clone(),
            route: envelope.route.clone(),
            event: BusEvent::Frame {
                frame: ServerFrame::Message(message),
                accepted_ms: *accepted_ms,
            },
            sent_ms: envelope.sent_ms,
        };
        self.fanout.fan_out(room, &sequenced);
        Ok(position)
    }

    /// [`History::read`] at `now`.
    fn read_at(&self, room: &str, after: u64, limit: usize, now: Instant) -> Page {
        let limit = limit.min(PAGE_MAX);
        let mut rooms = self.lock();
        let r = rooms.room(room, now, self.ttl);
        let position = Position {
            epoch: r.epoch.to_string(),
            offset: r.last,
        };
        let first = r.kept.front().and_then(|(m, _)| m.offset).unwrap_or(0);
        let skip =
            usize::try_from(after.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        let messages = r
            .kept
            .iter()
            .skip(skip)
            .take(limit)
            .map(|(m, _)| m.clone())
            .collect();
        Page { position, messages }
    }

    /// Drops the rooms expired at `now` (what the sweeper task does).
    #[cfg(test)]
    fn sweep_at(&self, now: Instant) {
        self.lock().sweep(now);
    }
}

#[async_trait]
impl History for MemoryHistory {
    async fn publish(&self, room: &str, envelope: &Envelope) -> Result<Position, HistoryError> {
        self.publish_at(room, envelope, Instant::now())
    }

    async fn read(&self, room: &str, after: u64, limit: usize) -> Result<Page, HistoryError> {
        Ok(self.read_at(room, after, limit, Instant::now()))
    }

    fn start(&self) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        // The task holds the rooms weakly: it ends with the history.
        let rooms: Weak<Mutex<Rooms>> = Arc::downgrade(&self.rooms);
        let period = (self.ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(rooms) = rooms.upgrade() else {
                    return;
                };
                lock(&rooms).sweep(Instant::now());
            }
        });
    }
}

#[cfg(test)]
mod tests;

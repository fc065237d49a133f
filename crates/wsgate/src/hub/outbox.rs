//! One connection's shared half: its bounded outbox and its close request.
//!
//! Overflow policy: an outbox holds at most `outbox-size` frames; a push to a
//! full outbox queues nothing and asks the session to close with 1013 (slow
//! consumer). A push never waits: the hub and the bus reader call it.
//!
//! Room gates: while a connection joins a room, the room's live frames for
//! it are held back ([`Conn::hold_room`]) instead of queued, so the join
//! reply and the history replay go out first; [`Conn::release_room`] then
//! queues what was held, dropping the messages the replay already carried
//! (by epoch and offset). Holding and queueing share the outbox lock, so no
//! frame slips between the replay and the live stream. A gate holds at most
//! `outbox-size` frames; past it the connection is a slow consumer (1013).
//!
//! After the release the gate stays as a *floor* until the room's next
//! message above it: a message the replay carried may still be on its way
//! from the bus (published after the subscription, read by the replay, not
//! yet handed to this node's reader), and it is dropped when it comes. One
//! room's messages arrive in offset order, so the first one above the floor
//! ends it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use wsgate_protocol::{CloseCode, Position, ServerFrame};

use super::encoding::Outgoing;

/// A connection's id, unique on this node.
pub type ConnId = u64;

/// What a push into an outbox did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The outbox was full: the connection is now being closed with 1013.
    SlowConsumer,
    /// The connection is gone or closing.
    Closed,
}

/// The shared half of a connection: what the hub and other tasks hold.
///
/// Its outbox is a bounded queue of shared frames. It is a locked `VecDeque`
/// rather than a channel because an idle connection must cost little: the
/// queue allocates nothing until a frame is queued and gives its buffer back
/// when it drains (a tokio channel allocates a cache-padded channel and a
/// 32-slot block up front, about 800 bytes per connection).
#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    pub user: Arc<str>,
    outbox: Mutex<Outbox>,
    capacity: usize,
    close: AtomicU16,
    /// Set by the node's timer wheel when one of the session's deadlines is
    /// due ([`Conn::ring`]); taken by [`Conn::wait`].
    alarm: AtomicBool,
    /// Wakes the session when frames are queued, a close is requested or a
    /// deadline is due: one `Notify` for all three, so a waiting session
    /// holds one waiter, not three (the close request and the alarm are read
    /// from their flags on every wake-up).
    wake: Notify,
}

/// Why a waiting session woke ([`Conn::wait`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A close was requested with this code.
    Kicked(CloseCode),
    /// Frames may have been queued.
    Queued,
    /// A deadline is due (the timer wheel rang). Frames may be queued too:
    /// the wait is re-armed, so the next one returns at once.
    Alarm,
}

/// Queue capacity kept when an outbox drains; larger buffers are released.
const OUTBOX_KEEP: usize = 16;

/// A connection's queued frames, and the rooms whose frames are held back.
#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<Arc<Outgoing>>,
    /// Empty (and unallocated) unless a join is in progress.
    gates: Vec<Gate>,
}

/// Live frames of one room held back while the connection joins it, then
/// the floor below which its messages are repeats.
#[derive(Debug)]
struct Gate {
    room: Arc<str>,
    state: GateState,
}

#[derive(Debug)]
enum GateState {
    /// Joining: frames wait here.
    Holding(VecDeque<Arc<Outgoing>>),
    /// Released: messages at or below this position are dropped.
    Floor(Position),
}

/// Whether a held frame is a room message the replay carried already: its
/// epoch is `upto`'s and its offset at most `upto`'s.
fn replayed(frame: &Outgoing, upto: &Position) -> bool {
    match frame.frame() {
        ServerFrame::Message(m) => {
            m.epoch.as_deref() == Some(upto.epoch.as_str())
                && m.offset.is_some_and(|o| o <= upto.offset)
        }
        _ => false,
    }
}

impl Conn {
    /// Creates a connection whose outbox holds at most `capacity` frames.
    pub fn new(id: ConnId, user: Arc<str>, capacity: usize) -> Arc<Conn> {
        Arc::new(Conn {
            id,
            user,
            outbox: Mutex::new(Outbox::default()),
            capacity,
            close: AtomicU16::new(0),
            alarm: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    fn lock_outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The outcome of a full queue or gate: the connection is closed with 1013.
    fn overflow(&self) -> Pushed {
        if self.kick(CloseCode::TryAgainLater) {
            Pushed::SlowConsumer
        } else {
            Pushed::Closed
        }
    }

    /// Queues a frame without waiting. A full outbox closes the connection with 1013.
    pub fn push(&self, frame: &Arc<Outgoing>) -> Pushed {
        self.push_to(None, frame)
    }

    /// Queues a frame of `room`, or holds it back while the connection
    /// joins that room ([`Conn::hold_room`]). Never waits; a full outbox or
    /// gate closes the connection with 1013.
    pub fn push_room(&self, room: &str, frame: &Arc<Outgoing>) -> Pushed {
        self.push_to(Some(room), frame)
    }

    fn push_to(&self, room: Option<&str>, frame: &Arc<Outgoing>) -> Pushed {
        if self.close.load(Ordering::Relaxed) != 0 {
            return Pushed::Closed;
        }
        {
            let mut outbox = self.lock_outbox();
            let capacity = self.capacity;
            let gate = room.and_then(|r| outbox.gates.iter().position(|g| *g.room == *r));
            let mut held = false;
            if let Some(i) = gate {
                match &mut outbox.gates[i].state {
                    GateState::Holding(queue) => {
                        if queue.len() >= capacity {
                            drop(outbox);
                            return self.overflow();
                        }
                        queue.push_back(frame.clone());
                        held = true;
                    }
                    GateState::Floor(floor) => {
                        if replayed(frame, floor) {
                            // A repeat still in flight at the release.
                            return Pushed::Queued;
                        }
                        if matches!(frame.frame(), ServerFrame::Message(_)) {
                            // Past the floor: nothing below it can follow.
                            outbox.gates.swap_remove(i);
                            if outbox.gates.is_empty() {
                                outbox.gates = Vec::new();
                            }
                        }
                    }
                }
            }
            if held {
                // Nothing for the session to write yet.
                return Pushed::Queued;
            }
            if outbox.queue.len() >= capacity {
                drop(outbox);
                return self.overflow();
            }
            outbox.queue.push_back(frame.clone());
        }
        self.wake.notify_one();
        Pushed::Queued
    }

    /// Holds back the live frames of `room` (pushed with [`Conn::push_room`])
    /// until [`Conn::release_room`]. Call it before the connection is added
    /// to the room.
    pub fn hold_room(&self, room: &str) {
        let mut outbox = self.lock_outbox();
        match outbox.gates.iter_mut().find(|g| *g.room == *room) {
            Some(gate) => gate.state = GateState::Holding(VecDeque::new()),
            None => outbox.gates.push(Gate {
                room: Arc::from(room),
                state: GateState::Holding(VecDeque::new()),
            }),
        }
    }

    /// Queues the frames held back for `room`, except the room messages at or
    /// before `replayed_upto` (the replay carried them), and keeps dropping
    /// those until the room's first message above it. With `None` the held
    /// frames are dropped and the gate removed (the join failed, or the
    /// connection left the room).
    pub fn release_room(&self, room: &str, replayed_upto: Option<&Position>) -> Pushed {
        let mut outbox = self.lock_outbox();
        let Some(i) = outbox.gates.iter().position(|g| *g.room == *room) else {
            return Pushed::Queued;
        };
        let Some(upto) = replayed_upto else {
            outbox.gates.swap_remove(i);
            if outbox.gates.is_empty() {
                outbox.gates = Vec::new();
            }
            return Pushed::Queued;
        };
        let held = std::mem::replace(&mut outbox.gates[i].state, GateState::Floor(upto.clone()));
        let GateState::Holding(held) = held else {
            return Pushed::Queued;
        };
        let mut queued = false;
        for frame in held {
            if replayed(&frame, upto) {
                continue;
            }
            if let (ServerFrame::Message(_), Some(i)) = (
                frame.frame(),
                outbox.gates.iter().position(|g| *g.room == *room),
            ) {
                // A message above the floor: the floor has done its job.
                outbox.gates.swap_remove(i);
            }
            if outbox.queue.len() >= self.capacity {
                drop(outbox);
                return self.overflow();
            }
            outbox.queue.push_back(frame);
            queued = true;
        }
        if outbox.gates.is_empty() {
            outbox.gates = Vec::new();
        }
        drop(outbox);
        if queued {
            self.wake.notify_one();
        }
        Pushed::Queued
    }

    /// Moves up to `max` queued frames into `out`; returns true when more remain.
    pub fn take(&self, out: &mut Vec<Arc<Outgoing>>, max: usize) -> bool {
        let mut outbox = self.lock_outbox();
        let queue = &mut outbox.queue;
        let n = queue.len().min(max);
        out.extend(queue.drain(..n));
        if queue.is_empty() && queue.capacity() > OUTBOX_KEEP {
            *queue = VecDeque::new();
        }
        !queue.is_empty()
    }

    /// Resolves with the close request if there is one, else once frames
    /// may have been queued (or a close requested) since the last wake-up.
    pub async fn wait(&self) -> Wake {
        if let Some(code) = self.kicked() {
            return Wake::Kicked(code);
        }
        self.wake.notified().await;
        if let Some(code) = self.kicked() {
            return Wake::Kicked(code);
        }
        if self.alarm.swap(false, Ordering::AcqRel) {
            // The one wake-up may also stand for queued frames: keep it.
            self.wake.notify_one();
            return Wake::Alarm;
        }
        Wake::Queued
    }

    /// Tells the session that one of its deadlines is due (the timer wheel).
    pub fn ring(&self) {
        self.alarm.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Re-arms [`Conn::wait`]: frames were left in the queue, or a wake-up
    /// for queued frames was taken by a wait that only looked for a close.
    pub fn rearm(&self) {
        self.wake.notify_one();
    }

    /// Asks the session to close with `code`. Returns false when a close was
    /// already requested (the first code wins).
    pub fn kick(&self, code: CloseCode) -> bool {
        let first = self
            .close
            .compare_exchange(0, code.as_u16(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.wake.notify_one();
        }
        first
    }

    /// The close requested by [`Conn::kick`], if any.
    pub fn kicked(&self) -> Option<CloseCode> {
        CloseCode::from_u16(self.close.load(Ordering::Acquire))
    }

    /// Resolves once a close is requested. Sets `queued` when it took a
    /// wake-up meant for queued frames: the caller gives it back with
    /// [`Conn::rearm`] once it waits with [`Conn::wait`] again.
    pub async fn wait_kicked(&self, queued: &mut bool) -> CloseCode {
        // Only the close flag is read: an alarm stays set for the next wait.
        loop {
            if let Some(code) = self.kicked() {
                return code;
            }
            self.wake.notified().await;
            *queued = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsgate_protocol::{Kind, MessageFrame};

    fn room_message(offset: u64, epoch: &str) -> Arc<Outgoing> {
        Outgoing::message(
            ServerFrame::Message(MessageFrame {
                id: format!("m{offset}"),
                kind: Kind::Room,
                from: "a".into(),
                to: None,
                room: Some("r".into()),
                content: serde_json::Value::Null,
                time: 0,
                replay: false,
                offset: Some(offset),
                epoch: Some(epoch.into()),
            }),
            Kind::Room,
            0,
        )
    }

    #[test]
    fn a_full_gate_is_a_slow_consumer() {
        let c = Conn::new(1, "u".into(), 2);
        c.hold_room("r");
        assert_eq!(c.push_room("r", &room_message(1, "e")), Pushed::Queued);
        assert_eq!(c.push_room("r", &room_message(2, "e")), Pushed::Queued);
        assert_eq!(
            c.push_room("r", &room_message(3, "e")),
            Pushed::SlowConsumer
        );
        assert_eq!(c.kicked(), Some(CloseCode::TryAgainLater));
        // Releasing into a full queue is one too.
        let c = Conn::new(2, "u".into(), 2);
        c.hold_room("r");
        c.push_room("r", &room_message(1, "e"));
        c.push_room("r", &room_message(2, "e"));
        c.push(&room_message(8, "x"));
        assert_eq!(c.release_room("r", None), Pushed::Queued);
        c.hold_room("r");
        c.push_room("r", &room_message(1, "e"));
        c.push_room("r", &room_message(2, "e"));
        c.push(&room_message(9, "x"));
        let upto = Position {
            epoch: "e".into(),
            offset: 0,
        };
        assert_eq!(c.release_room("r", Some(&upto)), Pushed::SlowConsumer);
    }

    fn taken(c: &Conn) -> Vec<Option<u64>> {
        let mut out = Vec::new();
        c.take(&mut out, 100);
        out.iter()
            .map(|f| match f.frame() {
                ServerFrame::Message(m) => m.offset,
                _ => None,
            })
            .collect()
    }

    #[test]
    fn after_the_release_repeats_still_in_flight_are_dropped() {
        let c = Conn::new(1, "u".into(), 8);
        c.hold_room("r");
        c.push_room("r", &room_message(4, "e"));
        let upto = Position {
            epoch: "e".into(),
            offset: 5,
        };
        c.release_room("r", Some(&upto));
        assert!(taken(&c).is_empty(), "4 was replayed");
        // 5 was read by the replay but reaches the node only now.
        c.push_room("r", &room_message(5, "e"));
        c.push_room("r", &Outgoing::control(ServerFrame::Pong { r#ref: None }));
        assert_eq!(
            taken(&c),
            [None],
            "the repeat is dropped, other frames pass"
        );
        c.push_room("r", &room_message(6, "e"));
        c.push_room("r", &room_message(7, "e"));
        assert_eq!(taken(&c), [Some(6), Some(7)]);
        // The floor ended with 6: nothing is filtered any more.
        c.push_room("r", &room_message(3, "e"));
        assert_eq!(taken(&c), [Some(3)]);
        // A new epoch's messages pass the floor too.
        c.hold_room("r");
        c.release_room("r", Some(&upto));
        c.push_room("r", &room_message(1, "new"));
        assert_eq!(taken(&c), [Some(1)]);
        // Leaving removes a floor.
        c.hold_room("r");
        c.release_room("r", Some(&upto));
        c.release_room("r", None);
        c.push_room("r", &room_message(2, "e"));
        assert_eq!(taken(&c), [Some(2)]);
    }

    #[test]
    fn a_full_outbox_kicks_with_1013_once() {
        let c = Conn::new(1, "u".into(), 2);
        let d = Outgoing::control(ServerFrame::Pong { r#ref: None });
        assert_eq!(c.push(&d), Pushed::Queued);
        assert_eq!(c.push(&d), Pushed::Queued);
        assert_eq!(c.push(&d), Pushed::SlowConsumer);
        assert_eq!(c.kicked(), Some(CloseCode::TryAgainLater));
        assert_eq!(c.push(&d), Pushed::Closed);
        assert!(!c.kick(CloseCode::Restart), "first close code wins");
        let mut out = Vec::new();
        assert!(c.take(&mut out, 1), "one frame left");
        assert!(!c.take(&mut out, 10));
        assert_eq!(out.len(), 2);
    }
}

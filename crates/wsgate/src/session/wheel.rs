//! One timer wheel per node for every session's deadlines: the next ping,
//! the heartbeat deadline, token expiry and ack redelivery.
//!
//! A session keeps no timer of its own. tokio's `Sleep` is 112 bytes, and
//! it would sit inline in every connection's task for the connection's whole
//! life; here a session files its next deadline as a 16-byte entry and the
//! wheel rings the connection ([`Conn::ring`]) at that deadline or at most
//! one tick after it ([`tick_for`]: a tenth of the shortest of the ping
//! interval, the pong timeout and the ack timeout, between 10 ms and 1 s).
//!
//! Cost: filing is O(1) (a push into one slot under that slot's lock). Each
//! tick visits one slot, O(entries in it): the connections due then, plus
//! the entries due more than one turn ([`SLOTS`] ticks) ahead, which stay
//! for a later turn. An entry whose connection has ended is dropped when its
//! slot comes round. A deadline that moves later (a read pushes the
//! heartbeat deadline back) files nothing: the session wakes at the old
//! entry, finds nothing due and files the new one; only a deadline that
//! moves earlier (an ack awaited sooner than the next ping) files a second
//! entry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::config::Config;
use crate::hub::Conn;

/// Slots in one turn of the wheel.
pub const SLOTS: usize = 512;

/// The wheel's tick for these settings: a tenth of the shortest session
/// deadline period, between 10 ms and 1 s (1 s with the defaults).
pub fn tick_for(config: &Config) -> Duration {
    let shortest = config
        .ping_interval
        .min(config.pong_timeout)
        .min(config.ack_timeout);
    (shortest / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

struct Entry {
    /// The tick at which it rings.
    due: u64,
    conn: Weak<Conn>,
}

pub struct Wheel {
    origin: Instant,
    tick: Duration,
    slots: Box<[Mutex<Vec<Entry>>]>,
    /// The last tick rung; set under the lock of that tick's slot.
    rung: AtomicU64,
}

impl Wheel {
    /// A wheel with this tick, turned by a task of its own that ends when
    /// the wheel is dropped. Must be called inside a tokio runtime.
    pub fn start(tick: Duration) -> Arc<Wheel> {
        let wheel = Arc::new(Wheel {
            origin: Instant::now(),
            tick,
            slots: (0..SLOTS).map(|_| Mutex::new(Vec::new())).collect(),
            rung: AtomicU64::new(0),
        });
        tokio::spawn(turn(Arc::downgrade(&wheel), wheel.origin, tick));
        wheel
    }

    /// The first tick at or after `deadline`.
    pub fn tick_of(&self, deadline: Instant) -> u64 {
        let since = deadline.saturating_duration_since(self.origin).as_nanos();
        let tick = self.tick.as_nanos().max(1);
        since.div_ceil(tick) as u64
    }

    /// The last tick that has begun.
    fn now_tick(&self) -> u64 {
        let since = self.origin.elapsed().as_nanos();
        (since / self.tick.as_nanos().max(1)) as u64
    }

    fn slot(&self, tick: u64) -> MutexGuard<'_, Vec<Entry>> {
        self.slots[(tick % SLOTS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Rings `conn` at tick `due` (or the next tick to ring, when `due` has
    /// been rung already). Returns the tick it was filed for. O(1).
    pub fn schedule(&self, due: u64, conn: &Arc<Conn>) -> u64 {
        let mut due = due;
        loop {
            due = due.max(self.rung.load(Ordering::Acquire) + 1);
            let mut slot = self.slot(due);
            // `rung` moves under the lock of the slot it rang: read again
            // under this one, so an entry never lands in a slot just passed.
            if self.rung.load(Ordering::Acquire) < due {
                slot.push(Entry {
                    due,
                    conn: Arc::downgrade(conn),
                });
                return due;
            }
        }
    }

    /// Rings the connections due at or before `now` in the slot of `tick`.
    fn ring(&self, tick: u64, now: u64) {
        let mut slot = self.slot(tick);
        slot.retain(|e| {
            if e.due > now {
                return e.conn.strong_count() > 0;
            }
            if let Some(conn) = e.conn.upgrade() {
                conn.ring();
            }
            false
        });
        // A slot that held a storm of entries gives the memory back.
        if slot.capacity() > 64 && slot.len() < slot.capacity() / 4 {
            let keep = slot.len() * 2;
            slot.shrink_to(keep);
        }
        self.rung.fetch_max(tick, Ordering::AcqRel);
    }
}

/// The wheel's task: every tick, rings the slots of the ticks that have
/// begun since the last (all of them at most once when it fell behind by a
/// whole turn, e.g. a stalled runtime).
async fn turn(wheel: Weak<Wheel>, origin: Instant, tick: Duration) {
    let mut interval = tokio::time::interval_at(origin + tick, tick);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut next = 1u64;
    loop {
        interval.tick().await;
        let Some(wheel) = wheel.upgrade() else {
            return;
        };
        let now = wheel.now_tick();
        let from = next.max(now.saturating_sub(SLOTS as u64 - 1));
        for t in from..=now {
            wheel.ring(t, now);
        }
        next = next.max(now + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Arc<Conn> {
        Conn::new(1, "u".into(), 8)
    }

    #[tokio::test(start_paused = true)]
    async fn rings_at_the_tick_of_the_deadline_not_before() {
        let wheel = Wheel::start(Duration::from_millis(100));
        let c = conn();
        let deadline = Instant::now() + Duration::from_millis(250);
        wheel.schedule(wheel.tick_of(deadline), &c);
        let start = Instant::now();
        assert_eq!(c.wait().await, crate::hub::Wake::Alarm);
        let at = start.elapsed();
        assert!(
            at >= Duration::from_millis(250) && at <= Duration::from_millis(350),
            "rang after {at:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_a_turn_ahead_waits_for_its_turn() {
        let tick = Duration::from_millis(10);
        let wheel = Wheel::start(tick);
        let c = conn();
        let ahead = tick * (SLOTS as u32 * 2 + 3);
        wheel.schedule(wheel.tick_of(Instant::now() + ahead), &c);
        let start = Instant::now();
        assert_eq!(c.wait().await, crate::hub::Wake::Alarm);
        let at = start.elapsed();
        assert!(at >= ahead && at <= ahead + tick, "rang after {at:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_past_deadline_rings_at_the_next_tick() {
        let wheel = Wheel::start(Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let c = conn();
        wheel.schedule(0, &c);
        let start = Instant::now();
        assert_eq!(c.wait().await, crate::hub::Wake::Alarm);
        assert!(start.elapsed() <= Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_of_ended_connections_are_dropped() {
        let wheel = Wheel::start(Duration::from_millis(10));
        let c = conn();
        let far = wheel.tick_of(Instant::now() + Duration::from_secs(3600));
        wheel.schedule(far, &c);
        drop(c);
        tokio::time::sleep(Duration::from_millis(10) * (SLOTS as u32 + 2)).await;
        let held: usize = wheel.slots.iter().map(|s| s.lock().unwrap().len()).sum();
        assert_eq!(held, 0, "the dead entry was dropped at its slot's turn");
    }
}

//! The life of one connection during a measurement: read everything it gets,
//! count measured messages, and — if it is a sender — send at its share of the
//! rate while keeping at most `window` messages unanswered.
//!
//! "Answered" means the wsgate `reply` (or `error`) to the frame, or, for the
//! peers that have no replies, the sender's own message coming back to it
//! (every raw / Socket.IO broadcast reaches the sender too). Sending is paced
//! from a 5 ms tick: at each tick (and after each answer) the sender catches up
//! to `elapsed × rate + phase`, so rates above 200/s per sender need no finer
//! timer, and senders with the same rate are spread over the period.
//! When the window is full the sender falls behind rather than queueing
//! without bound.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::park::Early;
use crate::stats::Live;
use crate::wire::{self, Client, Event, Stamp, Target, WireError};

/// What a sender sends.
#[derive(Clone, Debug)]
pub enum SendKind {
    /// `broadcast` (wsgate) or the peer's own broadcast.
    Broadcast,
    /// wsgate `publish` to this room.
    Publish(String),
    /// wsgate `send` to this user.
    Direct(String),
}

/// A sender's schedule.
#[derive(Clone, Debug)]
pub struct SendPlan {
    pub kind: SendKind,
    /// Messages per second for this sender (0 = as fast as answers come).
    pub rate: f64,
    pub window: u64,
    pub size: usize,
    pub start: Instant,
    pub until: Instant,
    /// Global index of this sender, written into each payload.
    pub sender: u64,
}

/// What a connection does during the measurement.
#[derive(Clone, Debug, Default)]
pub struct Role {
    pub send: Option<SendPlan>,
    /// Count measured messages that arrive (and record their latency).
    pub receive: bool,
    /// Direct-message bookkeeping: ack each message, remember ids.
    pub direct: bool,
}

/// What one connection did.
#[derive(Default)]
pub struct Outcome {
    /// The connection, unless the server closed it.
    pub client: Option<Client>,
    pub sent: u64,
    pub accepted: u64,
    pub rejected: BTreeMap<String, u64>,
    pub delivered: u64,
    pub duplicates: u64,
    pub accepted_ids: HashSet<String>,
    pub received_ids: HashSet<String>,
    pub send_secs: f64,
    /// Why the connection ended during the measurement (a close code such as
    /// `close_1013`, or the error kind), when it did.
    pub closed: Option<String>,
}

fn frame(client: &Client, plan: &SendPlan, seq: u64) -> Result<wire::Message, WireError> {
    let content = wire::payload(plan.sender, seq, plan.size);
    match &plan.kind {
        SendKind::Broadcast => client.broadcast_frame(content, seq),
        SendKind::Publish(room) => client.publish_frame(room, content, seq),
        SendKind::Direct(to) => client.send_frame(to, content, seq),
    }
}

/// What handling one measured message did.
struct Handled {
    alive: bool,
    /// An ack was queued: flush.
    dirty: bool,
    /// The sender's own message came back (its answer, for peers).
    own_echo: bool,
}

/// Counts one measured message received at `at_us`; acks it (direct).
async fn on_message(
    client: &mut Client,
    role: &Role,
    out: &mut Outcome,
    live: &Live,
    key: usize,
    (stamp, id, at_us): (Stamp, Option<String>, u64),
) -> Handled {
    let own = role.send.as_ref().is_some_and(|p| p.sender == stamp.sender);
    let mut h = Handled {
        alive: true,
        dirty: false,
        own_echo: own,
    };
    if own && client.target() != Target::Wsgate {
        live.replies.fetch_add(1, Ordering::Relaxed);
    }
    let mut duplicate = false;
    if let (true, Some(id)) = (role.direct, id) {
        if let Ok(ack) = client.ack_frame(&id) {
            h.alive = client.feed(ack).await.is_ok();
            h.dirty = true;
        }
        duplicate = !out.received_ids.insert(id);
        out.duplicates += u64::from(duplicate);
    }
    if role.receive && !own && !duplicate {
        out.delivered += 1;
        live.delivered.fetch_add(1, Ordering::Relaxed);
        live.latency
            .record(key, at_us.saturating_sub(stamp.sent_us));
    }
    h
}

async fn wait_stop(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Runs one connection until `stop` turns true (or the server closes it).
pub async fn run_conn(
    mut client: Client,
    role: Role,
    key: usize,
    live: Arc<Live>,
    stop: watch::Receiver<bool>,
    early: Vec<Early>,
) -> Outcome {
    let mut out = Outcome::default();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut sending = role.send.is_some();
    // Each sender's schedule is offset by a different fraction of its period
    // (golden-ratio spread), so many slow senders do not all fire together.
    let phase = role
        .send
        .as_ref()
        .map_or(0.0, |p| (p.sender as f64 * 0.618_033_988_749_895).fract());
    let mut inflight: u64 = 0;
    // Send times of unanswered messages; answers come back in order (one
    // connection's frames are handled in order), at most `window` of them.
    let mut pending: VecDeque<Instant> = VecDeque::new();
    let answered = |pending: &mut VecDeque<Instant>| {
        if let Some(t) = pending.pop_front() {
            live.accept.record(key, t.elapsed().as_micros() as u64);
        }
    };
    let echo_answers = client.target() != Target::Wsgate;
    let mut alive = true;
    // One stop future for the whole loop: re-registering with the watch
    // channel on every frame costs more than the frame.
    let stopped = wait_stop(stop);
    tokio::pin!(stopped);
    // Messages that arrived while the connection was parked count too.
    for e in early {
        let r = on_message(
            &mut client,
            &role,
            &mut out,
            &live,
            key,
            (e.stamp, e.id, e.at_us),
        )
        .await;
        alive &= r.alive;
        if r.dirty && alive {
            alive = client.flush().await.is_ok();
        }
    }
    while alive {
        let mut dirty = false;
        tokio::select! {
            ev = client.next_event(role.direct) => match ev {
                Err(e) => {
                    out.closed = Some(e.kind());
                    alive = false;
                }
                Ok(Event::SioPing) => alive = client.sio_pong().await.is_ok(),
                Ok(Event::Message { stamp, id }) => {
                    let at = wire::now_us();
                    let r = on_message(&mut client, &role, &mut out, &live, key, (stamp, id, at)).await;
                    alive = r.alive;
                    dirty |= r.dirty;
                    if r.own_echo && echo_answers {
                        inflight = inflight.saturating_sub(1);
                        answered(&mut pending);
                    }
                }
                Ok(Event::Reply { id }) => {
                    inflight = inflight.saturating_sub(1);
                    answered(&mut pending);
                    out.accepted += 1;
                    live.replies.fetch_add(1, Ordering::Relaxed);
                    if let (true, Some(id)) = (role.direct, id) {
                        out.accepted_ids.insert(id);
                    }
                }
                Ok(Event::Error { code }) => {
                    inflight = inflight.saturating_sub(1);
                    answered(&mut pending);
                    live.replies.fetch_add(1, Ordering::Relaxed);
                    *out.rejected.entry(code).or_default() += 1;
                }
                Ok(Event::Other) => {}
            },
            _ = tick.tick(), if sending => {}
            _ = &mut stopped => break,
        }
        if let (true, Some(plan)) = (sending && alive, &role.send) {
            let now = Instant::now();
            if now >= plan.until {
                sending = false;
                out.send_secs = now.duration_since(plan.start).as_secs_f64();
            } else {
                let due = if plan.rate > 0.0 {
                    let t = now.duration_since(plan.start).as_secs_f64();
                    (t * plan.rate + phase) as u64
                } else {
                    u64::MAX
                };
                while alive && out.sent < due && inflight < plan.window {
                    match frame(&client, plan, out.sent) {
                        Ok(f) => alive = client.feed(f).await.is_ok(),
                        Err(_) => break,
                    }
                    out.sent += 1;
                    inflight += 1;
                    pending.push_back(Instant::now());
                    live.sent.fetch_add(1, Ordering::Relaxed);
                    dirty = true;
                }
            }
        }
        if dirty && alive {
            alive = client.flush().await.is_ok();
        }
    }
    if echo_answers {
        out.accepted = out.sent;
    }
    if sending {
        if let Some(plan) = &role.send {
            out.send_secs = plan.start.elapsed().as_secs_f64();
        }
    }
    if alive {
        out.client = Some(client);
    } else {
        live.open.fetch_sub(1, Ordering::Relaxed);
    }
    out
}

//! The life of one connection during a measurement: read everything it gets,
//! count measured messages, and — if it is a sender — send at its share of the
//! rate while keeping at most `window` messages unanswered.
//!
//! "Answered" means the wsgate `reply` (or `error`) to the frame, or, for the
//! peers that have no replies, the sender's own message coming back to it
//! (every raw / Socket.IO broadcast reaches the sender too). Sending is paced
//! from a 5 ms tick: at each tick (and after each answer) the sender catches up
//! to `elapsed × rate`, so rates above 200/s per sender need no finer timer.
//! When the window is full the sender falls behind rather than queueing
//! without bound.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::stats::Live;
use crate::wire::{self, Client, Event, Target, WireError};

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
}

fn frame(client: &Client, plan: &SendPlan, seq: u64) -> Result<wire::Message, WireError> {
    let content = wire::payload(plan.sender, seq, plan.size);
    match &plan.kind {
        SendKind::Broadcast => client.broadcast_frame(content, seq),
        SendKind::Publish(room) => client.publish_frame(room, content, seq),
        SendKind::Direct(to) => client.send_frame(to, content, seq),
    }
}

/// Runs one connection until `stop` turns true (or the server closes it).
pub async fn run_conn(
    mut client: Client,
    role: Role,
    key: usize,
    live: Arc<Live>,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let mut out = Outcome::default();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut sending = role.send.is_some();
    let mut inflight: u64 = 0;
    let echo_answers = client.target() != Target::Wsgate;
    let mut alive = true;
    while alive {
        let mut dirty = false;
        tokio::select! {
            ev = client.next_event(role.direct) => match ev {
                Err(_) => alive = false,
                Ok(Event::SioPing) => alive = client.sio_pong().await.is_ok(),
                Ok(Event::Message { stamp, id }) => {
                    let own = role.send.as_ref().is_some_and(|p| p.sender == stamp.sender);
                    if own && echo_answers {
                        inflight = inflight.saturating_sub(1);
                        live.replies.fetch_add(1, Ordering::Relaxed);
                    }
                    let mut duplicate = false;
                    if let (true, Some(id)) = (role.direct, id) {
                        if let Ok(ack) = client.ack_frame(&id) {
                            alive = client.feed(ack).await.is_ok();
                            dirty = true;
                        }
                        duplicate = !out.received_ids.insert(id);
                        out.duplicates += u64::from(duplicate);
                    }
                    if role.receive && !own && !duplicate {
                        out.delivered += 1;
                        live.delivered.fetch_add(1, Ordering::Relaxed);
                        let lat = wire::now_us().saturating_sub(stamp.sent_us);
                        live.latency.record(key, lat);
                    }
                }
                Ok(Event::Reply { id }) => {
                    inflight = inflight.saturating_sub(1);
                    out.accepted += 1;
                    live.replies.fetch_add(1, Ordering::Relaxed);
                    if let (true, Some(id)) = (role.direct, id) {
                        out.accepted_ids.insert(id);
                    }
                }
                Ok(Event::Error { code }) => {
                    inflight = inflight.saturating_sub(1);
                    live.replies.fetch_add(1, Ordering::Relaxed);
                    *out.rejected.entry(code).or_default() += 1;
                }
                Ok(Event::Other) => {}
            },
            _ = tick.tick(), if sending => {}
            _ = stop.changed() => break,
        }
        if let (true, Some(plan)) = (sending && alive, &role.send) {
            let now = Instant::now();
            if now >= plan.until {
                sending = false;
                out.send_secs = now.duration_since(plan.start).as_secs_f64();
            } else {
                let due = if plan.rate > 0.0 {
                    (now.duration_since(plan.start).as_secs_f64() * plan.rate) as u64 + 1
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

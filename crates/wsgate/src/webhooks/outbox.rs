//! Cluster mode, the writing side: transitions queued in their own slot,
//! then moved to the global stream `{p}:events`.
//!
//! Contract section 6 forbids a script that touches a user's (or room's)
//! slot and a global key, so "count changed" and "event in the stream" are
//! single-slot steps, ordered like the registry and `node-users`:
//!
//! 1. the node adds an index entry `"u USER OP"` (or `"r ROOM OP"`, `OP` a
//!    fresh id) to the global `{p}:webhook-outbox-index`, scored with the time;
//! 2. the registry script (`redis::scripts::webhooks`) changes the count
//!    and, when it crosses zero, appends the event to the user's (room's)
//!    outbox list in the same slot, atomically;
//! 3. when the script queued something, the node's writer task moves the
//!    outbox's events to `{p}:events` (`XADD`, in order), then removes the
//!    moved ones from the outbox by value;
//! 4. the node removes its own index entry (at once when nothing was queued,
//!    else the writer, after the move).
//!
//! A node dying after 1 leaves an index entry; every node's sweeper moves
//! the outboxes of entries older than [`SWEEP_AGE`] and removes them. A move
//! repeated (a death between 3's two halves, or two movers) queues an event
//! twice with the same event id: receivers drop repeats by id. Each entry is
//! one step's own, so removing it never hides another step's events; an
//! outbox left behind anyway (a step slower than the sweep age) is moved by
//! the user's (room's) next step, which sees its length.
//!
//! The writer ([`Outboxes::start`]) is one task per node with a bounded
//! queue of jobs: accepted messages (`message.*`, written with `XADD`) and
//! outbox moves, in the order the node accepted them, so a user's message
//! events and transitions reach the stream in the order this node saw them,
//! and neither the message path nor a connection's close waits on the
//! move. A full queue drops a message event (counted,
//! `wsgate_webhook_events_dropped_total{reason="queue_full"}`); a move that
//! cannot be queued is left to the sweeper (its index entry stays), so a
//! transition is never lost to a full queue.
//!
//! Cost per connection open/close, join/leave with webhooks on: one `ZADD`,
//! the script, one `ZREM`, and when an event was queued one pipelined
//! `XADD` per event and one script. The stream is capped at
//! [`STREAM_MAX`] entries (`MAXLEN ~`) as a last resort; the reader trims it
//! to what the group has acknowledged ([`super::stream`]).

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use uuid::Uuid;
use wsgate_protocol::{Kind, MessageFrame};

use super::event::{Event, EventSet, EventType, Head, Subject};
use super::queue::EventSink;
use crate::clock::now_ms;
use crate::metrics::{Metrics, WebhookDrop};
use crate::redis::{Conn, Redis, RedisError};

/// Jobs waiting for the writer, per node.
pub const WRITER_QUEUE: usize = 10_000;
/// Jobs the writer takes at once.
const WRITER_PAGE: usize = 256;

/// An index entry older than this is swept: its step died or stalled.
pub const SWEEP_AGE: Duration = Duration::from_secs(5);
/// How often each node sweeps.
const SWEEP_PERIOD: Duration = Duration::from_secs(2);
/// Index entries swept per pass.
const SWEEP_PAGE: isize = 100;
/// Events moved per round trip from one outbox.
const MOVE_PAGE: isize = 100;
/// The stream's hard cap (`XADD MAXLEN ~`).
pub const STREAM_MAX: u64 = 1_000_000;
/// How long an offline marker lives: an unsent `user.offline` older than
/// this is dropped (and a `user.online` after it is sent).
pub const MARKER_TTL: Duration = Duration::from_secs(24 * 3600);

/// Whose outbox.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    User(&'a str),
    Room(&'a str),
}

/// One job of the writer.
enum Job {
    /// An accepted message's event JSON.
    Message(String),
    /// Move an outbox ("u"/"r", name), then remove the index entry.
    Move {
        user: bool,
        name: String,
        entry: String,
    },
}

impl Owner<'_> {
    fn tag(self) -> (&'static str, String) {
        match self {
            Owner::User(u) => ("u", u.to_owned()),
            Owner::Room(r) => ("r", r.to_owned()),
        }
    }
}

/// The cluster's webhook writing side of one node: the registry steps the
/// Redis broker runs, the writer task, the sweeper.
pub struct Outboxes {
    redis: Arc<Redis>,
    types: EventSet,
    flags: String,
    offline_delay: Duration,
    metrics: Arc<Metrics>,
    jobs: mpsc::Sender<Job>,
}

impl Outboxes {
    /// The writing side, its writer task and its sweeper (both end at
    /// `shutdown`; the writer first writes what is queued).
    pub fn start(
        redis: Arc<Redis>,
        types: EventSet,
        offline_delay: Duration,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Arc<Outboxes> {
        let (jobs, rx) = mpsc::channel(WRITER_QUEUE);
        let outboxes = Arc::new(Outboxes {
            redis,
            types,
            flags: types.flags(),
            offline_delay,
            metrics,
            jobs,
        });
        tokio::spawn(write_loop(outboxes.clone(), rx, shutdown.clone()));
        tokio::spawn(sweep_loop(outboxes.clone(), shutdown));
        outboxes
    }

    fn outbox_key(&self, owner: Owner<'_>) -> String {
        let keys = self.redis.keys();
        match owner {
            Owner::User(u) => keys.webhook_user_outbox(u),
            Owner::Room(r) => keys.webhook_room_outbox(r),
        }
    }

    async fn begin(
        &self,
        conn: &mut Conn,
        owners: &[Owner<'_>],
    ) -> Result<Vec<String>, RedisError> {
        let r = &self.redis;
        let now = now_ms();
        let members: Vec<String> = owners
            .iter()
            .map(|o| {
                let (kind, name) = o.tag();
                format!("{kind} {name} {}", Uuid::new_v4().simple())
            })
            .collect();
        let items: Vec<(u64, &String)> = members.iter().map(|m| (now, m)).collect();
        r.timed(conn.zadd_multiple::<_, _, _, i64>(r.keys().webhook_outbox_index(), &items))
            .await?;
        Ok(members)
    }

    /// After the script: nothing queued, the index entry goes at once;
    /// else the writer moves the outbox and removes it.
    async fn finish(
        &self,
        conn: &mut Conn,
        owner: Owner<'_>,
        len: i64,
        entry: String,
    ) -> Result<(), RedisError> {
        if len > 0 {
            let (user, name) = match owner {
                Owner::User(u) => (true, u.to_owned()),
                Owner::Room(r) => (false, r.to_owned()),
            };
            if self.jobs.try_send(Job::Move { user, name, entry }).is_err() {
                // Its index entry stays: the sweeper moves it.
                debug!("Webhook writer queue full; the sweeper moves this outbox.");
            }
            return Ok(());
        }
        let r = &self.redis;
        r.timed(conn.zrem::<_, _, i64>(r.keys().webhook_outbox_index(), entry))
            .await?;
        Ok(())
    }

    /// Moves an outbox's events to `{p}:events`, oldest first.
    async fn move_outbox(&self, conn: &mut Conn, owner: Owner<'_>) -> Result<(), RedisError> {
        let r = &self.redis;
        let key = self.outbox_key(owner);
        let stream = r.keys().events();
        loop {
            let events: Vec<String> = r.timed(conn.lrange(&key, 0, MOVE_PAGE - 1)).await?;
            if events.is_empty() {
                return Ok(());
            }
            let mut pipe = redis::pipe();
            add_all(&mut pipe, &stream, &events);
            r.timed(pipe.query_async::<()>(conn)).await?;
            let mut remove = r.scripts().webhook_outbox_remove.key(&key);
            for e in &events {
                remove.arg(e);
            }
            let left: i64 = r.timed(remove.invoke_async(conn)).await?;
            if left == 0 || events.len() < MOVE_PAGE as usize {
                return Ok(());
            }
        }
    }

    /// The user side of a connection count change (see [`UserCount`]),
    /// queuing `user.online` / `user.offline` when the user's cluster-wide
    /// count crosses zero.
    pub async fn user_count(
        &self,
        conn: &mut Conn,
        user: &str,
        node: &str,
        change: UserCount,
    ) -> Result<(), RedisError> {
        let r = &self.redis;
        let keys = r.keys();
        let owner = [Owner::User(user)];
        let members = self.begin(conn, &owner).await?;
        let mut script = r.scripts().webhook_user_count.key(keys.user(user));
        script
            .key(keys.webhook_offline(user))
            .key(keys.webhook_user_outbox(user))
            .arg(node)
            .arg(change.arg())
            .arg(user)
            .arg(Uuid::now_v7().to_string())
            .arg(&self.flags)
            .arg(MARKER_TTL.as_millis() as u64)
            .arg(self.offline_delay.as_millis() as u64);
        let len: i64 = r.timed(script.invoke_async(conn)).await?;
        let entry = members.into_iter().next().unwrap_or_default();
        self.finish(conn, owner[0], len, entry).await
    }

    /// A room membership change of (`node`, `user`) with its transitions.
    /// Returns true when the user's cluster-wide membership changed.
    pub async fn room_member(
        &self,
        conn: &mut Conn,
        room: &str,
        user: &str,
        node: &str,
        joined: bool,
    ) -> Result<bool, RedisError> {
        let r = &self.redis;
        let keys = r.keys();
        let owner = [Owner::Room(room)];
        let members = self.begin(conn, &owner).await?;
        let script = if joined {
            &r.scripts().webhook_room_join
        } else {
            &r.scripts().webhook_room_leave
        };
        let mut invocation = script.key(keys.members(room));
        invocation
            .key(keys.member_nodes(room))
            .key(keys.webhook_room_outbox(room))
            .arg(user)
            .arg(format!("{node} {user}"))
            .arg(room)
            .arg(Uuid::now_v7().to_string())
            .arg(Uuid::now_v7().to_string())
            .arg(&self.flags);
        let (changed, len): (i64, i64) = r.timed(invocation.invoke_async(conn)).await?;
        let entry = members.into_iter().next().unwrap_or_default();
        self.finish(conn, owner[0], len, entry).await?;
        Ok(changed == 1)
    }

    /// One sweep: moves the outboxes of index entries older than
    /// [`SWEEP_AGE`] and removes the entries. Returns how many were swept.
    /// O(log N + page) on the index, plus the moves.
    pub async fn sweep(&self) -> Result<usize, RedisError> {
        let r = &self.redis;
        let mut conn = r.conn().await?;
        let index = r.keys().webhook_outbox_index();
        let before = now_ms().saturating_sub(SWEEP_AGE.as_millis() as u64);
        let stale: Vec<String> = r
            .timed(conn.zrangebyscore_limit(&index, "-inf", before, 0, SWEEP_PAGE))
            .await?;
        for entry in &stale {
            let mut parts = entry.splitn(3, ' ');
            let owner = match (parts.next(), parts.next()) {
                (Some("u"), Some(name)) => Some(Owner::User(name)),
                (Some("r"), Some(name)) => Some(Owner::Room(name)),
                _ => None,
            };
            if let Some(owner) = owner {
                self.move_outbox(&mut conn, owner).await?;
            }
            r.timed(conn.zrem::<_, _, i64>(&index, entry)).await?;
        }
        Ok(stale.len())
    }
}

impl EventSink for Outboxes {
    fn message(&self, frame: &MessageFrame) {
        let kind = match frame.kind {
            Kind::Direct => EventType::MessageDirect,
            Kind::Room => EventType::MessageRoom,
            Kind::Broadcast => return,
        };
        if !self.types.has(kind) {
            return;
        }
        let json = Event::encode(
            &Uuid::now_v7().to_string(),
            kind,
            now_ms(),
            Subject::Message(frame),
        );
        if self.jobs.try_send(Job::Message(json)).is_err() {
            self.metrics.webhooks.event_dropped(WebhookDrop::QueueFull);
        }
    }
}

/// The writer: jobs in order, consecutive messages in one pipeline.
async fn write_loop(
    outboxes: Arc<Outboxes>,
    mut rx: mpsc::Receiver<Job>,
    shutdown: CancellationToken,
) {
    let mut page = Vec::with_capacity(WRITER_PAGE);
    loop {
        page.clear();
        let n = tokio::select! {
            () = shutdown.cancelled() => {
                // What is queued is written before the end.
                rx.close();
                rx.recv_many(&mut page, WRITER_PAGE).await
            }
            n = rx.recv_many(&mut page, WRITER_PAGE) => n,
        };
        if n == 0 {
            return;
        }
        let mut messages: Vec<String> = Vec::new();
        for job in page.drain(..) {
            match job {
                Job::Message(json) => messages.push(json),
                Job::Move { user, name, entry } => {
                    outboxes.write_messages(&mut messages).await;
                    let owner = if user {
                        Owner::User(&name)
                    } else {
                        Owner::Room(&name)
                    };
                    if let Err(e) = outboxes.moved(owner, &entry).await {
                        // Its index entry stays: the sweeper moves it.
                        outboxes.metrics.webhooks.queue_error();
                        debug!(error = %e, "Webhook outbox not moved; left to the sweeper.");
                    }
                }
            }
        }
        outboxes.write_messages(&mut messages).await;
    }
}

impl Outboxes {
    async fn moved(&self, owner: Owner<'_>, entry: &str) -> Result<(), RedisError> {
        let r = &self.redis;
        let mut conn = r.conn().await?;
        self.move_outbox(&mut conn, owner).await?;
        r.timed(conn.zrem::<_, _, i64>(r.keys().webhook_outbox_index(), entry))
            .await?;
        Ok(())
    }

    /// `XADD`s message events, pipelined; a failure drops and counts them
    /// (a message event is written once).
    async fn write_messages(&self, messages: &mut Vec<String>) {
        if messages.is_empty() {
            return;
        }
        if let Err(e) = self.xadd(messages).await {
            for _ in 0..messages.len() {
                self.metrics
                    .webhooks
                    .event_dropped(WebhookDrop::StreamWrite);
            }
            self.metrics.webhooks.queue_error();
            debug!(error = %e, events = messages.len(), "Message events not written to the stream.");
        }
        messages.clear();
    }

    async fn xadd(&self, events: &[String]) -> Result<(), RedisError> {
        let r = &self.redis;
        let mut conn = r.conn().await?;
        let mut pipe = redis::pipe();
        add_all(&mut pipe, &r.keys().events(), events);
        r.timed(pipe.query_async::<()>(&mut conn)).await
    }
}

/// `XADD {p}:events MAXLEN ~ STREAM_MAX * type T event JSON` per event.
fn add_all(pipe: &mut redis::Pipeline, stream: &str, events: &[String]) {
    for e in events {
        let kind = Head::parse(e).map(|h| h.kind).unwrap_or_default();
        pipe.cmd("XADD")
            .arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAX)
            .arg("*")
            .arg("type")
            .arg(kind)
            .arg("event")
            .arg(e)
            .ignore();
    }
}

/// Sweeps every [`SWEEP_PERIOD`] until `shutdown`.
async fn sweep_loop(outboxes: Arc<Outboxes>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(SWEEP_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match outboxes.sweep().await {
            Ok(0) => {}
            Ok(n) => debug!(entries = n, "Swept webhook outboxes left by a step."),
            Err(e) => {
                outboxes.metrics.webhooks.queue_error();
                debug!(error = %e, "Webhook outbox sweep failed.");
            }
        }
    }
}

/// How [`Outboxes::user_count`] changes this node's field of a user's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCount {
    /// `HINCRBY` by this many (a connect or a close).
    Add(i64),
    /// The absolute count this node means (a retry after a failed `Add`,
    /// which may or may not have been applied): idempotent, and a
    /// transition it makes is still queued, once.
    Set(u64),
    /// The field removed (a reaper undoing a dead node's registrations).
    Drop,
}

impl UserCount {
    /// The script's `ARGV` (`USER_COUNT`): a delta, `=N` or `drop`.
    fn arg(self) -> String {
        match self {
            UserCount::Add(d) => d.to_string(),
            UserCount::Set(n) => format!("={n}"),
            UserCount::Drop => "drop".to_owned(),
        }
    }
}

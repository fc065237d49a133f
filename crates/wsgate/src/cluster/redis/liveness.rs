//! Node liveness: heartbeats, finding dead nodes, reaping them.
//!
//! Each node heartbeats every `node-ttl / 3`: its info hash in its own slot
//! (`{p}:nodeinfo:{node}`, which tells it whether it was reaped meanwhile)
//! and its score in the global `{p}:nodes`, sent together. Each node also
//! looks for nodes silent for `node-ttl`, and reaps one it saw silent at two
//! checks in a row.
//!
//! A reap is a sequence of single-slot steps, safe to stop anywhere and to
//! repeat: claim the dead node with a lease (`{p}:reaper:{node}`, `SET NX
//! PX`: one reaper at a time), check it is still silent, then page through
//! its own index (`node-users`, `node-rooms`) undoing each user's registry
//! entry and each room membership (idempotent per node), remove the undone
//! index entries, drop its info and the lease, and last remove it from
//! `{p}:nodes`. A reaper that dies midway leaves the node in `{p}:nodes` and
//! what is left of its index: the next reaper, after the lease, finishes.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use redis::AsyncCommands;
use tracing::{debug, info, warn};

use super::inbound::Queue;
use super::Inner;
use wsgate_protocol::bus::{BusEvent, Envelope, Route};
use wsgate_protocol::{PresenceEvent, ServerFrame};

use crate::clock::now_ms;
use crate::cluster::NodeInfo;
use crate::metrics::BrokerOp;
use crate::redis::{Conn, Redis, RedisError};
use crate::webhooks::outbox::{Outboxes, UserCount};

/// Index entries undone per page while reaping.
const REAP_PAGE: usize = 256;
/// How long a reaper's claim lasts; another may take over after it.
const REAP_LEASE: Duration = Duration::from_secs(30);

impl Inner {
    /// Writes this node's heartbeat. Returns true when the node had been
    /// reaped by others meanwhile (its registrations must be re-done).
    pub(super) async fn heartbeat(&self) -> Result<bool, RedisError> {
        let r = &self.redis;
        let keys = r.keys();
        let conn = r.conn().await?;
        let info_ttl = (self.node_ttl * 3).as_millis() as u64;
        let (mut c1, mut c2) = (conn.clone(), conn);
        let mut info = r.scripts().node_info.key(keys.node_info(&self.node));
        info.arg(self.local_connections.load(Ordering::Relaxed))
            .arg(self.started_at)
            .arg(info_ttl);
        let mut beat = r.scripts().heartbeat.key(keys.nodes());
        beat.arg(&self.node);
        let info = r.timed(info.invoke_async::<i64>(&mut c1));
        let beat = r.timed(beat.invoke_async::<u64>(&mut c2));
        let (had, beat) = tokio::join!(info, beat);
        beat?;
        Ok(had? == 0)
    }

    /// Announces memberships that ended without their node (a reaped node's,
    /// or this node's own from before a restart or an outage): a presence
    /// leave per (room, user), published on the room's channel for the
    /// other nodes and queued for this node's own members in order with
    /// the bus ([`Queue::local`]). Like every presence event, live only: a
    /// failed publish is counted (`op="presence"`), not retried.
    pub(super) async fn announce_leaves(&self, queue: &Queue, leaves: Vec<(String, String)>) {
        if leaves.is_empty() {
            return;
        }
        let r = &self.redis;
        let conn = match r.conn().await {
            Ok(c) => Some(c),
            Err(e) => {
                debug!(error = %e, "Reaped leaves not published.");
                None
            }
        };
        for (room, user) in leaves {
            let channel = r.keys().room_channel(&room);
            let envelope = Envelope {
                origin: self.node.clone(),
                route: Route::Room(room.clone()),
                event: BusEvent::Frame {
                    frame: ServerFrame::Presence {
                        room,
                        event: PresenceEvent::Leave,
                        user,
                    },
                    accepted_ms: None,
                },
                sent_ms: Some(now_ms()),
            };
            let published = match (&conn, envelope.encode()) {
                (Some(c), Ok(bytes)) => {
                    let mut c = c.clone();
                    r.timed(r.publish_cmd(&channel, &bytes).query_async::<u64>(&mut c))
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
                (None, _) => Err("no connection".to_owned()),
                (_, Err(e)) => Err(e.to_string()),
            };
            if let Err(e) = published {
                self.metrics.broker_error(BrokerOp::Presence);
                debug!(error = %e, "Reaped leave not published.");
            }
            queue.local(envelope).await;
        }
    }

    /// Reaps nodes silent for `node-ttl` that were already silent at the
    /// previous check (`suspects`); returns the (room, user) leaves.
    ///
    /// Two sightings, each after a successful heartbeat of this node, because
    /// one is not proof: when Redis stalls (frozen, overloaded), every node's
    /// heartbeat looks old the moment it resumes, and commands queued during
    /// the stall (this node's check among them) run before the others'
    /// heartbeats. A live node heartbeats again within one period, so it is
    /// never seen dead twice.
    async fn reap_dead(
        &self,
        suspects: &mut HashSet<String>,
    ) -> Result<Vec<(String, String)>, RedisError> {
        let r = &self.redis;
        let mut conn = r.conn().await?;
        let ttl = self.node_ttl.as_millis() as u64;
        let dead: Vec<String> = r
            .timed(
                r.scripts()
                    .dead_nodes
                    .key(r.keys().nodes())
                    .arg(ttl)
                    .invoke_async(&mut conn),
            )
            .await?;
        let confirmed: Vec<String> = dead
            .iter()
            .filter(|n| **n != self.node && suspects.contains(*n))
            .cloned()
            .collect();
        *suspects = dead.into_iter().collect();
        let mut leaves = Vec::new();
        for node in confirmed {
            if let Some(entries) = self.reap_node(&mut conn, &node).await? {
                info!(node = %node, leaves = entries.len(), "Reaped a dead node.");
                leaves.extend(entries);
            }
        }
        Ok(leaves)
    }

    /// Reaps one dead node; `None` when another reaper holds it or it came back.
    async fn reap_node(
        &self,
        conn: &mut Conn,
        node: &str,
    ) -> Result<Option<Vec<(String, String)>>, RedisError> {
        let r = &self.redis;
        let keys = r.keys();
        let lease = REAP_LEASE.as_millis() as u64;
        let claimed: Option<String> = r
            .timed(
                redis::cmd("SET")
                    .arg(keys.reaper(node))
                    .arg(&self.node)
                    .arg("NX")
                    .arg("PX")
                    .arg(lease)
                    .query_async(conn),
            )
            .await?;
        if claimed.is_none() {
            return Ok(None);
        }
        let ttl = self.node_ttl.as_millis() as u64;
        let stale: i64 = r
            .timed(
                r.scripts()
                    .is_stale
                    .key(keys.nodes())
                    .arg(node)
                    .arg(ttl)
                    .invoke_async(conn),
            )
            .await?;
        if stale == 0 {
            r.timed(conn.del::<_, ()>(keys.reaper(node))).await?;
            return Ok(None);
        }
        let hooks = self.webhooks.as_deref();
        let leaves = undo_registrations(r, conn, node, hooks, hooks).await?;
        r.timed(conn.del::<_, ()>(&[keys.node_info(node), keys.reaper(node)]))
            .await?;
        let _: i64 = r
            .timed(
                r.scripts()
                    .forget_node
                    .key(keys.nodes())
                    .arg(node)
                    .arg(ttl)
                    .arg("0")
                    .invoke_async(conn),
            )
            .await?;
        Ok(Some(leaves))
    }
}

/// Undoes everything `node` registered, page by page through its own index:
/// each user's registry entry for the node, each room membership (the
/// room's idempotent leave), then the index entries themselves. Returns the
/// (room, user) memberships that ended cluster-wide. Every step is
/// idempotent, so an interrupted run is finished by repeating it.
///
/// With `user_events` (webhooks on), each user's entry is removed by the
/// webhook script, which queues the `user.offline` its removal causes; with
/// `room_events`, each membership's leave queues `member.left` and
/// `room.vacated`.
pub(super) async fn undo_registrations(
    r: &Redis,
    conn: &mut Conn,
    node: &str,
    user_events: Option<&Outboxes>,
    room_events: Option<&Outboxes>,
) -> Result<Vec<(String, String)>, RedisError> {
    let keys = r.keys();
    let node_users = keys.node_users(node);
    let mut cursor: u64 = 0;
    loop {
        let (next, page): (u64, Vec<(String, i64)>) = r
            .timed(
                redis::cmd("HSCAN")
                    .arg(&node_users)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(REAP_PAGE)
                    .query_async(conn),
            )
            .await?;
        let users: Vec<String> = page.into_iter().map(|(u, _)| u).collect();
        for chunk in users.chunks(REAP_PAGE) {
            let undone = join_all(chunk.iter().map(|u| {
                let mut c = conn.clone();
                let key = keys.user(u);
                async move {
                    match user_events {
                        Some(hooks) => hooks.user_count(&mut c, u, node, UserCount::Drop).await,
                        None => r.timed(c.hdel::<_, _, i64>(key, node)).await.map(drop),
                    }
                }
            }))
            .await;
            for u in undone {
                u?;
            }
            r.timed(conn.hdel::<_, _, i64>(&node_users, chunk)).await?;
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let node_rooms = keys.node_rooms(node);
    let mut leaves = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, page): (u64, Vec<String>) = r
            .timed(
                redis::cmd("SSCAN")
                    .arg(&node_rooms)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(REAP_PAGE)
                    .query_async(conn),
            )
            .await?;
        for chunk in page.chunks(REAP_PAGE) {
            let undone = join_all(chunk.iter().filter_map(|e| e.split_once(' ')).map(
                |(room, user)| {
                    let mut c = conn.clone();
                    let (members, member_nodes) = (keys.members(room), keys.member_nodes(room));
                    let entry = format!("{node} {user}");
                    async move {
                        let ended: i64 = match room_events {
                            Some(hooks) => hooks
                                .room_member(&mut c, room, user, node, false)
                                .await
                                .map(i64::from)?,
                            None => {
                                r.timed(
                                    r.scripts()
                                        .room_leave
                                        .key(members)
                                        .key(member_nodes)
                                        .arg(user)
                                        .arg(entry)
                                        .invoke_async(&mut c),
                                )
                                .await?
                            }
                        };
                        Ok::<_, RedisError>(
                            (ended == 1).then(|| (room.to_owned(), user.to_owned())),
                        )
                    }
                },
            ))
            .await;
            for u in undone {
                leaves.extend(u?);
            }
            r.timed(conn.srem::<_, _, i64>(&node_rooms, chunk)).await?;
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    Ok(leaves)
}

/// The live nodes with their info, sorted by id: the global list, then each
/// node's info in its own slot.
pub(super) async fn live_nodes(inner: &Inner) -> Result<Vec<NodeInfo>, RedisError> {
    let r = &inner.redis;
    let keys = r.keys();
    let mut conn = r.conn().await?;
    let ids: Vec<String> = r
        .timed(
            r.scripts()
                .live_nodes
                .key(keys.nodes())
                .arg(inner.node_ttl.as_millis() as u64)
                .invoke_async(&mut conn),
        )
        .await?;
    let infos = join_all(ids.iter().map(|id| {
        let mut c = conn.clone();
        let key = keys.node_info(id);
        async move {
            r.timed(
                redis::cmd("HMGET")
                    .arg(key)
                    .arg("connections")
                    .arg("started_at")
                    .query_async::<(Option<u64>, Option<u64>)>(&mut c),
            )
            .await
        }
    }))
    .await;
    let mut nodes = Vec::with_capacity(ids.len());
    for (id, info) in ids.into_iter().zip(infos) {
        let (connections, started_at) = info?;
        nodes.push(NodeInfo {
            node: id,
            connections: connections.unwrap_or(0),
            started_at: started_at.unwrap_or(0),
        });
    }
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(nodes)
}

/// A clean exit: undoes this node's registrations and leaves the node list.
pub(super) async fn leave_cluster(inner: &Inner) -> Result<(), RedisError> {
    let r = &inner.redis;
    let keys = r.keys();
    let mut conn = r.conn().await?;
    let hooks = inner.webhooks.as_deref();
    undo_registrations(r, &mut conn, &inner.node, hooks, hooks).await?;
    r.timed(conn.del::<_, ()>(keys.node_info(&inner.node)))
        .await?;
    let _: i64 = r
        .timed(
            r.scripts()
                .forget_node
                .key(keys.nodes())
                .arg(&inner.node)
                .arg(inner.node_ttl.as_millis() as u64)
                .arg("1")
                .invoke_async(&mut conn),
        )
        .await?;
    Ok(())
}

/// Heartbeats and reaping, every `node-ttl / 3`.
pub(super) async fn heartbeat_loop(inner: Arc<Inner>, queue: Queue) {
    let period = (inner.node_ttl / 3).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut suspects = HashSet::new();
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !inner.subscribed.load(Ordering::Acquire) {
            suspects.clear();
            continue;
        }
        match inner.heartbeat().await {
            Ok(reaped) => {
                inner.heartbeat_ok.store(true, Ordering::Release);
                if reaped {
                    warn!("This node was declared dead by the cluster; registering again.");
                    // Not ready from here until the catch-up has run.
                    let _held = inner.hold_ready();
                    if let Err(e) = inner.resync(&queue).await {
                        inner.metrics.broker_error(BrokerOp::Registry);
                        debug!(error = %e, "Resync failed.");
                    }
                    // Direct messages sent while the registry did not list
                    // this node went only to the inboxes: catch up, now
                    // that new ones reach this node again.
                    queue.catch_up(&inner).await;
                }
            }
            Err(e) => {
                inner.heartbeat_ok.store(false, Ordering::Release);
                inner.metrics.broker_error(BrokerOp::Heartbeat);
                debug!(error = %e, "Heartbeat failed.");
                inner.mark();
                suspects.clear();
                continue;
            }
        }
        inner.mark();
        if inner.watch_replicas {
            match inner.redis.poll_replicas().await {
                Ok(n) => inner.metrics.redis_replicas.set(n as i64),
                Err(e) => {
                    inner.metrics.broker_error(BrokerOp::Heartbeat);
                    debug!(error = %e, "Could not read the primary's replicas.");
                }
            }
        }
        if !inner.may_reap() {
            suspects.clear();
            continue;
        }
        match inner.reap_dead(&mut suspects).await {
            Ok(leaves) => inner.announce_leaves(&queue, leaves).await,
            Err(e) => {
                inner.metrics.broker_error(BrokerOp::Heartbeat);
                debug!(error = %e, "Reaping failed.");
            }
        }
    }
}

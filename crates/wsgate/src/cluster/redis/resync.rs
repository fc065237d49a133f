//! Resync: after every (re)connection, and after learning it was reaped, the
//! node replaces its registrations with what its hub holds, so a Redis
//! restart (with or without persistence) or a reap of a live node converges.
//!
//! Steps: undo what the node registered before (its own index, as a reaper
//! would), announce the memberships that ended meanwhile, then register the
//! hub's users and memberships again, node index first and the user or room
//! side second (the same order as live registrations), then heartbeat.

use std::sync::atomic::Ordering;
use std::sync::Weak;

use futures_util::future::join_all;
use redis::AsyncCommands;
use tracing::info;

use super::liveness::undo_registrations;
use super::Inner;
use crate::cluster::BusSink;
use crate::redis::RedisError;

/// Registrations sent at once.
const CHUNK: usize = 256;

impl Inner {
    /// Replaces this node's registrations with what its hub holds now.
    pub(super) async fn resync(&self, sink: &Weak<dyn BusSink>) -> Result<(), RedisError> {
        let r = &self.redis;
        let keys = r.keys();
        let mut conn = r.conn().await?;
        let stale = undo_registrations(r, &mut conn, &self.node).await?;
        let state = sink.upgrade().map(|k| k.local_state()).unwrap_or_default();
        // Memberships this node registered before (a restart with the same id,
        // or a Redis outage) that its hub no longer holds have ended: announce them.
        let ended: Vec<(String, String)> = stale
            .into_iter()
            .filter(|(room, user)| {
                !state
                    .rooms
                    .iter()
                    .any(|(r, users)| r == room && users.iter().any(|u| u == user))
            })
            .collect();
        if !ended.is_empty() {
            if let Some(sink) = sink.upgrade() {
                sink.nodes_died(ended);
            }
        }
        let node_users = keys.node_users(&self.node);
        for chunk in state.users.chunks(CHUNK) {
            r.timed(conn.hset_multiple::<_, _, _, ()>(&node_users, chunk))
                .await?;
            let done = join_all(chunk.iter().map(|(user, n)| {
                let mut c = conn.clone();
                let key = keys.user(user);
                async move { r.timed(c.hset::<_, _, _, i64>(key, &self.node, *n)).await }
            }))
            .await;
            for d in done {
                d?;
            }
        }
        let memberships: Vec<(&str, &str)> = state
            .rooms
            .iter()
            .flat_map(|(room, users)| users.iter().map(move |u| (room.as_str(), u.as_str())))
            .collect();
        let node_rooms = keys.node_rooms(&self.node);
        for chunk in memberships.chunks(CHUNK) {
            let entries: Vec<String> = chunk
                .iter()
                .map(|(room, u)| format!("{room} {u}"))
                .collect();
            r.timed(conn.sadd::<_, _, i64>(&node_rooms, &entries))
                .await?;
            let done = join_all(chunk.iter().map(|(room, user)| {
                let mut c = conn.clone();
                let (members, member_nodes) = (keys.members(room), keys.member_nodes(room));
                let entry = format!("{} {user}", self.node);
                async move {
                    r.timed(
                        r.scripts()
                            .room_join
                            .key(members)
                            .key(member_nodes)
                            .arg(*user)
                            .arg(entry)
                            .invoke_async::<i64>(&mut c),
                    )
                    .await
                }
            }))
            .await;
            for d in done {
                d?;
            }
        }
        self.heartbeat().await?;
        self.heartbeat_ok.store(true, Ordering::Release);
        info!(
            users = state.users.len(),
            rooms = state.rooms.len(),
            "Registered this node in the cluster."
        );
        Ok(())
    }
}

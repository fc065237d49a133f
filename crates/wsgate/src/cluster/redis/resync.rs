//! Resync: after every (re)connection, and after learning it was reaped, the
//! node replaces its registrations with what its hub holds, so a Redis
//! restart (with or without persistence) or a reap of a live node converges.
//!
//! Steps: undo what the node registered before (its own index, as a reaper
//! would), announce the memberships that ended meanwhile, then register the
//! node's users (each under its lock, in order with live updates: see
//! `intent`) and the hub's memberships again, node index first and the user
//! or room side second (the same order as live registrations), then
//! heartbeat.

use std::sync::atomic::Ordering;

use futures_util::future::join_all;
use redis::AsyncCommands;
use tracing::info;

use super::inbound::Queue;
use super::liveness::undo_registrations;
use super::Inner;
use crate::redis::{Conn, RedisError};
use crate::webhooks::outbox::UserCount;

/// Registrations sent at once.
const CHUNK: usize = 256;

impl Inner {
    /// Replaces this node's registrations with what it holds now: users
    /// from its own counts (each in order with its live updates, see
    /// `intent`), memberships from the hub's view. Memberships that ended
    /// meanwhile are announced ([`Inner::announce_leaves`]).
    pub(super) async fn resync(&self, queue: &Queue) -> Result<(), RedisError> {
        let r = &self.redis;
        let keys = r.keys();
        let mut conn = r.conn().await?;
        // Users' removals queue their `user.offline` (dropped at delivery
        // for those registered again below); membership leaves queue no
        // webhook events, since the hub's memberships are joined again at once.
        let stale =
            undo_registrations(r, &mut conn, &self.node, self.webhooks.as_deref(), None).await?;
        let rooms = self.view.rooms();
        // Memberships this node registered before (a restart with the same id,
        // or a Redis outage) that its hub no longer holds have ended: announce them.
        let ended: Vec<(String, String)> = stale
            .into_iter()
            .filter(|(room, user)| {
                !rooms
                    .iter()
                    .any(|(r, users)| r == room && users.iter().any(|u| u == user))
            })
            .collect();
        self.announce_leaves(queue, ended).await;
        let users = self.intent.users();
        for chunk in users.chunks(CHUNK) {
            let done = join_all(chunk.iter().map(|user| {
                let c = conn.clone();
                async move { self.register_user(c, user, false).await }
            }))
            .await;
            for d in done {
                d?;
            }
        }
        let memberships: Vec<(&str, &str)> = rooms
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
            users = users.len(),
            rooms = rooms.len(),
            "Registered this node in the cluster."
        );
        Ok(())
    }

    /// Writes one user's count as this node means it, under the user's
    /// lock: node side first when it holds connections, last when not.
    /// `announce` (the retry of a connect's or close's failed update): the
    /// user side goes through the webhook script, so a transition the
    /// failed attempt did not make is still queued, once.
    pub(super) async fn register_user(
        &self,
        mut conn: Conn,
        user: &str,
        announce: bool,
    ) -> Result<(), RedisError> {
        let r = &self.redis;
        let keys = r.keys();
        let _order = self.intent.lock(user).await;
        let n = self.intent.count(user);
        let (node_users, registry) = (keys.node_users(&self.node), keys.user(user));
        let hooks = self.webhooks.as_deref().filter(|_| announce);
        if n > 0 {
            r.timed(conn.hset::<_, _, _, i64>(&node_users, user, n))
                .await?;
        }
        match hooks {
            Some(h) => {
                h.user_count(&mut conn, user, &self.node, UserCount::Set(n))
                    .await?
            }
            None if n > 0 => {
                r.timed(conn.hset::<_, _, _, i64>(&registry, &self.node, n))
                    .await?;
            }
            None => {
                r.timed(conn.hdel::<_, _, i64>(&registry, &self.node))
                    .await?;
            }
        }
        if n == 0 {
            r.timed(conn.hdel::<_, _, i64>(&node_users, user)).await?;
        }
        Ok(())
    }
}

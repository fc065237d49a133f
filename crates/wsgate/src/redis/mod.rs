//! Redis: the connections, every key and channel name ([`keys`]) and the Lua
//! scripts ([`scripts`]). A leaf: `cluster::redis` (the broker) and
//! `inbox::redis` (the inbox) both build on it, and neither knows the other.
//!
//! Connections ([`conn`]): one multiplexed command connection shared by all
//! tasks, one for stores confirmed with `WAIT` and one for bulk reads (each
//! made again on first use after a failure), every call bounded by a
//! timeout; a connection of its own for each blocking read (the webhook
//! stream's `XREADGROUP BLOCK`); and the broker's subscriber opens one
//! dedicated pub/sub connection (in Redis Cluster: one per shard primary,
//! [`cluster`]).
//!
//! In `--redis-mode cluster` the three channels are shard channels
//! (`SPUBLISH`/`SSUBSCRIBE`, each served by the primary of its slot; the
//! broadcast channel, untagged, lives on whichever shard owns its slot).
//!
//! Every key and channel (`{p}` is `--redis-prefix`; the part in braces is
//! the Redis Cluster hash tag, present in every mode):
//!
//! | name | type | slot | holds |
//! |---|---|---|---|
//! | `{p}:node:{node}` | channel | node | traffic for the node's users (direct, typing, receipts, disconnects) |
//! | `{p}:room:{room}` | channel | room | room messages, presence, typing; subscribed while the room has a member on the node |
//! | `{p}:broadcast` | channel | global | cluster broadcast |
//! | `{p}:inbox:{user}` | list | user | the order of the unacked direct messages: `SEQ ID` |
//! | `{p}:inbox-msgs:{user}` | hash | user | id → `sender\|msgpack`: the unacked direct messages |
//! | `{p}:inbox-meta:{user}` | hash | user | `bytes`, `s:SENDER` (per-sender counts), `seq`: the inbox's quotas |
//! | `{p}:inbox-expiry:{user}` | string | user | the inbox's expiry, ms (Redis time) |
//! | `{p}:user:{user}` | hash | user | node → connections of the user there: the routing registry |
//! | `{p}:members:{room}` | hash | room | user → number of nodes holding a member connection |
//! | `{p}:member-nodes:{room}` | set | room | "node user": which node holds which member |
//! | `{p}:history:{room}` | stream | room | the room's last `history-size` messages, entry id `OFFSET-0`, field `m` = envelope; expires `history-ttl` after the last one |
//! | `{p}:history-meta:{room}` | hash | room | `epoch`, `offset`: the room's history position; same expiry |
//! | `{p}:nodeinfo:{node}` | hash | node | connections, started_at; expires after 3 × node-ttl |
//! | `{p}:node-users:{node}` | hash | node | user → connections: what the node registered |
//! | `{p}:node-rooms:{node}` | set | node | "room user": memberships the node registered |
//! | `{p}:reaper:{node}` | string | node | the node reaping it, with a lease |
//! | `{p}:nodes` | zset | global | node → last heartbeat (Redis time, ms) |
//! | `{p}:inbox-expiries` | zset | global | user → inbox expiry: the sweeper's index |
//! | `{p}:webhook-user-outbox:{user}` | list | user | webhook events decided by the user's registry script, until moved to `{p}:events` |
//! | `{p}:webhook-offline:{user}` | hash | user | `p` = "ID TIME" of the user's undecided `user.offline`, `s:ID` = decided sent; expires after a day |
//! | `{p}:webhook-room-outbox:{room}` | list | room | webhook events decided by the room's membership scripts, until moved |
//! | `{p}:webhook-outbox-index` | zset | global | "u USER OP" / "r ROOM OP" → ms: outboxes a step may have left events in (swept) |
//! | `{p}:events` | stream | global | webhook events, fields `type`, `event` (JSON); consumer group `wsgate` |
//! | `{p}:webhook-reader` | string | global | the node reading `{p}:events`, with a lease |
//!
//! No script touches two slots; a change spanning a user (or room) and a node
//! is two steps, node side first on the way in and last on the way out, so a
//! node that dies between them leaves only entries its reaper finds through
//! the node's own keys and undoes with idempotent steps
//! (`docs/architecture.md`, "Key scheme").

pub mod cluster;
pub mod conn;
pub mod keys;
pub mod scripts;

pub use cluster::Conn;
pub use conn::{Redis, RedisError, CONNECT_TIMEOUT, OP_TIMEOUT};
pub use keys::Keys;

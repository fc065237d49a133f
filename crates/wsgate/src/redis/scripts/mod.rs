//! The Lua scripts, loaded once per connection by SHA (`EVALSHA`, falling
//! back to `EVAL` on `NOSCRIPT`).
//!
//! Rules every script keeps: each key it touches comes in through `KEYS`
//! (never built from a prefix inside Lua), all its keys share one Redis
//! Cluster slot (they carry the same hash tag, or it touches one global key
//! only), and times come from Redis `TIME`, so node clocks never need to
//! agree. A change that spans two slots (a user and a node, a room and a
//! node) is two steps, ordered so that a node dying between them leaves only
//! what a reaper finds and undoes: see `docs/architecture.md`, "Key scheme".
//! Each script's doc comment states its complexity.
//!
//! The inbox scripts live in [`inbox`], the registry and liveness scripts in
//! [`registry`], the room history scripts in [`history`], the webhook
//! scripts in [`webhooks`].

pub mod history;
pub mod inbox;
pub mod registry;
pub mod webhooks;

use redis::Script;

/// Every script, hashed once at start-up.
pub struct Scripts {
    pub count: Script,
    pub room_join: Script,
    pub room_leave: Script,
    pub node_info: Script,
    pub heartbeat: Script,
    pub dead_nodes: Script,
    pub live_nodes: Script,
    pub is_stale: Script,
    pub forget_node: Script,
    pub inbox_store: Script,
    pub inbox_page: Script,
    pub inbox_ack: Script,
    pub inbox_due: Script,
    pub inbox_expire: Script,
    pub inbox_reindex: Script,
    pub history_publish: Script,
    pub history_read: Script,
    pub webhook_user_count: Script,
    pub webhook_room_join: Script,
    pub webhook_room_leave: Script,
    pub webhook_outbox_remove: Script,
    pub webhook_offline_due: Script,
    pub webhook_reader_lease: Script,
    pub webhook_reader_release: Script,
}

impl Scripts {
    pub fn new() -> Scripts {
        Scripts {
            count: Script::new(registry::COUNT),
            room_join: Script::new(registry::ROOM_JOIN),
            room_leave: Script::new(registry::ROOM_LEAVE),
            node_info: Script::new(registry::NODE_INFO),
            heartbeat: Script::new(registry::HEARTBEAT),
            dead_nodes: Script::new(registry::DEAD_NODES),
            live_nodes: Script::new(registry::LIVE_NODES),
            is_stale: Script::new(registry::IS_STALE),
            forget_node: Script::new(registry::FORGET_NODE),
            inbox_store: Script::new(inbox::STORE),
            inbox_page: Script::new(inbox::PAGE),
            inbox_ack: Script::new(inbox::ACK),
            inbox_due: Script::new(inbox::DUE),
            inbox_expire: Script::new(inbox::EXPIRE),
            inbox_reindex: Script::new(inbox::REINDEX),
            history_publish: Script::new(history::PUBLISH),
            history_read: Script::new(history::READ),
            webhook_user_count: Script::new(webhooks::USER_COUNT),
            webhook_room_join: Script::new(webhooks::ROOM_JOIN),
            webhook_room_leave: Script::new(webhooks::ROOM_LEAVE),
            webhook_outbox_remove: Script::new(webhooks::OUTBOX_REMOVE),
            webhook_offline_due: Script::new(webhooks::OFFLINE_DUE),
            webhook_reader_lease: Script::new(webhooks::READER_LEASE),
            webhook_reader_release: Script::new(webhooks::READER_RELEASE),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts::new()
    }
}

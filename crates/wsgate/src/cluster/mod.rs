//! The cluster: how a node reaches users on other nodes, and who is where.
//!
//! The [`Broker`] trait is everything the node needs from the cluster:
//! publishing envelopes to the nodes that need them, the user registry
//! (user → nodes), cluster-wide room membership, and the node list. Inbound
//! envelopes arrive through the [`BusSink`] the node attaches.
//!
//! Two implementations:
//! - [`memory::MemoryBroker`]: standalone mode, and several nodes in one process
//!   sharing one [`memory::MemoryBus`] (tests);
//! - `redis::RedisBroker`: cluster mode over Redis pub/sub (see that module for
//!   every key and channel).
//!
//! Local delivery is the node's job: a broker never hands an envelope back to
//! the node that published it.

pub mod memory;
pub mod redis;

use std::sync::Weak;

use async_trait::async_trait;
use wsgate_protocol::bus::Envelope;

/// Where an envelope goes (defined with the envelope, in the protocol crate).
pub use wsgate_protocol::bus::Route;

/// A node as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    pub node: String,
    pub connections: u64,
    pub started_at: u64,
}

/// What a broker may read of this node's local state: a narrow, read-only
/// view of the hub, handed to the broker when it is built. The broker reads
/// it to re-register the node's room memberships (resync) and to check a
/// room still has no member before it unsubscribes; it never writes
/// through it. (Users' connection counts it keeps itself: see
/// `cluster/redis/intent.rs`.)
pub trait LocalView: Send + Sync {
    /// Rooms with a member here, with their member users.
    fn rooms(&self) -> Vec<(String, Vec<String>)>;
    /// Whether `room` has a member connection here now.
    fn has_room(&self, room: &str) -> bool;
}

/// Why the cluster could not do something.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the cluster bus is unavailable: {0}")]
    Unavailable(String),
    #[error("cluster operation timed out")]
    Timeout,
    #[error("the cluster bus is unavailable")]
    Redis(#[from] crate::redis::RedisError),
}

/// Receives what the cluster sends this node: envelopes published by other
/// nodes (and the leaves of members of dead nodes, which the broker
/// announces itself), and catch-up requests. Data flows one way: the sink
/// never calls the broker back for these. Must not block (except
/// [`BusSink::resubscribed`], which the broker awaits on purpose).
#[async_trait]
pub trait BusSink: Send + Sync {
    fn deliver(&self, envelope: Envelope);
    /// The broker is subscribed again after losing the bus: envelopes
    /// published meanwhile never reached this node. Awaited before any
    /// envelope of the new subscription is delivered, so what the sink queues
    /// here reaches its connections first.
    async fn resubscribed(&self) {}
    /// Redis Cluster: these rooms' channels are subscribed again after
    /// their shard was lost (the rest of the bus stayed live): catch their
    /// local members up, like [`BusSink::resubscribed`] for rooms.
    async fn rooms_resubscribed(&self, _rooms: &[String]) {}
}

/// Everything the node needs from the cluster.
#[async_trait]
pub trait Broker: Send + Sync {
    /// Attaches the sink for inbound envelopes and starts background work
    /// (subscriptions, heartbeats). Called once.
    fn start(&self, sink: Weak<dyn BusSink>);

    /// Publishes to the other nodes on the envelope's route; returns how many
    /// nodes it reached (for `Route::User`: the other nodes holding the user).
    async fn publish(&self, envelope: &Envelope) -> Result<usize, BrokerError>;

    /// This node's connection count for `user` changed by `delta`.
    async fn user_connections(&self, user: &str, delta: i64) -> Result<(), BrokerError>;

    /// Connections of `user` in the whole cluster.
    async fn user_status(&self, user: &str) -> Result<u64, BrokerError>;

    /// This node gained its first (`joined`) or lost its last member connection
    /// of `user` in `room`. Returns true when the user's cluster-wide
    /// membership changed (joined the room, or left it entirely).
    async fn room_member(&self, room: &str, user: &str, joined: bool) -> Result<bool, BrokerError>;

    /// Members of a room in the whole cluster.
    async fn room_members(&self, room: &str) -> Result<Vec<String>, BrokerError>;

    /// How many users are in a room, cluster-wide. O(1).
    async fn room_size(&self, room: &str) -> Result<u64, BrokerError>;

    /// One page of a room's members: at most `limit` users from `cursor`
    /// (`None` = the first page), and the next page's cursor (`None` on the
    /// last page). Costs O(limit), whatever the room's size.
    async fn room_members_page(
        &self,
        room: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>), BrokerError>;

    /// Live nodes.
    async fn nodes(&self) -> Result<Vec<NodeInfo>, BrokerError>;

    /// This node has (or no longer has) a member of `room`. Gaining interest
    /// returns once the room's traffic reaches this node.
    async fn room_interest(&self, room: &str, interested: bool) -> Result<(), BrokerError>;

    /// This node's connection count, for the node list.
    fn set_local_connections(&self, n: u64);

    /// True when the broker can route: connected and subscribed.
    fn is_up(&self) -> bool;

    /// Stops background work and removes this node from the cluster.
    async fn shutdown(&self);
}

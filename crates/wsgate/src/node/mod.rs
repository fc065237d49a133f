//! The node: what one wsgate process does with messages, rooms and presence.
//!
//! Sessions, the server API (and gRPC) call the node's operations; the node
//! talks to the local [`Hub`], to the cluster through a [`Broker`] and to an
//! [`Inbox`], and never knows which implementations it holds. Its fields are
//! private: whoever needs the hub, the config or the metrics is handed them
//! at start-up (see [`crate::start`]), never reaches through the node.
//!
//! - this file: the node, its errors, direct, room and broadcast messages,
//!   acks and receipts, the registry at connect and disconnect;
//! - [`rooms`]: room messages through the [`History`] (offsets, and the
//!   delivery of a room's messages on every node from one ordered path),
//!   join with recovery, leave, presence events and queries, typing;
//! - [`bus`]: [`Node::emit`], the one place an event is delivered: to the
//!   local connections on its route, then published to the other nodes; the
//!   same local delivery serves envelopes from the bus ([`BusSink`]);
//! - [`republish`]: a direct message stored but whose live publish failed is
//!   published again by one bounded, ordered queue per node, so a recipient
//!   that stayed connected does not wait for its next reconnect.
//!
//! Order: one sender's requests are handled one at a time by its session, and
//! each publish is awaited before the next, so per-sender order holds on every
//! path (local outboxes are FIFO, Redis delivers in command order). After a
//! bus outage the node re-sends each local user's inbox before the first
//! envelope of the new subscription ([`BusSink::resubscribed`]): direct
//! messages published while it was away are not lost to live connections.

#[cfg(test)]
mod ack_tests;
mod bus;
mod republish;
mod rooms;
#[cfg(test)]
pub(crate) mod testing;

use std::sync::Arc;

use futures_util::{stream, StreamExt};
use tracing::debug;
use uuid::Uuid;
use wsgate_protocol::bus::{BusEvent, Route};
use wsgate_protocol::{CloseCode, Content, Kind, MessageFrame, ServerFrame};

pub use bus::HubView;
pub use rooms::{Joined, RoomView};

use crate::clock::now_ms;
use crate::cluster::{Broker, BrokerError, BusSink, NodeInfo};
use crate::config::Config;
use crate::history::{History, HistoryError};
use crate::hub::{Conn, Hub};
use crate::inbox::{Inbox, InboxError, Page, Refusal, Sender, Stored};
use crate::metrics::{BrokerOp, InboxRefused, Metrics};
use crate::webhooks::Webhooks;
use republish::Republisher;

/// Receipt publishes of one ack in flight at once (an ack names at most
/// [`wsgate_protocol::codec::MAX_ACK_IDS`] ids).
const RECEIPTS_IN_FLIGHT: usize = 64;

/// Why the node refused or could not do a request. [`crate::errors`] maps
/// each to its protocol error code and HTTP status, in one place.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("this connection has joined the most rooms allowed ({0})")]
    TooManyRooms(usize),
    #[error("the node is not connected to the cluster; retry")]
    NotConnected,
    #[error("the cluster could not confirm this; retry")]
    Cluster(#[source] BrokerError),
    #[error("the inbox could not confirm this; retry with the same id")]
    Inbox(#[source] InboxError),
    #[error("the recipient's inbox is full ({}); nothing was stored", .0.as_str())]
    InboxFull(Refusal),
    #[error("this message id was already used by another sender for this user")]
    IdTaken,
    #[error("the room history could not confirm this; retry")]
    History(#[source] HistoryError),
    #[error("the room history moved on during the recovery; join again")]
    HistoryGap,
}

/// What a direct send did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub id: String,
    /// Whether the recipient had a connection anywhere; `None` for a duplicate
    /// (nothing was delivered now).
    pub online: Option<bool>,
    /// The same sender already stored this id, unacked: nothing was stored
    /// or delivered again.
    pub duplicate: bool,
}

/// One wsgate process's message logic.
pub struct Node {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    hub: Arc<Hub>,
    broker: Arc<dyn Broker>,
    inbox: Arc<dyn Inbox>,
    history: Arc<dyn History>,
    /// Where accepted messages are written for `message.*` webhooks.
    webhooks: Option<Webhooks>,
    /// Direct messages whose live publish failed, published again.
    republish: Arc<Republisher>,
}

impl Node {
    /// Builds a node and attaches it to its broker, inbox and room history.
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        hub: Arc<Hub>,
        broker: Arc<dyn Broker>,
        inbox: Arc<dyn Inbox>,
        history: Arc<dyn History>,
        webhooks: Option<Webhooks>,
    ) -> Arc<Node> {
        let republish = Arc::new(Republisher::default());
        tokio::spawn(Republisher::run(
            Arc::downgrade(&republish),
            broker.clone(),
            metrics.clone(),
        ));
        let node = Arc::new(Node {
            config,
            metrics,
            hub,
            broker,
            inbox,
            history,
            webhooks,
            republish,
        });
        let sink: Arc<dyn BusSink> = node.clone();
        node.broker.start(Arc::downgrade(&sink));
        node.inbox.start();
        node.history.start();
        node
    }

    /// This node's instance ID.
    pub fn id(&self) -> &str {
        &self.config.node_id
    }

    /// True while the broker can route: connected and subscribed.
    pub fn cluster_up(&self) -> bool {
        self.broker.is_up()
    }

    /// A new connection of `user`, with an outbox of `outbox-size` frames.
    pub fn new_conn(&self, user: &str) -> Arc<Conn> {
        Conn::new(self.hub.next_id(), Arc::from(user), self.config.outbox_size)
    }

    fn new_message(&self, kind: Kind, from: &str, content: Content) -> MessageFrame {
        MessageFrame {
            id: Uuid::now_v7().to_string(),
            kind,
            from: from.to_owned(),
            to: None,
            room: None,
            content,
            time: now_ms(),
            replay: false,
            offset: None,
            epoch: None,
        }
    }

    fn message_event(message: MessageFrame) -> BusEvent {
        let accepted_ms = Some(message.time);
        BusEvent::Frame {
            frame: ServerFrame::Message(message),
            accepted_ms,
        }
    }

    /// A direct message: stored in the recipient's inbox within its limits,
    /// then delivered live to their connections on every node. `id` is the
    /// client's (idempotent: a repeat from the same sender while unacked is
    /// a duplicate, neither stored nor delivered again); `None` = a new
    /// UUIDv7. A store that `WAIT` did not confirm is still delivered live
    /// before the sender hears `unavailable`, so the retry that answers
    /// `duplicate` has nothing left to deliver.
    pub async fn send_direct(
        &self,
        sender: Sender<'_>,
        from: &str,
        to: &str,
        content: Content,
        id: Option<String>,
    ) -> Result<Sent, NodeError> {
        let mut message = self.new_message(Kind::Direct, from, content);
        if let Some(id) = id {
            message.id = id;
        }
        message.to = Some(to.to_owned());
        let trimmed = match self.inbox.store(to, sender, &message).await {
            Ok(Stored::New { trimmed }) => trimmed,
            Ok(Stored::Duplicate) => {
                return Ok(Sent {
                    id: message.id,
                    online: None,
                    duplicate: true,
                })
            }
            Err(InboxError::Unconfirmed(cause)) => {
                // In the primary's inbox, not yet on the replicas: the
                // recipient gets it live now (it may see it again if a
                // failover loses it and the retry stores it anew; clients
                // drop a repeated id), the sender retries until confirmed.
                self.metrics.published(Kind::Direct);
                self.deliver_direct(to, message).await;
                return Err(self.inbox_error(InboxError::Unconfirmed(cause)));
            }
            Err(e) => return Err(self.inbox_error(e)),
        };
        self.metrics.inbox_stored.inc();
        self.metrics.inbox_dropped_trimmed.inc_by(trimmed);
        self.metrics.published(Kind::Direct);
        if let Some(hooks) = &self.webhooks {
            hooks.message(&message);
        }
        let id = message.id.clone();
        let online = self.deliver_direct(to, message).await;
        Ok(Sent {
            id,
            online: Some(online),
            duplicate: false,
        })
    }

    /// The live half of a direct message (it is in the inbox already):
    /// local connections and the nodes that hold the recipient; a failed
    /// publish is queued for a retry (`republish.rs`), and the inbox replays
    /// it at the next connect whatever happens. Whether the recipient had a
    /// connection anywhere.
    async fn deliver_direct(&self, to: &str, message: MessageFrame) -> bool {
        let route = Route::User(to.to_owned());
        let event = Self::message_event(message);
        if self.republish.is_pending() {
            // Behind what waits for a republish, in order (`republish.rs`).
            return self.emit_later(route, event) > 0;
        }
        let sent = self.emit(route, event, None).await;
        let remote = match sent.remote {
            Ok(n) => n,
            Err(_) => {
                if let Some(envelope) = sent.unsent {
                    self.republish.push(envelope, &self.metrics);
                }
                0
            }
        };
        sent.local > 0 || remote > 0
    }

    /// Maps (and counts) a failed inbox store.
    fn inbox_error(&self, e: InboxError) -> NodeError {
        match e {
            InboxError::Refused(r) => {
                self.metrics.inbox_refused(match r {
                    Refusal::Full => InboxRefused::Full,
                    Refusal::SenderShare => InboxRefused::SenderShare,
                    Refusal::Bytes => InboxRefused::Bytes,
                });
                NodeError::InboxFull(r)
            }
            InboxError::IdTaken => NodeError::IdTaken,
            InboxError::RedisMemory => {
                self.metrics.inbox_refused(InboxRefused::RedisMemory);
                NodeError::Inbox(e)
            }
            e => {
                self.metrics.broker_error(BrokerOp::Inbox);
                debug!(error = %e, "Inbox store failed.");
                NodeError::Inbox(e)
            }
        }
    }

    /// A message to every connection of the cluster.
    pub async fn broadcast(&self, from: &str, content: Content) -> Result<String, NodeError> {
        if !self.broker.is_up() {
            return Err(NodeError::NotConnected);
        }
        let message = self.new_message(Kind::Broadcast, from, content);
        self.metrics.published(Kind::Broadcast);
        let id = message.id.clone();
        self.emit(Route::Broadcast, Self::message_event(message), None)
            .await
            .remote
            .map_err(NodeError::Cluster)?;
        Ok(id)
    }

    /// Connections of a user, cluster-wide.
    pub async fn user_connections(&self, user: &str) -> Result<u64, NodeError> {
        self.broker.user_status(user).await.map_err(|e| {
            self.metrics.broker_error(BrokerOp::Registry);
            NodeError::Cluster(e)
        })
    }

    /// One page of the user's unacked direct messages after `after`
    /// (0 = the start), oldest first: the replay reads the inbox this way.
    pub async fn inbox_page(&self, user: &str, after: u64) -> Result<Page, NodeError> {
        self.inbox.page(user, after).await.map_err(|e| {
            self.metrics.broker_error(BrokerOp::Inbox);
            NodeError::Inbox(e)
        })
    }

    /// The still-unacked messages among `ids` (ack redelivery).
    pub async fn inbox_get(
        &self,
        user: &str,
        ids: &[String],
    ) -> Result<Vec<MessageFrame>, NodeError> {
        self.inbox.get(user, ids).await.map_err(|e| {
            self.metrics.broker_error(BrokerOp::Inbox);
            NodeError::Inbox(e)
        })
    }

    /// Removes acked messages from `user`'s inbox and sends receipts to their senders.
    pub async fn ack(&self, user: &str, ids: &[String]) -> Result<(), NodeError> {
        let acked = self.inbox.ack(user, ids).await.map_err(|e| {
            self.metrics.broker_error(BrokerOp::Inbox);
            NodeError::Inbox(e)
        })?;
        self.metrics.inbox_acked.inc_by(acked.len() as u64);
        // Receipts are live-only; the ack itself has been applied. They go
        // out together (at most RECEIPTS_IN_FLIGHT publishes at once, issued
        // in order on the bus connection), so an ack of n ids costs about one
        // bus round trip, not n. A failed publish is counted by `emit`.
        let receipts = acked.into_iter().map(|a| {
            let receipt = BusEvent::Frame {
                frame: ServerFrame::Receipt {
                    id: a.id,
                    by: user.to_owned(),
                    status: "delivered".into(),
                },
                accepted_ms: None,
            };
            self.emit(Route::User(a.from), receipt, None)
        });
        let mut emitted = stream::iter(receipts).buffered(RECEIPTS_IN_FLIGHT);
        while let Some(e) = emitted.next().await {
            if e.remote.is_err() {
                debug!("Receipt not published.");
            }
        }
        Ok(())
    }

    /// Closes a user's connections on every node; returns how many there were.
    pub async fn disconnect_user(&self, user: &str) -> Result<u64, NodeError> {
        let total = self.user_connections(user).await?;
        let code = CloseCode::Policy.as_u16();
        self.emit(
            Route::User(user.to_owned()),
            BusEvent::Disconnect { code },
            None,
        )
        .await
        .remote
        .map_err(NodeError::Cluster)?;
        Ok(total)
    }

    /// Live nodes of the cluster.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, NodeError> {
        self.broker.set_local_connections(self.hub.len() as u64);
        let nodes = self.broker.nodes().await.map_err(NodeError::Cluster)?;
        self.metrics.cluster_nodes.set(nodes.len() as i64);
        Ok(nodes)
    }

    /// Refreshes the cluster gauges (`wsgate_broker_up`, the node list and
    /// `wsgate_cluster_nodes`); called periodically by the server.
    pub async fn refresh_gauges(&self) {
        self.metrics.broker_up.set(i64::from(self.broker.is_up()));
        // A failure is counted by the broker; the next period tries again.
        if let Err(e) = self.nodes().await {
            debug!(error = %e, "Node list refresh failed.");
        }
    }

    /// Registers a new connection with the cluster. An error means the
    /// registry could not record it (the broker retried, bounded): the
    /// caller closes the connection (1013) and still calls
    /// [`Node::disconnected`], which undoes the local part. A connection
    /// never stays open while the cluster shows its user offline.
    pub async fn connected(&self, conn: &Arc<Conn>) -> Result<(), NodeError> {
        self.hub.add(conn);
        self.metrics.connections.set(self.hub.len() as i64);
        self.broker.set_local_connections(self.hub.len() as u64);
        self.broker
            .user_connections(&conn.user, 1)
            .await
            .map_err(|e| {
                // Counted, not logged per connection: an outage would flood the log.
                self.metrics.broker_error(BrokerOp::Registry);
                debug!(error = %e, "Could not register a connection in the cluster registry.");
                NodeError::Cluster(e)
            })
    }

    /// Unregisters a closed connection: leaves its rooms, updates the registry.
    pub async fn disconnected(&self, conn: &Conn, rooms: &[Arc<str>]) {
        for room in rooms {
            // The connection is gone either way; a failed leave is counted
            // (presence) and the reaper or the next resync cleans the registry.
            if let Err(e) = self.leave(conn, room).await {
                debug!(room = %room, error = %e, "Leave at disconnect failed.");
            }
        }
        self.hub.remove(conn);
        self.metrics.connections.set(self.hub.len() as i64);
        self.broker.set_local_connections(self.hub.len() as u64);
        if self.broker.user_connections(&conn.user, -1).await.is_err() {
            self.metrics.broker_error(BrokerOp::Registry);
        }
    }

    /// Leaves the cluster: stops the broker's background work and removes
    /// this node's registrations (the end of the drain).
    pub async fn leave_cluster(&self) {
        self.broker.shutdown().await;
        if let Some(hooks) = &self.webhooks {
            hooks.shutdown().await;
        }
    }

    /// Writes an accepted room message (with its position) for `message.room`.
    fn room_message_event(
        &self,
        envelope: &wsgate_protocol::bus::Envelope,
        position: &wsgate_protocol::Position,
    ) {
        let (
            Some(hooks),
            BusEvent::Frame {
                frame: ServerFrame::Message(m),
                ..
            },
        ) = (&self.webhooks, &envelope.event)
        else {
            return;
        };
        let mut message = m.clone();
        message.offset = Some(position.offset);
        message.epoch = Some(position.epoch.clone());
        hooks.message(&message);
    }
}

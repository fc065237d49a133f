//! The node: what one wsgate process does with messages, rooms and presence.
//!
//! Sessions and the server API call the node; the node talks to the local
//! [`Hub`], to the cluster through a [`Broker`] and to an [`Inbox`], and never
//! knows which implementations it holds. It is also the [`BusSink`] that
//! delivers envelopes from other nodes to local connections.
//!
//! Order: one sender's requests are handled one at a time by its session, and
//! each publish is awaited before the next, so per-sender order holds on every
//! path (local outboxes are FIFO, Redis delivers in command order). After a
//! bus outage the node re-sends each local user's inbox before the first
//! envelope of the new subscription ([`BusSink::resubscribed`]): direct
//! messages published while it was away are not lost to live connections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;
use uuid::Uuid;
use wsgate_protocol::bus::{BusEvent, Envelope};
use wsgate_protocol::{CloseCode, Content, Kind, MessageFrame, PresenceEvent, ServerFrame, Target};

use crate::auth::{Authenticator, Identity};
use crate::clock::now_ms;
use crate::cluster::{Broker, BrokerError, BusSink, LocalState, NodeInfo, Route};
use crate::config::Config;
use crate::hub::{Conn, Delivery, Hub};
use crate::inbox::{Inbox, InboxError};
use crate::metrics::{BrokerOp, Metrics};

/// Why the node refused a request. Mapped to error codes in one place
/// ([`crate::session::error_code`]) and to HTTP statuses in [`crate::api`].
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("this connection has joined the most rooms allowed ({0})")]
    TooManyRooms(usize),
    #[error("the cluster cannot take this now; nothing was stored; retry")]
    Unavailable,
}

impl From<BrokerError> for NodeError {
    fn from(_: BrokerError) -> Self {
        NodeError::Unavailable
    }
}

impl From<InboxError> for NodeError {
    fn from(_: InboxError) -> Self {
        NodeError::Unavailable
    }
}

/// Inbox reads in flight when sessions catch up after a bus outage.
const CATCH_UP_CONCURRENCY: usize = 16;

/// One wsgate process.
pub struct Node {
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub hub: Hub,
    pub broker: Arc<dyn Broker>,
    pub inbox: Arc<dyn Inbox>,
    pub auth: Authenticator,
    pub started_at: u64,
    /// Upgraded sessions, awaited by the drain.
    pub sessions: TaskTracker,
    /// Cancelled when the node stops (background loops end).
    pub shutdown: CancellationToken,
    draining: AtomicBool,
}

impl Node {
    /// Builds a node and attaches it to its broker and inbox.
    pub fn new(
        config: Config,
        metrics: Arc<Metrics>,
        broker: Arc<dyn Broker>,
        inbox: Arc<dyn Inbox>,
        auth: Authenticator,
    ) -> Arc<Node> {
        let node = Arc::new(Node {
            config,
            metrics,
            hub: Hub::new(),
            broker,
            inbox,
            auth,
            started_at: now_ms(),
            sessions: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            draining: AtomicBool::new(false),
        });
        let sink: Arc<dyn BusSink> = node.clone();
        node.broker.start(Arc::downgrade(&sink));
        node.inbox.start();
        node
    }

    pub fn id(&self) -> &str {
        &self.config.node_id
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        self.metrics.draining.set(1);
    }

    /// Why the node is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.is_draining() {
            Some("draining")
        } else if !self.broker.is_up() {
            Some("broker (Redis) not connected or not subscribed")
        } else {
            None
        }
    }

    fn envelope(&self, event: BusEvent) -> Envelope {
        Envelope {
            origin: self.config.node_id.clone(),
            event,
        }
    }

    /// Publishes to other nodes, counting success and failure.
    async fn publish(&self, route: Route, event: BusEvent) -> Result<usize, BrokerError> {
        let env = self.envelope(event);
        match self.broker.publish(&route, &env).await {
            Ok(n) => {
                self.metrics.broker_published.inc_by(n as u64);
                Ok(n)
            }
            Err(e) => {
                self.metrics.broker_error(BrokerOp::Publish);
                debug!(error = %e, "Bus publish failed.");
                Err(e)
            }
        }
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
        }
    }

    /// A direct message: stored in the recipient's inbox, then delivered live to
    /// their connections on every node. Returns the id and whether they are online.
    pub async fn send_direct(
        &self,
        from: &str,
        to: &str,
        content: Content,
    ) -> Result<(String, bool), NodeError> {
        let mut message = self.new_message(Kind::Direct, from, content);
        message.to = Some(to.to_owned());
        let trimmed = self.inbox.store(to, &message).await.inspect_err(|e| {
            self.metrics.broker_error(BrokerOp::Inbox);
            debug!(error = %e, "Inbox store failed.");
        })?;
        self.metrics.inbox_stored.inc();
        self.metrics.inbox_dropped_trimmed.inc_by(trimmed);
        self.metrics.published(Kind::Direct);
        let id = message.id.clone();
        let time = message.time;
        let local = self.hub.to_user(
            to,
            &Delivery::message(ServerFrame::Message(message.clone()), Kind::Direct, time),
        );
        // Stored already: a failed live publish is replayed from the inbox later.
        let remote = self
            .publish(
                Route::User(to.to_owned()),
                BusEvent::Message {
                    message,
                    accepted_ms: time,
                },
            )
            .await
            .unwrap_or(0);
        Ok((id, local > 0 || remote > 0))
    }

    /// A room message from a member connection (or from the API when `conn` is None).
    pub async fn publish_room(
        &self,
        conn: Option<&Conn>,
        from: &str,
        room: &str,
        content: Content,
    ) -> Result<String, NodeError> {
        if let Some(conn) = conn {
            if !self.hub.is_member(conn.id, room) {
                return Err(NodeError::Forbidden("not a member of this room"));
            }
        }
        if !self.broker.is_up() {
            return Err(NodeError::Unavailable);
        }
        let mut message = self.new_message(Kind::Room, from, content);
        message.room = Some(room.to_owned());
        self.metrics.published(Kind::Room);
        let id = message.id.clone();
        let time = message.time;
        self.hub.to_room(
            room,
            &Delivery::message(ServerFrame::Message(message.clone()), Kind::Room, time),
            None,
        );
        self.publish(
            Route::Room(room.to_owned()),
            BusEvent::Message {
                message,
                accepted_ms: time,
            },
        )
        .await?;
        Ok(id)
    }

    /// A message to every connection of the cluster.
    pub async fn broadcast(&self, from: &str, content: Content) -> Result<String, NodeError> {
        if !self.broker.is_up() {
            return Err(NodeError::Unavailable);
        }
        let message = self.new_message(Kind::Broadcast, from, content);
        self.metrics.published(Kind::Broadcast);
        let id = message.id.clone();
        let time = message.time;
        self.hub.to_all(&Delivery::message(
            ServerFrame::Message(message.clone()),
            Kind::Broadcast,
            time,
        ));
        self.publish(
            Route::Broadcast,
            BusEvent::Message {
                message,
                accepted_ms: time,
            },
        )
        .await?;
        Ok(id)
    }

    /// Joins a connection to a room; returns the room's members cluster-wide.
    pub async fn join(
        &self,
        conn: &Arc<Conn>,
        identity: &Identity,
        room: &str,
        joined: usize,
    ) -> Result<Vec<String>, NodeError> {
        if !identity.may_join(room) {
            return Err(NodeError::Forbidden("the token does not allow this room"));
        }
        if self.hub.is_member(conn.id, room) {
            return Ok(self.broker.room_members(room).await?);
        }
        if joined >= self.config.max_rooms {
            return Err(NodeError::TooManyRooms(self.config.max_rooms));
        }
        let local = self.hub.join(conn, room);
        if local.room_first {
            self.metrics.rooms.set(self.hub.room_count() as i64);
        }
        if local.new {
            // Every join awaits the subscription: a concurrent first join may
            // still be subscribing, and the reply must mean "traffic is live".
            if let Err(e) = self.broker.room_interest(room, true).await {
                self.metrics.broker_error(BrokerOp::Subscribe);
                self.leave_local(conn, room).await;
                return Err(e.into());
            }
        }
        if local.user_first {
            match self.broker.room_member(room, &conn.user, true).await {
                Ok(true) => {
                    self.presence_event(room, PresenceEvent::Join, &conn.user, Some(conn.id))
                        .await
                }
                Ok(false) => {}
                Err(e) => {
                    self.metrics.broker_error(BrokerOp::Presence);
                    self.leave_local(conn, room).await;
                    return Err(e.into());
                }
            }
        }
        Ok(self.broker.room_members(room).await?)
    }

    async fn leave_local(&self, conn: &Conn, room: &str) -> crate::hub::LeaveLocal {
        let local = self.hub.leave(conn, room);
        if local.room_last {
            // Losing interest cannot fail for a reason the caller could act
            // on; a failed unsubscribe only leaves traffic this node drops.
            if self.broker.room_interest(room, false).await.is_err() {
                self.metrics.broker_error(BrokerOp::Subscribe);
            }
            self.metrics.rooms.set(self.hub.room_count() as i64);
        }
        local
    }

    /// Removes a connection from a room (idempotent).
    pub async fn leave(&self, conn: &Conn, room: &str) -> Result<(), NodeError> {
        let local = self.leave_local(conn, room).await;
        if local.user_last {
            match self.broker.room_member(room, &conn.user, false).await {
                Ok(true) => {
                    self.presence_event(room, PresenceEvent::Leave, &conn.user, None)
                        .await
                }
                Ok(false) => {}
                Err(e) => {
                    self.metrics.broker_error(BrokerOp::Presence);
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    async fn presence_event(
        &self,
        room: &str,
        event: PresenceEvent,
        user: &str,
        except: Option<u64>,
    ) {
        let frame = ServerFrame::Presence {
            room: room.to_owned(),
            event,
            user: user.to_owned(),
        };
        self.hub.to_room(room, &Delivery::control(frame), except);
        let bus = BusEvent::Presence {
            room: room.to_owned(),
            event,
            user: user.to_owned(),
        };
        // Presence events are live-only, like room messages: a failed publish
        // is counted by `publish` and not retried.
        if self
            .publish(Route::Room(room.to_owned()), bus)
            .await
            .is_err()
        {
            debug!(room = %room, "Presence event not published.");
        }
    }

    /// A typing indication, never stored.
    pub async fn typing(&self, conn: &Conn, target: &Target) -> Result<(), NodeError> {
        let (route, frame, event) = match target {
            Target::User(to) => (
                Route::User(to.clone()),
                ServerFrame::Typing {
                    from: conn.user.to_string(),
                    to: Some(to.clone()),
                    room: None,
                },
                BusEvent::Typing {
                    from: conn.user.to_string(),
                    to: Some(to.clone()),
                    room: None,
                },
            ),
            Target::Room(room) => {
                if !self.hub.is_member(conn.id, room) {
                    return Err(NodeError::Forbidden("not a member of this room"));
                }
                (
                    Route::Room(room.clone()),
                    ServerFrame::Typing {
                        from: conn.user.to_string(),
                        to: None,
                        room: Some(room.clone()),
                    },
                    BusEvent::Typing {
                        from: conn.user.to_string(),
                        to: None,
                        room: Some(room.clone()),
                    },
                )
            }
        };
        let delivery = Delivery::control(frame);
        match target {
            Target::User(to) => {
                self.hub.to_user(to, &delivery);
            }
            Target::Room(room) => {
                self.hub.to_room(room, &delivery, Some(conn.id));
            }
        }
        self.publish(route, event).await?;
        Ok(())
    }

    /// Members of a room, cluster-wide.
    pub async fn room_members(&self, room: &str) -> Result<Vec<String>, NodeError> {
        self.broker.room_members(room).await.map_err(|e| {
            self.metrics.broker_error(BrokerOp::Presence);
            e.into()
        })
    }

    /// Connections of a user, cluster-wide.
    pub async fn user_connections(&self, user: &str) -> Result<u64, NodeError> {
        self.broker.user_status(user).await.map_err(|e| {
            self.metrics.broker_error(BrokerOp::Registry);
            e.into()
        })
    }

    /// Removes acked messages from `user`'s inbox and sends receipts to their senders.
    pub async fn ack(&self, user: &str, ids: &[String]) -> Result<(), NodeError> {
        let acked = self.inbox.ack(user, ids).await.inspect_err(|_| {
            self.metrics.broker_error(BrokerOp::Inbox);
        })?;
        self.metrics.inbox_acked.inc_by(acked.len() as u64);
        for a in acked {
            let frame = ServerFrame::Receipt {
                id: a.id.clone(),
                by: user.to_owned(),
                status: "delivered".into(),
            };
            self.hub.to_user(&a.from, &Delivery::control(frame));
            let route = Route::User(a.from.clone());
            let event = BusEvent::Receipt {
                to: a.from,
                id: a.id,
                by: user.to_owned(),
            };
            // Receipts are live-only; the ack itself has been applied. A
            // failed publish is counted by `publish`.
            if self.publish(route, event).await.is_err() {
                debug!("Receipt not published.");
            }
        }
        Ok(())
    }

    /// Closes a user's connections on every node; returns how many there were.
    pub async fn disconnect_user(&self, user: &str) -> Result<u64, NodeError> {
        let total = self.user_connections(user).await?;
        let code = CloseCode::Policy;
        self.hub.kick_user(user, code);
        self.publish(
            Route::User(user.to_owned()),
            BusEvent::Disconnect {
                user: user.to_owned(),
                code: code.as_u16(),
            },
        )
        .await?;
        Ok(total)
    }

    /// Live nodes of the cluster.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, NodeError> {
        self.broker.set_local_connections(self.hub.len() as u64);
        let nodes = self.broker.nodes().await?;
        self.metrics.cluster_nodes.set(nodes.len() as i64);
        Ok(nodes)
    }

    /// Registers a new connection with the cluster.
    pub async fn connected(&self, conn: &Arc<Conn>) {
        self.hub.add(conn);
        self.metrics.connections.set(self.hub.len() as i64);
        self.broker.set_local_connections(self.hub.len() as u64);
        if let Err(e) = self.broker.user_connections(&conn.user, 1).await {
            // Counted, not logged per connection: an outage would flood the log.
            // The broker re-registers every local user when it reconnects.
            self.metrics.broker_error(BrokerOp::Registry);
            debug!(error = %e, "Could not register a connection in the cluster registry.");
        }
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
}

#[async_trait::async_trait]
impl BusSink for Node {
    fn deliver(&self, envelope: Envelope) {
        self.metrics.broker_received.inc();
        match envelope.event {
            BusEvent::Message {
                message,
                accepted_ms,
            } => {
                let kind = message.kind;
                let to = message.to.clone();
                let room = message.room.clone();
                let delivery = Delivery::message(ServerFrame::Message(message), kind, accepted_ms);
                match (kind, to, room) {
                    (Kind::Direct, Some(to), _) => {
                        self.hub.to_user(&to, &delivery);
                    }
                    (Kind::Room, _, Some(room)) => {
                        self.hub.to_room(&room, &delivery, None);
                    }
                    (Kind::Broadcast, _, _) => {
                        self.hub.to_all(&delivery);
                    }
                    _ => self.metrics.broker_error(BrokerOp::Decode),
                }
            }
            BusEvent::Presence { room, event, user } => {
                let frame = ServerFrame::Presence {
                    room: room.clone(),
                    event,
                    user,
                };
                self.hub.to_room(&room, &Delivery::control(frame), None);
            }
            BusEvent::Typing { from, to, room } => {
                let frame = Delivery::control(ServerFrame::Typing {
                    from,
                    to: to.clone(),
                    room: room.clone(),
                });
                if let Some(to) = to {
                    self.hub.to_user(&to, &frame);
                } else if let Some(room) = room {
                    self.hub.to_room(&room, &frame, None);
                }
            }
            BusEvent::Receipt { to, id, by } => {
                let frame = ServerFrame::Receipt {
                    id,
                    by,
                    status: "delivered".into(),
                };
                self.hub.to_user(&to, &Delivery::control(frame));
            }
            BusEvent::Disconnect { user, code } => {
                let code = CloseCode::ALL
                    .iter()
                    .copied()
                    .find(|c| c.as_u16() == code)
                    .unwrap_or(CloseCode::Policy);
                self.hub.kick_user(&user, code);
            }
        }
    }

    fn nodes_died(&self, leaves: Vec<(String, String)>) {
        let mut envelopes = Vec::with_capacity(leaves.len());
        for (room, user) in leaves {
            let frame = ServerFrame::Presence {
                room: room.clone(),
                event: PresenceEvent::Leave,
                user: user.clone(),
            };
            self.hub.to_room(&room, &Delivery::control(frame), None);
            let env = self.envelope(BusEvent::Presence {
                room: room.clone(),
                event: PresenceEvent::Leave,
                user,
            });
            envelopes.push((Route::Room(room), env));
        }
        // One task for the whole batch: this runs on the broker's reader and must not wait.
        let broker = self.broker.clone();
        tokio::spawn(async move {
            for (route, env) in envelopes {
                // Live-only presence, like every presence event.
                if let Err(e) = broker.publish(&route, &env).await {
                    debug!(error = %e, "Reaped leave not published.");
                }
            }
        });
    }

    fn local_state(&self) -> LocalState {
        LocalState {
            users: self
                .hub
                .users()
                .into_iter()
                .map(|(u, n)| (u, n as u64))
                .collect(),
            rooms: self
                .hub
                .room_names()
                .into_iter()
                .map(|r| {
                    let users = self.hub.room_users(&r);
                    (r, users)
                })
                .collect(),
        }
    }

    async fn resubscribed(&self) {
        // Direct messages published to this node while it was off the bus
        // wait only in the inboxes: send each local user's unacked messages
        // again (duplicates are dropped by id). They go through the outboxes
        // before any live message of the new subscription.
        let users = self.hub.users();
        futures_util::stream::iter(users)
            .for_each_concurrent(CATCH_UP_CONCURRENCY, |(user, _)| async move {
                match self.inbox.pending(&user).await {
                    Ok(messages) => {
                        self.metrics.inbox_replayed.inc_by(messages.len() as u64);
                        for mut m in messages {
                            m.replay = true;
                            let frame = ServerFrame::Message(m);
                            self.hub
                                .to_user(&user, &Delivery::message(frame, Kind::Direct, now_ms()));
                        }
                    }
                    Err(e) => {
                        self.metrics.broker_error(BrokerOp::Inbox);
                        debug!(user = %user, error = %e, "Inbox catch-up failed; the messages stay stored.");
                    }
                }
            })
            .await;
    }
}

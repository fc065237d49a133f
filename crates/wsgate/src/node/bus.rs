//! Where events go: [`Node::emit`] delivers an event to the local
//! connections on its route and publishes it to the other nodes on that
//! route; the [`BusSink`] side delivers what other nodes published with the
//! same local delivery. An event is built once, by the node that accepted
//! it, and every node writes the same frame.
//!
//! Local delivery never waits: each connection's outbox is bounded and a
//! full one closes its connection with 1013 (see [`crate::hub::outbox`]).
//!
//! After a bus outage ([`BusSink::resubscribed`]) the node catches up
//! before the first envelope of the new subscription: each local user's
//! inbox, and each local room's history after the last message it fanned
//! out here (at most `history-size` per room, `replay: true`), so members
//! that stayed connected through the outage miss nothing the history
//! kept. Repeats of what the new subscription then brings are dropped by
//! offset in the hub.

use std::sync::Arc;

use futures_util::StreamExt;
use tracing::debug;
use wsgate_protocol::bus::{BusEvent, Envelope, Route};
use wsgate_protocol::{CloseCode, Kind, Position, ServerFrame};

use super::Node;
use crate::clock::now_ms;
use crate::cluster::{BrokerError, BusSink, LocalView};
use crate::history::PAGE_MAX;
use crate::hub::{ConnId, Hub, Outgoing};
use crate::metrics::BrokerOp;

/// The read-only view of the hub a broker is built with ([`LocalView`]).
pub struct HubView(pub Arc<Hub>);

impl LocalView for HubView {
    fn rooms(&self) -> Vec<(String, Vec<String>)> {
        self.0
            .room_names()
            .into_iter()
            .map(|r| {
                let users = self.0.room_users(&r);
                (r, users)
            })
            .collect()
    }

    fn has_room(&self, room: &str) -> bool {
        self.0.has_room(room)
    }
}

/// Inbox reads in flight when sessions catch up after a bus outage.
const CATCH_UP_CONCURRENCY: usize = 16;

/// What [`Node::emit`] did.
pub(super) struct Emitted {
    /// Local connections the event was queued for (or closed, for a disconnect).
    pub local: usize,
    /// Other nodes reached, or why the publish failed (counted already).
    pub remote: Result<usize, BrokerError>,
    /// The envelope, when its publish failed (to publish it again).
    pub unsent: Option<Envelope>,
}

impl Node {
    /// Delivers `event` to the local connections on `route` (all but
    /// `except`), then publishes it to the other nodes on that route.
    pub(super) async fn emit(
        &self,
        route: Route,
        event: BusEvent,
        except: Option<ConnId>,
    ) -> Emitted {
        let local = self.deliver_local(&route, &event, except);
        let envelope = Envelope {
            origin: self.config.node_id.clone(),
            route,
            event,
            sent_ms: Some(now_ms()),
        };
        match self.broker.publish(&envelope).await {
            Ok(n) => {
                self.metrics.broker_published.inc_by(n as u64);
                Emitted {
                    local,
                    remote: Ok(n),
                    unsent: None,
                }
            }
            Err(e) => {
                self.metrics.broker_error(BrokerOp::Publish);
                debug!(error = %e, "Bus publish failed.");
                Emitted {
                    local,
                    remote: Err(e),
                    unsent: Some(envelope),
                }
            }
        }
    }

    /// [`Node::emit`] for a direct message that must queue behind earlier
    /// failed publishes: delivered locally now, published by the
    /// republisher in order. Returns the local connections reached.
    pub(super) fn emit_later(&self, route: Route, event: BusEvent) -> usize {
        let local = self.deliver_local(&route, &event, None);
        let envelope = Envelope {
            origin: self.config.node_id.clone(),
            route,
            event,
            sent_ms: Some(now_ms()),
        };
        self.republish.push(envelope, &self.metrics);
        local
    }

    /// Delivers an event to this node's connections on `route`; returns how
    /// many it reached.
    fn deliver_local(&self, route: &Route, event: &BusEvent, except: Option<ConnId>) -> usize {
        match event {
            BusEvent::Frame { frame, accepted_ms } => {
                let out = match frame {
                    ServerFrame::Message(m) => {
                        Outgoing::message(frame.clone(), m.kind, accepted_ms.unwrap_or(m.time))
                    }
                    _ => Outgoing::control(frame.clone()),
                };
                match route {
                    Route::User(user) => self.hub.to_user(user, &out),
                    Route::Room(room) => self.hub.to_room(room, &out, except),
                    Route::Broadcast => self.hub.to_all(&out),
                }
            }
            BusEvent::Disconnect { code } => {
                let code = CloseCode::from_u16(*code).unwrap_or(CloseCode::Policy);
                match route {
                    Route::User(user) => self.hub.kick_user(user, code),
                    // Only users are disconnected; anything else is not ours.
                    Route::Room(_) | Route::Broadcast => {
                        self.metrics.broker_error(BrokerOp::Decode);
                        0
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl BusSink for Node {
    fn deliver(&self, envelope: Envelope) {
        self.metrics.broker_received.inc();
        if let Some(sent) = envelope.sent_ms {
            self.metrics.bus_lag(sent);
        }
        self.deliver_local(&envelope.route, &envelope.event, None);
    }

    async fn resubscribed(&self) {
        // Direct messages published to this node while it was off the bus
        // wait only in the inboxes: send each local user's unacked messages
        // again (duplicates are dropped by id). They go through the outboxes
        // before any live message of the new subscription.
        let users = self.hub.users();
        futures_util::stream::iter(users)
            .for_each_concurrent(CATCH_UP_CONCURRENCY, |(user, _)| async move {
                self.catch_up_inbox(&user).await;
            })
            .await;
        let rooms = self.hub.room_positions();
        futures_util::stream::iter(rooms)
            .for_each_concurrent(CATCH_UP_CONCURRENCY, |(room, last)| async move {
                self.catch_up_room(&room, last).await;
            })
            .await;
    }

    async fn rooms_resubscribed(&self, rooms: &[String]) {
        let rooms: std::collections::HashSet<&str> = rooms.iter().map(String::as_str).collect();
        let positions = self.hub.room_positions();
        let back = positions
            .into_iter()
            .filter(|(r, _)| rooms.contains(r.as_str()));
        futures_util::stream::iter(back)
            .for_each_concurrent(CATCH_UP_CONCURRENCY, |(room, last)| async move {
                self.catch_up_room(&room, last).await;
            })
            .await;
    }
}

impl Node {
    /// Queues a local user's unacked messages (`replay: true`) for their
    /// connections, read page by page (each page at most
    /// [`crate::inbox::PAGE_MESSAGES`]); the outboxes' bound applies (a
    /// connection that cannot take them is closed with 1013 and replays at
    /// its reconnect).
    async fn catch_up_inbox(&self, user: &str) {
        let mut after = 0;
        loop {
            let page = match self.inbox.page(user, after).await {
                Ok(page) => page,
                Err(e) => {
                    self.metrics.broker_error(BrokerOp::Inbox);
                    debug!(user = %user, error = %e, "Inbox catch-up failed; the messages stay stored.");
                    return;
                }
            };
            self.metrics
                .inbox_replayed
                .inc_by(page.messages.len() as u64);
            for mut m in page.messages {
                m.replay = true;
                let frame = ServerFrame::Message(m);
                let out = Outgoing::message(frame, Kind::Direct, now_ms());
                if self.hub.to_user(user, &out) == 0 {
                    // Every connection of the user is gone or closing.
                    return;
                }
            }
            match page.next {
                Some(next) => after = next,
                None => return,
            }
        }
    }

    /// Sends a room's local members the kept messages after `last` (what
    /// this node missed while off the bus), page by page, at most
    /// `history-size`. Stops at a new epoch (the history before it is gone).
    async fn catch_up_room(&self, room: &str, last: Position) {
        let mut after = last.offset;
        let mut left = self.config.history_size;
        let mut sent = 0;
        while left > 0 {
            let page = match self.history.read(room, after, PAGE_MAX.min(left)).await {
                Ok(page) => page,
                Err(e) => {
                    self.metrics.broker_error(BrokerOp::History);
                    debug!(room = %room, error = %e, "Room catch-up failed.");
                    break;
                }
            };
            if page.position.epoch != last.epoch || page.messages.is_empty() {
                break;
            }
            left = left.saturating_sub(page.messages.len());
            for mut m in page.messages {
                after = m.offset.unwrap_or(after);
                m.replay = true;
                let time = m.time;
                let out = Outgoing::message(ServerFrame::Message(m), Kind::Room, time);
                self.hub.to_room(room, &out, None);
                sent += 1;
            }
            if after >= page.position.offset {
                break;
            }
        }
        if sent > 0 {
            debug!(room = %room, messages = sent, "Room caught up after a bus outage.");
        }
    }
}

//! Rooms: join and leave (local membership, the room's subscription, the
//! cluster-wide member list), presence events and queries, and typing.

use std::sync::Arc;

use tracing::debug;
use wsgate_protocol::bus::{BusEvent, Route};
use wsgate_protocol::{PresenceEvent, ServerFrame, Target};

use super::{Node, NodeError};
use crate::auth::Identity;
use crate::hub::{Conn, ConnId, LeaveLocal};
use crate::metrics::BrokerOp;

impl Node {
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
            return self.room_members(room).await;
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
                return Err(NodeError::Cluster(e));
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
                    return Err(NodeError::Cluster(e));
                }
            }
        }
        self.room_members(room).await
    }

    async fn leave_local(&self, conn: &Conn, room: &str) -> LeaveLocal {
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
                    return Err(NodeError::Cluster(e));
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
        except: Option<ConnId>,
    ) {
        let frame = ServerFrame::Presence {
            room: room.to_owned(),
            event,
            user: user.to_owned(),
        };
        let event = BusEvent::Frame {
            frame,
            accepted_ms: None,
        };
        // Presence events are live-only, like room messages: a failed publish
        // is counted by `emit` and not retried.
        if self
            .emit(Route::Room(room.to_owned()), event, except)
            .await
            .remote
            .is_err()
        {
            debug!(room = %room, "Presence event not published.");
        }
    }

    /// A typing indication, never stored.
    pub async fn typing(&self, conn: &Conn, target: &Target) -> Result<(), NodeError> {
        let from = conn.user.to_string();
        let (route, frame, except) = match target {
            Target::User(to) => (
                Route::User(to.clone()),
                ServerFrame::Typing {
                    from,
                    to: Some(to.clone()),
                    room: None,
                },
                None,
            ),
            Target::Room(room) => {
                if !self.hub.is_member(conn.id, room) {
                    return Err(NodeError::Forbidden("not a member of this room"));
                }
                (
                    Route::Room(room.clone()),
                    ServerFrame::Typing {
                        from,
                        to: None,
                        room: Some(room.clone()),
                    },
                    Some(conn.id),
                )
            }
        };
        let event = BusEvent::Frame {
            frame,
            accepted_ms: None,
        };
        self.emit(route, event, except)
            .await
            .remote
            .map_err(NodeError::Cluster)?;
        Ok(())
    }

    /// Members of a room, cluster-wide.
    pub async fn room_members(&self, room: &str) -> Result<Vec<String>, NodeError> {
        self.broker.room_members(room).await.map_err(|e| {
            self.metrics.broker_error(BrokerOp::Presence);
            NodeError::Cluster(e)
        })
    }
}

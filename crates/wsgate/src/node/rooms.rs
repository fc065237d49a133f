//! Rooms: room messages through the room history, join (with the recovery
//! of what a returning member missed, contract 5.4) and leave (local
//! membership, the room's subscription, the cluster-wide member list),
//! presence events and queries, and typing.
//!
//! A room message goes to the [`History`](crate::history::History), which
//! gives it its offset and publishes it to every node with a member, this
//! one included (not through [`Node::emit`]): every node delivers a room's
//! messages from that one path, in offset order. A join holds the room's
//! live frames back for the joining connection (a gate in its outbox,
//! [`crate::hub::outbox`]) from before it subscribes until its reply, and
//! with `since` the replay, are out; then [`Node::go_live`] queues what was
//! held, minus the offsets the client has.
//!
//! Large rooms: presence events and member lists only go to rooms of at most
//! `presence-max-members` users. Above that a join or leave costs O(1) in the
//! room's size (the count is `HLEN`, no member list is fetched or sent, no
//! event fans out), and members are listed in pages ([`Node::room_page`]).

use std::sync::Arc;

use tracing::debug;
use wsgate_protocol::bus::{BusEvent, Envelope, Route};
use wsgate_protocol::{Content, Kind, MessageFrame, Position, PresenceEvent, ServerFrame, Target};

use super::{Node, NodeError};
use crate::auth::Identity;
use crate::clock::now_ms;
use crate::history::{recoverable, HistoryError, Page, PAGE_MAX};
use crate::hub::{Conn, ConnId, LeaveLocal, Pushed};
use crate::metrics::BrokerOp;

/// A room as a join reply or presence query shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomView {
    /// Users in the room, cluster-wide.
    pub member_count: u64,
    /// Their ids, only while `member_count` <= `presence-max-members`.
    pub members: Option<Vec<String>>,
}

/// What a join found.
#[derive(Debug)]
pub struct Joined {
    /// The room's member count, and its members while it is small.
    pub view: RoomView,
    /// The room's position when the connection joined.
    pub position: Position,
    /// With `since`: whether the missed messages follow.
    pub recovered: Option<bool>,
    /// The first page of the replay (offsets after `since`, at most
    /// [`PAGE_MAX`]). When `recovered` is true the caller writes the reply,
    /// this page and the rest ([`Node::replay_page`]) and then calls
    /// [`Node::go_live`]; otherwise the room is live for the connection already.
    pub replay: Vec<MessageFrame>,
}

impl Node {
    /// A room message from a member connection (or from the API when `conn`
    /// is None): the history gives it its offset and publishes it to every
    /// member connection, the sender's included. Returns its id and position.
    pub async fn publish_room(
        &self,
        conn: Option<&Conn>,
        from: &str,
        room: &str,
        content: Content,
    ) -> Result<(String, Position), NodeError> {
        if let Some(conn) = conn {
            if !self.hub.is_member(conn.id, room) {
                return Err(NodeError::Forbidden("not a member of this room"));
            }
        }
        if !self.broker.is_up() {
            return Err(NodeError::NotConnected);
        }
        let mut message = self.new_message(Kind::Room, from, content);
        message.room = Some(room.to_owned());
        let id = message.id.clone();
        let envelope = Envelope {
            origin: self.config.node_id.clone(),
            route: Route::Room(room.to_owned()),
            event: Self::message_event(message),
            sent_ms: Some(now_ms()),
        };
        let position = self.history.publish(room, &envelope).await.map_err(|e| {
            self.metrics.broker_error(BrokerOp::Publish);
            debug!(error = %e, "Room history publish failed.");
            NodeError::History(e)
        })?;
        self.metrics.published(Kind::Room);
        self.room_message_event(&envelope, &position);
        Ok((id, position))
    }

    /// Joins a connection to a room: subscribes, registers the membership,
    /// then reads the room's position (and with `since`, the first page of
    /// what the connection missed) while the room's live frames for this
    /// connection are held back, so nothing is skipped or repeated between
    /// the replay and the live stream.
    pub async fn join(
        &self,
        conn: &Arc<Conn>,
        identity: &Identity,
        room: &str,
        joined: usize,
        since: Option<&Position>,
    ) -> Result<Joined, NodeError> {
        if !identity.may_join(room) {
            return Err(NodeError::Forbidden("the token does not allow this room"));
        }
        if self.hub.is_member(conn.id, room) {
            // Live in the room already: nothing to replay, and recovered
            // only when nothing was missed.
            let view = self.room_view(room).await?;
            let position = self
                .history
                .read(room, u64::MAX, 0)
                .await
                .map_err(|e| self.history_failed(e))?
                .position;
            let recovered = since.map(|s| *s == position);
            return Ok(Joined {
                view,
                position,
                recovered,
                replay: Vec::new(),
            });
        }
        if joined >= self.config.max_rooms {
            return Err(NodeError::TooManyRooms(self.config.max_rooms));
        }
        conn.hold_room(room);
        match self.join_held(conn, room, since).await {
            Ok(j) => Ok(j),
            Err(e) => {
                conn.release_room(room, None);
                if let Err(leave) = self.leave(conn, room).await {
                    debug!(error = %leave, "Undoing a failed join failed.");
                }
                Err(e)
            }
        }
    }

    /// The part of [`Node::join`] after the room's frames are held back; on
    /// an error the caller undoes the membership.
    async fn join_held(
        &self,
        conn: &Arc<Conn>,
        room: &str,
        since: Option<&Position>,
    ) -> Result<Joined, NodeError> {
        let local = self.hub.join(conn, room);
        if local.room_first {
            self.metrics.rooms.set(self.hub.room_count() as i64);
        }
        if local.new {
            // Every join awaits the subscription: a concurrent first join may
            // still be subscribing, and the reply must mean "traffic is live".
            if let Err(e) = self.broker.room_interest(room, true).await {
                self.metrics.broker_error(BrokerOp::Subscribe);
                return Err(NodeError::Cluster(e));
            }
        }
        let mut announce = false;
        if local.user_first {
            match self.broker.room_member(room, &conn.user, true).await {
                Ok(changed) => announce = changed,
                Err(e) => {
                    self.metrics.broker_error(BrokerOp::Presence);
                    return Err(NodeError::Cluster(e));
                }
            }
        }
        let view = self.room_view(room).await?;
        // Only a room small enough to list gets the event (O(1) above it).
        if announce && view.members.is_some() {
            self.presence_event(room, PresenceEvent::Join, &conn.user, Some(conn.id))
                .await;
        }
        // Subscribed: every message after this read reaches the gate.
        let (after, limit) = match since {
            Some(s) => (s.offset, PAGE_MAX.min(self.config.history_size)),
            None => (u64::MAX, 0),
        };
        let page = self
            .history
            .read(room, after, limit)
            .await
            .map_err(|e| self.history_failed(e))?;
        let recovered = since.map(|s| recoverable(s, &page, self.config.history_size));
        let Page {
            position,
            mut messages,
        } = page;
        if let Some(r) = recovered {
            self.metrics.history_recovery(r);
        }
        let replaying =
            recovered == Some(true) && since.is_some_and(|s| s.offset < position.offset);
        if replaying {
            messages.retain(|m| m.offset.is_some_and(|o| o <= position.offset));
        } else {
            messages.clear();
            // Nothing to replay: live from the position named in the reply.
            self.go_live(conn, room, &position);
        }
        Ok(Joined {
            view,
            position,
            recovered,
            replay: messages,
        })
    }

    /// The replay page after offset `after`, up to the join's position
    /// `upto`. [`NodeError::HistoryGap`] when the history no longer holds
    /// the next message (trimmed or expired during the recovery).
    pub async fn replay_page(
        &self,
        room: &str,
        after: u64,
        upto: &Position,
    ) -> Result<Vec<MessageFrame>, NodeError> {
        let want = usize::try_from(upto.offset.saturating_sub(after))
            .unwrap_or(usize::MAX)
            .min(PAGE_MAX);
        let page = self
            .history
            .read(room, after, want)
            .await
            .map_err(|e| self.history_failed(e))?;
        let contiguous = page.position.epoch == upto.epoch
            && !page.messages.is_empty()
            && page
                .messages
                .iter()
                .zip(after + 1..)
                .all(|(m, o)| m.offset == Some(o));
        if !contiguous {
            return Err(NodeError::HistoryGap);
        }
        let mut messages = page.messages;
        messages.retain(|m| m.offset.is_some_and(|o| o <= upto.offset));
        Ok(messages)
    }

    /// Ends a join's hold on the room: the live frames held meanwhile are
    /// queued, except the messages up to `replayed_upto` (the reply's
    /// position: the replay carried those, or the client had them).
    pub fn go_live(&self, conn: &Conn, room: &str, replayed_upto: &Position) {
        self.hub.seed_room_position(room, replayed_upto);
        if conn.release_room(room, Some(replayed_upto)) == Pushed::SlowConsumer {
            debug!(user = %conn.user, "Slow consumer: live room frames overflowed after a join.");
        }
    }

    /// A room's position and at most `limit` kept messages after `since`
    /// (the server API's and gRPC's history read).
    pub async fn room_history(
        &self,
        room: &str,
        since: u64,
        limit: usize,
    ) -> Result<Page, NodeError> {
        self.history
            .read(room, since, limit.min(PAGE_MAX))
            .await
            .map_err(|e| self.history_failed(e))
    }

    /// A failed history read: counted, logged at debug, `unavailable`.
    fn history_failed(&self, e: HistoryError) -> NodeError {
        self.metrics.broker_error(BrokerOp::History);
        debug!(error = %e, "Room history read failed.");
        NodeError::History(e)
    }

    async fn leave_local(&self, conn: &Conn, room: &str) -> LeaveLocal {
        conn.release_room(room, None);
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
                    if self.room_size(room).await? <= self.config.presence_max_members as u64 {
                        self.presence_event(room, PresenceEvent::Leave, &conn.user, None)
                            .await;
                    }
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

    /// Users in a room, cluster-wide.
    async fn room_size(&self, room: &str) -> Result<u64, NodeError> {
        self.broker.room_size(room).await.map_err(|e| {
            self.metrics.broker_error(BrokerOp::Presence);
            NodeError::Cluster(e)
        })
    }

    /// A room's member count, and its members while it is small enough
    /// (`presence-max-members`): O(1) in the room's size above that.
    pub async fn room_view(&self, room: &str) -> Result<RoomView, NodeError> {
        let member_count = self.room_size(room).await?;
        let members = if member_count <= self.config.presence_max_members as u64 {
            Some(self.room_members(room).await?)
        } else {
            None
        };
        Ok(RoomView {
            member_count,
            members,
        })
    }

    /// One page of a room's members (server API): at most `limit` from
    /// `cursor`, the next page's cursor, and the member count.
    pub async fn room_page(
        &self,
        room: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(u64, Vec<String>, Option<String>), NodeError> {
        let member_count = self.room_size(room).await?;
        let (members, next) = self
            .broker
            .room_members_page(room, cursor, limit)
            .await
            .map_err(|e| {
                self.metrics.broker_error(BrokerOp::Presence);
                NodeError::Cluster(e)
            })?;
        Ok((member_count, members, next))
    }
}

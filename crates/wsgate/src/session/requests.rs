//! Request dispatch: one decoded client frame becomes a call on the node
//! and a reply, nothing, or a [`RequestError`] (mapped to its error code in
//! [`crate::errors`], where it is defined). Split from the connection loop in `mod.rs`, which owns
//! reading, writing and timers.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use wsgate_protocol::{ClientFrame, ClientRequest, Reply, ServerFrame, Target};

use super::limits::token_deadline;
use super::recovery::Recovery;
use super::{Handled, Session};
use crate::errors::RequestError;
use crate::inbox::Sender;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn handle(&mut self, request: ClientRequest) -> Handled {
        let ClientRequest { r#ref, frame } = request;
        let node = self.env.node.clone();
        let user = self.conn.user.clone();
        let mut reply = Reply::ok(r#ref.clone());
        match frame {
            ClientFrame::Join { room, since } => {
                let joined = node
                    .join(
                        &self.conn,
                        &self.identity,
                        &room,
                        self.rooms().len(),
                        since.as_ref(),
                    )
                    .await?;
                if !self.rooms().iter().any(|r| **r == *room) {
                    self.busy().rooms.push(Arc::from(room.as_str()));
                }
                reply.room = Some(room.clone());
                reply.member_count = Some(joined.view.member_count);
                reply.members = joined.view.members;
                reply.epoch = Some(joined.position.epoch.clone());
                reply.offset = Some(joined.position.offset);
                reply.recovered = joined.recovered;
                if !joined.replay.is_empty() {
                    // The replay follows the reply: see `recovery.rs`.
                    self.queue(&ServerFrame::Reply(reply));
                    self.recovery = Some(Box::new(Recovery {
                        room,
                        upto: joined.position,
                        page: joined.replay,
                    }));
                    return Ok(None);
                }
            }
            ClientFrame::Leave { room } => {
                node.leave(&self.conn, &room).await?;
                if let Some(busy) = self.busy.as_deref_mut() {
                    busy.rooms.retain(|r| **r != *room);
                }
                reply.room = Some(room);
            }
            ClientFrame::Send { to, content, id } => {
                let sent = node
                    .send_direct(Sender::User(&user), &user, &to, content, id)
                    .await?;
                reply.id = Some(sent.id);
                reply.online = sent.online;
                reply.duplicate = sent.duplicate.then_some(true);
            }
            ClientFrame::Publish { room, content } => {
                let (id, position) = node
                    .publish_room(Some(&self.conn), &user, &room, content)
                    .await?;
                reply.id = Some(id);
                reply.offset = Some(position.offset);
            }
            ClientFrame::Broadcast { content } => {
                if !self.identity.can_broadcast {
                    return Err(RequestError::Forbidden(
                        "the token lacks the `broadcast` capability",
                    ));
                }
                reply.id = Some(node.broadcast(&user, content).await?);
            }
            ClientFrame::Ack { ids } => {
                node.ack(&user, &ids).await?;
                if let Some(busy) = self.busy.as_deref_mut() {
                    busy.unacked.retain(|(id, _)| !ids.contains(id));
                }
                return Ok(r#ref.map(|_| reply));
            }
            ClientFrame::Typing { target } => {
                node.typing(&self.conn, &target).await?;
                return Ok(r#ref.map(|_| reply));
            }
            ClientFrame::Presence {
                target: Target::Room(room),
            } => {
                // Membership is not needed, but a room the token's `rooms`
                // claim does not allow is not the user's to look into.
                if !self.identity.may_join(&room) {
                    return Err(RequestError::Forbidden(
                        "the token does not allow this room",
                    ));
                }
                let view = node.room_view(&room).await?;
                reply.member_count = Some(view.member_count);
                reply.members = view.members;
                reply.room = Some(room);
            }
            ClientFrame::Presence {
                target: Target::User(u),
            } => {
                let n = node.user_connections(&u).await?;
                reply.user = Some(u);
                reply.online = Some(n > 0);
                reply.connections = Some(n.min(u32::MAX as u64) as u32);
            }
            ClientFrame::Ping => {
                self.queue(&ServerFrame::Pong { r#ref });
                return Ok(None);
            }
            ClientFrame::Refresh { token } => {
                let left = self.refresh(&token).await?;
                if !left.is_empty() {
                    // A reply even without `ref`: the client must learn
                    // which rooms it is no longer in.
                    reply.left = Some(left);
                    return Ok(Some(reply));
                }
                return Ok(r#ref.map(|_| reply));
            }
        }
        Ok(Some(reply))
    }

    /// Replaces the token; the rooms the new `rooms` claim no longer allows
    /// are left, with a `leave`'s side effects (presence, member counts,
    /// unsubscribe), and returned.
    async fn refresh(&mut self, token: &str) -> Result<Vec<String>, RequestError> {
        let mut identity = self.env.auth.verify(token)?;
        if *identity.user != *self.conn.user {
            return Err(RequestError::Forbidden("the new token is for another user"));
        }
        if identity.expires_at < self.identity.expires_at {
            return Err(RequestError::Forbidden(
                "the new token expires before the current one",
            ));
        }
        self.token_deadline = token_deadline(&identity);
        // As at connect: the user id is kept in `conn.user` only.
        identity.user = String::new();
        self.identity = identity;
        let mut left = Vec::new();
        let disallowed: Vec<Arc<str>> = self
            .rooms()
            .iter()
            .filter(|r| !self.identity.may_join(r))
            .cloned()
            .collect();
        for room in disallowed {
            // The new token is in place before the first leave, so a failed
            // leave leaves the connection in rooms it may not join; the
            // error (`unavailable`) tells the client, and it may retry.
            self.env.node.leave(&self.conn, &room).await?;
            if let Some(busy) = self.busy.as_deref_mut() {
                busy.rooms.retain(|r| *r != room);
            }
            left.push(room.to_string());
        }
        Ok(left)
    }
}

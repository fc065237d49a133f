//! The replay after a `join` with `since` (contract 5.4): the reply first,
//! then the room messages the client missed, oldest first with
//! `replay: true`, then the live stream, none skipped or repeated.
//!
//! While this runs, the node holds the room's live frames for this
//! connection back (a hub gate, see [`crate::hub`]). The replay is written
//! straight to the socket a page at a time: each page (at most
//! [`crate::history::PAGE_MAX`] messages) is flushed before the next is
//! read, so a replay waits for the client instead of filling the outbox, and
//! costs the node one page of memory. A client that stops reading is closed
//! as a slow consumer by the flush, as any other. Then
//! [`crate::node::Node::go_live`] queues the held frames minus the offsets
//! the replay carried.
//!
//! If a later page cannot be read (Redis lost), or the history moved on
//! meanwhile (the next message was trimmed), the connection is closed with
//! 1013: the reply promised a gapless replay, and a client that reconnects
//! with the last offset it got either recovers or learns it cannot.

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;
use wsgate_protocol::{CloseCode, MessageFrame, Position, ServerFrame};

use super::{End, Session};
use crate::node::NodeError;

/// A replay to write: the join's first page and where it must reach.
#[derive(Debug)]
pub(super) struct Recovery {
    pub(super) room: String,
    /// The room's position in the join reply: the replay ends there.
    pub(super) upto: Position,
    pub(super) page: Vec<MessageFrame>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Writes the replay page by page, then lets the room's live frames in.
    pub(super) async fn replay_room(&mut self, recovery: Recovery) -> Result<(), End> {
        let Recovery {
            room,
            upto,
            mut page,
        } = recovery;
        let node = self.env.node.clone();
        loop {
            let last = page.last().and_then(|m| m.offset).unwrap_or(upto.offset);
            for mut m in page {
                m.replay = true;
                self.queue(&ServerFrame::Message(m));
            }
            self.flush().await?;
            if last >= upto.offset {
                break;
            }
            page = match node.replay_page(&room, last, &upto).await {
                Ok(p) => p,
                Err(e) => {
                    debug!(user = %self.conn.user, room = %room, error = %e, "Room replay stopped.");
                    let reason = match e {
                        NodeError::HistoryGap => "room history moved on during the replay",
                        _ => "room history unavailable",
                    };
                    return Err(self.close_with(CloseCode::TryAgainLater, reason).await);
                }
            };
        }
        node.go_live(&self.conn, &room, &upto);
        Ok(())
    }
}

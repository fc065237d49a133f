//! The inbox replay at connect and the ack redelivery (contract 5.2).
//!
//! The replay reads the inbox a page at a time ([`crate::inbox::Inbox::page`]:
//! at most [`crate::inbox::PAGE_MESSAGES`] messages and
//! [`crate::inbox::PAGE_BYTES`]) and writes each page to the socket, flushed,
//! before it reads the next: it waits for the client instead of queueing,
//! so it costs the node one page of memory however large the inbox, and a
//! client that stops reading is closed with 1013 by the flush, as any slow
//! consumer. Live messages meanwhile wait in the connection's bounded outbox
//! (written after the replay: replay before live). If a page cannot be read
//! (Redis down, a timeout), the connection is closed with 1013, reason
//! "inbox unavailable": it never goes on live without its replay.
//!
//! Redelivery reads only the ids whose ack is overdue
//! ([`crate::inbox::Inbox::get`], O(k)), never the whole inbox.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::debug;
use wsgate_protocol::{CloseCode, ServerFrame};

use super::{End, Session, MAX_TRACKED_ACKS};

/// The close reason when the replay cannot be read.
pub(super) const INBOX_UNAVAILABLE: &str = "inbox unavailable";

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Writes the whole inbox, page by page, after what is queued already
    /// (the `welcome`).
    pub(super) async fn replay(&mut self) -> Result<(), End> {
        let node = self.env.node.clone();
        let mut after = 0;
        loop {
            let page = match node.inbox_page(&self.conn.user, after).await {
                Ok(page) => page,
                Err(e) => {
                    debug!(user = %self.conn.user, error = %e, "Inbox replay failed; closing with 1013.");
                    self.flush().await?;
                    self.close_with(CloseCode::TryAgainLater, INBOX_UNAVAILABLE)
                        .await;
                    return Err(End::InboxUnavailable);
                }
            };
            self.env
                .metrics
                .inbox_replayed
                .inc_by(page.messages.len() as u64);
            for mut m in page.messages {
                m.replay = true;
                self.queue(&ServerFrame::Message(m));
            }
            self.flush().await?;
            match page.next {
                Some(next) => after = next,
                None => return Ok(()),
            }
        }
    }

    /// Sends again the live direct messages among `due` that are still
    /// unacked. A failed read tracks them again: they stay stored either way.
    pub(super) async fn redeliver(&mut self, due: &[String]) {
        match self.env.node.inbox_get(&self.conn.user, due).await {
            Ok(messages) => {
                self.env
                    .metrics
                    .inbox_replayed
                    .inc_by(messages.len() as u64);
                for mut m in messages {
                    m.replay = true;
                    self.queue(&ServerFrame::Message(m));
                }
            }
            Err(e) => {
                debug!(user = %self.conn.user, error = %e, "Ack redelivery read failed; will retry.");
                let again = Instant::now() + self.env.config.ack_timeout;
                let unacked = &mut self.busy().unacked;
                for id in due {
                    if unacked.len() == MAX_TRACKED_ACKS {
                        break;
                    }
                    unacked.push_back((id.clone(), again));
                }
            }
        }
    }
}

//! The session's deadlines: the next ping, the heartbeat deadline, token
//! expiry and ack redelivery. The session files the earliest with the node's
//! timer wheel ([`super::wheel`]) and acts on them when the wheel rings.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::debug;
use wsgate_protocol::{CloseCode, ErrorCode, ServerFrame};

use super::{End, Session};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Files the next deadline with the wheel unless an alarm at or before
    /// it is already filed.
    pub(super) fn file_alarm(&mut self) {
        let wheel = &self.env.wheel;
        let due = wheel.tick_of(self.next_deadline());
        if self.alarm == 0 || due < self.alarm {
            self.alarm = wheel.schedule(due, &self.conn);
        }
    }

    fn next_deadline(&self) -> Instant {
        let config = &self.env.config;
        let mut d = self
            .next_ping
            .min(self.last_read + config.ping_interval + config.pong_timeout);
        if let Some(t) = self.token_deadline {
            d = d.min(t);
        }
        if let Some((_, t)) = self.busy.as_deref().and_then(|b| b.unacked.front()) {
            d = d.min(*t);
        }
        d
    }

    /// Acts on whatever is due: closes a silent or expired connection, pings,
    /// sends unacked direct messages again. Nothing due (the wheel rang for
    /// a deadline that has since moved) does nothing.
    pub(super) async fn on_timer(&mut self) -> Result<(), End> {
        let now = Instant::now();
        let config = &self.env.config;
        if now >= self.last_read + config.ping_interval + config.pong_timeout {
            debug!(user = %self.conn.user, "Heartbeat timeout.");
            return Err(self.close(CloseCode::GoingAway).await);
        }
        if self.token_deadline.is_some_and(|t| now >= t) {
            self.queue(&ServerFrame::Error {
                r#ref: None,
                code: ErrorCode::TokenExpired,
                message: "the token expired and was not refreshed".into(),
                retry_after_ms: None,
            });
            self.env.metrics.frame_error(ErrorCode::TokenExpired);
            self.flush().await?;
            return Err(self.close_with(CloseCode::Policy, "token expired").await);
        }
        if now >= self.next_ping {
            self.out.ping();
            self.next_ping = now + config.ping_interval;
        }
        let unacked = self.busy.as_deref_mut().map(|b| &mut b.unacked);
        if let Some(unacked) = unacked.filter(|u| u.front().is_some_and(|(_, t)| now >= *t)) {
            let mut due = Vec::new();
            while let Some((id, t)) = unacked.front() {
                if now < *t {
                    break;
                }
                due.push(id.clone());
                unacked.pop_front();
            }
            self.redeliver(&due).await;
        }
        Ok(())
    }
}

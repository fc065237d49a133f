//! The server's side of the close handshake: send Close, then keep the
//! socket open and reading (data frames dropped unhandled) until the peer's
//! Close or a short timeout, so the socket is never closed with unread bytes
//! (which makes the kernel answer with a reset that can discard the close
//! frame before the peer reads it). Frames of a batch whose write the close
//! interrupted are written first, then the Close, all through the session's
//! writer ([`super::writer`]). After a read that left the stream mid-frame
//! (1009, 1007, 1002) the rest is drained as raw bytes.

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;
use wsgate_protocol::CloseCode;

use super::reader::Frame;
use super::{End, Session, CLOSE_TIMEOUT, SLOW_CONSUMER_CLOSE_TIMEOUT};

/// The reason text sent with a server-initiated close.
fn close_reason(code: CloseCode) -> &'static str {
    match code {
        CloseCode::Normal => "normal closure",
        CloseCode::GoingAway => "heartbeat timeout",
        CloseCode::ProtocolError => "websocket protocol error",
        CloseCode::InvalidPayload => "invalid utf-8 in text frame",
        CloseCode::Policy => "disconnected by server",
        CloseCode::TooBig => "frame exceeds the size limit",
        CloseCode::Internal => "internal error",
        CloseCode::Restart => "server restart: reconnect",
        CloseCode::TryAgainLater => "slow consumer: not reading fast enough",
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Sends a close frame and waits briefly for the client's close.
    pub(super) async fn close(&mut self, code: CloseCode) -> End {
        self.close_with(code, close_reason(code)).await
    }

    /// Sends a close frame with a reason and waits briefly for the client's
    /// close. A slow consumer gets longer: its socket is full, and the close
    /// frame only goes out once it reads again.
    pub(super) async fn close_with(&mut self, code: CloseCode, reason: &str) -> End {
        let wait = if code == CloseCode::TryAgainLater {
            SLOW_CONSUMER_CLOSE_TIMEOUT
        } else {
            CLOSE_TIMEOUT
        };
        // After a failed read the stream may stop mid-frame (a frame over the
        // hard limit is never read): it can only be drained as raw bytes.
        let parseable = !matches!(
            code,
            CloseCode::TooBig | CloseCode::InvalidPayload | CloseCode::ProtocolError
        );
        let limit = self.env.config.hard_message_limit();
        let (io, reader, out) = (&mut self.io, &mut self.reader, &mut self.out);
        let handshake = tokio::time::timeout(wait, async {
            // A batch left half written (a close requested during its write)
            // goes out whole first, the Close after it: the Close must never
            // land inside another frame.
            out.close(Some((code.as_u16(), reason)));
            if out.write_to(io).await.is_err() {
                return;
            }
            if parseable {
                // Frames after our close are dropped unhandled (pings are
                // not answered); the peer's close ends the handshake.
                loop {
                    match reader.next(io, limit).await {
                        Some(Ok(Frame::Close(_))) | None => return,
                        Some(Ok(_)) => {}
                        Some(Err(_)) => break,
                    }
                }
            }
            drain_raw(io).await;
        });
        if handshake.await.is_err() {
            // The peer did not answer the close in time: the socket is dropped.
            debug!(user = %self.conn.user, "Close handshake timed out.");
        }
        End::Server(code)
    }
}

/// Reads and drops whatever the peer still sends until it ends its side (or
/// the socket fails): the socket is then closed with nothing unread, so the
/// kernel ends it with a FIN, not a reset that could discard the close frame
/// before the peer reads it. Bounded by the caller's close timeout.
async fn drain_raw<S: AsyncRead + Unpin>(socket: &mut S) {
    use tokio::io::AsyncReadExt;
    let mut sink = vec![0u8; 4096];
    while let Ok(n) = socket.read(&mut sink).await {
        if n == 0 {
            return;
        }
    }
}

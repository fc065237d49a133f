//! One WebSocket connection: the read loop, the write path, heartbeats, token
//! expiry, limits, and the inbox replay at connect.
//!
//! A session is one task waiting on two things at once: the socket, and one
//! wake-up shared by the connection's bounded outbox, its close request
//! (drain, slow consumer, API disconnect; `hub::Conn`) and its alarm. The
//! alarm is rung by the node's timer wheel ([`wheel`]) when the session's
//! next deadline is due (next ping, heartbeat deadline, token expiry, ack
//! redelivery): a session holds no timer of its own. A close request is
//! checked first on every turn.
//! When only the outbox woke the session, the socket is not polled (its
//! readiness is kept for the next turn), and a batch that leaves frames
//! queued makes the next turn read first, so neither side starves the other.
//! State an idle connection never touches (rooms, acks awaited, the
//! protocol-error window) is allocated on first use ([`Busy`]). See
//! docs/benchmarks.md, "Performance round 2", for what each of these saves.
//! Frames to write are batched: up to [`WRITE_BATCH`] frames go out in
//! one vectored write ([`writer`]), their payloads the bytes shared by every
//! socket, with no per-connection write buffer. A write that
//! cannot make progress is abandoned when a close is requested, so a client
//! that never reads cannot pin its session: its outbox fills, the hub marks it
//! a slow consumer, and it is closed with 1013.
//!
//! Order at connect: the connection is registered first (live messages start
//! queueing in its outbox), then `welcome` and the inbox replay are written,
//! then the outbox: the replay always comes before new live direct messages.

mod busy;
mod close;
mod compress;
mod deadlines;
#[cfg(test)]
mod footprint;
pub mod limits;
pub mod reader;
mod recovery;
mod replay;
mod requests;
mod wheel;
pub mod writer;

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use reader::{Frame, ReadError, Reader};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::debug;
use writer::Writer;
use wsgate_protocol::{decode_client, CloseCode, Codec, ErrorCode, Kind, Ref, Reply, ServerFrame};

use crate::auth::{Authenticator, Identity};
use crate::clock::now_ms;
use crate::config::Config;
use crate::hub::{encode, Conn, Outgoing, Wake};
use crate::metrics::{Metrics, RejectReason};
use crate::node::Node;
use busy::Busy;
use limits::{token_deadline, RateLimiter};

/// How long a close handshake may take before the socket is dropped.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a closed session is given to leave its rooms and the registry: a few
/// Redis round trips, each bounded by the Redis operation timeout.
pub const UNREGISTER_TIME: Duration = Duration::from_secs(3);
/// The same for a slow consumer, whose close frame waits behind unread data.
const SLOW_CONSUMER_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most outbox frames written in one batch.
const WRITE_BATCH: usize = 64;
/// Most live direct messages tracked for ack redelivery per connection.
const MAX_TRACKED_ACKS: usize = 256;

/// How a session ended.
enum End {
    /// The server closed with this code.
    Server(CloseCode),
    /// The client sent a close frame.
    Client(Option<u16>),
    /// The socket failed or vanished without a close frame.
    Abnormal,
    /// Closed with 1013 because the inbox could not be read for the replay.
    InboxUnavailable,
    /// Closed with 1013 because the cluster registry could not record the
    /// connection (the user would look offline while connected).
    RegistryUnavailable,
}

/// The close reason when the registry cannot record a new connection.
const REGISTRY_UNAVAILABLE: &str = "registry unavailable";

/// One request's result: a reply, nothing, or an error.
type Handled = Result<Option<Reply>, crate::errors::RequestError>;

/// What every session of a node shares, built once at start-up: the node's
/// operations, the settings, the metrics, the token verifier (for `refresh`).
/// A session holds one `Arc` of it, so an idle connection pays one pointer.
pub struct Shared {
    node: Arc<Node>,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    auth: Arc<Authenticator>,
    /// Rings sessions when their deadlines are due.
    wheel: Arc<wheel::Wheel>,
}

impl Shared {
    /// Must be called inside a tokio runtime (the timer wheel's task starts here).
    pub fn new(
        node: Arc<Node>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        auth: Arc<Authenticator>,
    ) -> Arc<Shared> {
        let wheel = wheel::Wheel::start(wheel::tick_for(&config));
        Arc::new(Shared {
            node,
            config,
            metrics,
            auth,
            wheel,
        })
    }
}

/// Runs a session to its end, then unregisters it. `early`: bytes the
/// client sent right behind its upgrade request, read before the session
/// began (frames to handle first).
///
/// A plain function returning the session's future: the arguments move into
/// the session here, so the long-lived future holds them once (an `async fn`
/// would keep its arguments' slots beside the session for its whole life).
pub fn run<S>(
    env: Arc<Shared>,
    io: S,
    identity: Identity,
    codec: Codec,
    deflate: bool,
    early: Bytes,
) -> impl std::future::Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut identity = identity;
    // The user id lives once, in `conn.user`; the identity is kept for its
    // grants (rooms claim, capabilities, expiry) and holds no copy.
    let conn = env.node.new_conn(&std::mem::take(&mut identity.user));
    let config = &env.config;
    let now = Instant::now();
    let mut session = Session {
        limiter: RateLimiter::new(config.rate_limit, now),
        last_read: now,
        next_ping: now + config.ping_interval,
        token_deadline: token_deadline(&identity),
        env,
        conn,
        identity,
        codec,
        io,
        reader: Reader::new(deflate, early),
        taken: Vec::new(),
        out: Writer::default(),
        busy: None,
        recovery: None,
        alarm: 0,
    };
    // The block owns the session and lends it to `run`: an `async fn`
    // taking `self` by value would keep two copies of it in its state (the
    // argument and its binding inside the body), one of them dead.
    async move { session.run().await }
}

struct Session<S> {
    env: Arc<Shared>,
    conn: Arc<Conn>,
    identity: Identity,
    codec: Codec,
    /// The upgraded socket: read through `reader`, written through `out`.
    io: S,
    /// What the last reads left unfinished (a partial frame or message).
    reader: Reader,
    /// Frames taken from the outbox for the current write batch.
    taken: Vec<Arc<Outgoing>>,
    /// Frames to write next (one batch), and a batch left half written.
    out: Writer,
    limiter: RateLimiter,
    last_read: Instant,
    next_ping: Instant,
    token_deadline: Option<Instant>,
    /// Rooms, acks awaited, protocol errors: allocated on first use.
    busy: Option<Box<Busy>>,
    /// A join's room replay still to write (set by the request, run next).
    recovery: Option<Box<recovery::Recovery>>,
    /// The wheel tick of the earliest alarm filed and not yet rung (0: none).
    alarm: u64,
}

enum Event {
    Kicked(CloseCode),
    Timer,
    Read(Option<Result<Frame, ReadError>>),
    Queued,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    async fn run(&mut self) {
        let end = match Box::pin(self.env.node.connected(&self.conn)).await {
            Ok(()) => self.serve().await,
            Err(e) => {
                debug!(user = %self.conn.user, error = %e, "Registry update failed; closing with 1013.");
                // Boxed: its await state is larger than `serve`'s.
                Box::pin(self.close_with(CloseCode::TryAgainLater, REGISTRY_UNAVAILABLE)).await;
                End::RegistryUnavailable
            }
        };
        let metrics = &self.env.metrics;
        match end {
            End::Server(code) => {
                if code == CloseCode::TryAgainLater {
                    metrics.slow_consumer_disconnects.inc();
                }
                metrics.disconnect(Some(code));
            }
            End::Client(code) => match code.and_then(CloseCode::from_u16) {
                Some(code) => metrics.disconnect(Some(code)),
                None => metrics.disconnect_by_client(),
            },
            End::Abnormal => metrics.disconnect(None),
            // Not a slow consumer: counted as a 1013 close (and the failed
            // read as a broker error).
            End::InboxUnavailable => metrics.disconnect(Some(CloseCode::TryAgainLater)),
            End::RegistryUnavailable => {
                metrics.rejected(RejectReason::Registry);
                metrics.disconnect(Some(CloseCode::TryAgainLater));
            }
        }
        debug!(
            user = %self.conn.user,
            conn = self.conn.id,
            "Connection closed."
        );
        Box::pin(self.env.node.disconnected(&self.conn, self.rooms())).await;
    }

    fn welcome(&self) -> ServerFrame {
        let config = &self.env.config;
        ServerFrame::Welcome {
            user: self.conn.user.to_string(),
            session: format!("{}-{}", config.node_id, self.conn.id),
            node: config.node_id.clone(),
            protocol: wsgate_protocol::PROTOCOL.into(),
            ping_interval_ms: config.ping_interval.as_millis() as u64,
            max_message_bytes: config.max_message_bytes as u64,
        }
    }

    async fn serve(&mut self) -> End {
        self.queue(&self.welcome());
        if let Err(end) = Box::pin(self.replay()).await {
            return end;
        }
        // Set when a batch left frames queued: the next turn polls the
        // socket before the outbox, so a full outbox cannot starve reads.
        let mut read_first = false;
        loop {
            // A close request comes first, even while reads keep coming.
            if let Some(code) = self.conn.kicked() {
                return Box::pin(self.close(code)).await;
            }
            self.file_alarm();
            // One wake-up for queued frames and close requests. Polled before
            // the socket (unless `read_first`): when only the outbox woke the
            // session, the read side (our frame reader, hyper's upgraded
            // IO) is not polled for nothing; its readiness stays registered
            // and is seen on the next turn.
            let event = {
                let reads_first = std::mem::take(&mut read_first);
                let limit = self.env.config.hard_message_limit();
                let (io, reader) = (&mut self.io, &mut self.reader);
                let mut wait = std::pin::pin!(self.conn.wait());
                std::future::poll_fn(|cx| {
                    if reads_first {
                        if let Poll::Ready(msg) = reader.poll_next(io, cx, limit) {
                            return Poll::Ready(Event::Read(msg));
                        }
                    }
                    if let Poll::Ready(wake) = wait.as_mut().poll(cx) {
                        return Poll::Ready(match wake {
                            Wake::Kicked(code) => Event::Kicked(code),
                            Wake::Queued => Event::Queued,
                            Wake::Alarm => Event::Timer,
                        });
                    }
                    if !reads_first {
                        if let Poll::Ready(msg) = reader.poll_next(io, cx, limit) {
                            return Poll::Ready(Event::Read(msg));
                        }
                    }
                    Poll::Pending
                })
                .await
            };
            // The handlers are boxed: a future is as large as its largest await
            // state, and this one lives as long as the connection. Boxed, the
            // idle session holds only the `select!` below.
            let step = match event {
                Event::Kicked(code) => Err(Box::pin(self.close(code)).await),
                Event::Timer => {
                    self.alarm = 0;
                    Box::pin(self.on_timer()).await
                }
                Event::Read(msg) => Box::pin(self.on_read(msg)).await,
                Event::Queued => {
                    if self.conn.take(&mut self.taken, WRITE_BATCH) {
                        // More than one batch: come back after a read and a write.
                        self.conn.rearm();
                        read_first = true;
                    }
                    let mut taken = std::mem::take(&mut self.taken);
                    for d in taken.drain(..) {
                        self.push_delivery(&d);
                    }
                    self.taken = taken;
                    Ok(())
                }
            };
            if let Err(end) = step {
                return end;
            }
            if !self.out.is_empty() {
                if let Err(end) = Box::pin(self.flush()).await {
                    return end;
                }
            }
        }
    }

    fn queue(&mut self, frame: &ServerFrame) {
        if let Some(bytes) = encode(self.codec, frame) {
            self.queue_data(bytes, None);
        }
    }

    fn push_delivery(&mut self, d: &Outgoing) {
        let Some(bytes) = d.payload(self.codec) else {
            return;
        };
        self.queue_data(bytes, Some(d));
        if let Some((kind, accepted_ms)) = d.message_info() {
            let latency = now_ms().saturating_sub(accepted_ms) as f64 / 1000.0;
            self.env.metrics.delivered(kind, latency);
            if kind == Kind::Direct {
                if let ServerFrame::Message(m) = d.frame() {
                    let due = Instant::now() + self.env.config.ack_timeout;
                    self.track_unacked(m.id.clone(), due);
                }
            }
        }
    }

    /// Writes queued frames. Abandons the write when a close is requested, or
    /// when it makes no progress for the heartbeat period (slow consumer).
    async fn flush(&mut self) -> Result<(), End> {
        let conn = self.conn.clone();
        let limit = self.env.config.ping_interval + self.env.config.pong_timeout;
        let mut queued = false;
        let result = {
            let write = self.out.write_to(&mut self.io);
            let mut write = std::pin::pin!(write);
            // Most writes complete at once: only a write that would block arms
            // the timeout and waits for a close request beside it.
            let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
            match first {
                Poll::Ready(Ok(())) => None,
                Poll::Ready(Err(_)) => Some(Ok(())),
                Poll::Pending => tokio::select! {
                    biased;
                    code = conn.wait_kicked(&mut queued) => Some(Err(code)),
                    r = tokio::time::timeout(limit, write) => match r {
                        Ok(Ok(())) => None,
                        Ok(Err(_)) => Some(Ok(())),
                        Err(_) => Some(Err(CloseCode::TryAgainLater)),
                    },
                },
            }
        };
        if queued {
            // The wait above took the wake-up of frames queued meanwhile.
            conn.rearm();
        }
        match result {
            None => Ok(()),
            Some(Ok(())) => Err(End::Abnormal),
            Some(Err(code)) => {
                conn.kick(code);
                Err(self.close(code).await)
            }
        }
    }

    async fn on_read(&mut self, msg: Option<Result<Frame, ReadError>>) -> Result<(), End> {
        let msg = match msg {
            None => return Err(End::Abnormal),
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                debug!(user = %self.conn.user, error = %e, "WebSocket read failed.");
                return Err(self.close(crate::errors::read_error_close(&e)).await);
            }
        };
        self.last_read = Instant::now();
        match msg {
            Frame::Text(t) if self.codec == Codec::Json => self.on_data(t.as_bytes()).await,
            Frame::Binary(b) if self.codec == Codec::Msgpack => self.on_data(&b).await,
            Frame::Text(_) | Frame::Binary(_) => {
                let wanted = if self.codec == Codec::Json {
                    "text"
                } else {
                    "binary"
                };
                self.violation(
                    None,
                    ErrorCode::BadRequest,
                    format!("this subprotocol takes {wanted} frames"),
                )
                .await
            }
            Frame::Ping(_) | Frame::Pong => {
                if let Frame::Ping(payload) = msg {
                    // Answered even when rate limited, as RFC 6455 5.5.2 asks.
                    self.out.pong(Bytes::from(payload));
                }
                match self.limiter.take(self.last_read) {
                    Ok(()) => Ok(()),
                    Err(wait) => self.rate_limited(None, wait).await,
                }
            }
            Frame::Close(close) => {
                // Sends our echo of the client's close (after what is queued);
                // the session ends whether or not it gets out.
                let code = close.as_ref().map(|(code, _)| *code);
                self.out
                    .close(close.as_ref().map(|(c, r)| (*c, r.as_str())));
                let echo = self.out.write_to(&mut self.io);
                if !matches!(tokio::time::timeout(CLOSE_TIMEOUT, echo).await, Ok(Ok(()))) {
                    debug!(user = %self.conn.user, "Close echo not flushed.");
                }
                Err(End::Client(code))
            }
        }
    }

    async fn rate_limited(&mut self, r#ref: Option<Ref>, wait: Duration) -> Result<(), End> {
        self.env.metrics.rate_limited.inc();
        let retry = wait.as_millis().max(1) as u64;
        self.send_error(
            r#ref,
            ErrorCode::RateLimited,
            "too many frames; slow down".into(),
            Some(retry),
        );
        self.count_violation().await
    }

    async fn violation(
        &mut self,
        r#ref: Option<Ref>,
        code: ErrorCode,
        message: String,
    ) -> Result<(), End> {
        self.send_error(r#ref, code, message, None);
        self.count_violation().await
    }

    async fn count_violation(&mut self) -> Result<(), End> {
        if self.busy().errors.record(Instant::now()) {
            self.flush().await?;
            return Err(self
                .close_with(CloseCode::Policy, "too many protocol errors")
                .await);
        }
        Ok(())
    }

    fn send_error(
        &mut self,
        r#ref: Option<Ref>,
        code: ErrorCode,
        message: String,
        retry_after_ms: Option<u64>,
    ) {
        debug!(user = %self.conn.user, code = %code, "Client error.");
        self.env.metrics.frame_error(code);
        self.queue(&ServerFrame::Error {
            r#ref,
            code,
            message,
            retry_after_ms,
        });
    }

    async fn on_data(&mut self, bytes: &[u8]) -> Result<(), End> {
        let max = self.env.config.max_message_bytes;
        if bytes.len() > max {
            self.env.metrics.frame_unknown();
            let message = format!(
                "frame of {} bytes exceeds max-message-bytes ({max})",
                bytes.len()
            );
            // Echo the frame's `ref` so a client's request fails at once
            // instead of timing out (the frame is under the hard limit).
            let r#ref = wsgate_protocol::codec::peek_ref(self.codec, bytes);
            return self
                .violation(r#ref, ErrorCode::MessageTooLarge, message)
                .await;
        }
        // Decoded before the rate limit so a refusal can echo the frame's `ref`;
        // the frame is at most max-message-bytes, and floods are closed by the
        // protocol-error rule.
        let decoded = decode_client(self.codec, bytes);
        if let Err(wait) = self.limiter.take(self.last_read) {
            let r#ref = match &decoded {
                Ok(r) => r.r#ref.clone(),
                Err(e) => e.r#ref.clone(),
            };
            return self.rate_limited(r#ref, wait).await;
        }
        let request = match decoded {
            Ok(r) => r,
            Err(e) => {
                self.env.metrics.frame_unknown();
                return self.violation(e.r#ref, e.code, e.message).await;
            }
        };
        self.env.metrics.frame_received(&request.frame);
        let r#ref = request.r#ref.clone();
        match self.handle(request).await {
            Ok(Some(reply)) => self.queue(&ServerFrame::Reply(reply)),
            Ok(None) => {}
            Err(e) => {
                let code = crate::errors::request_code(&e);
                self.send_error(r#ref, code, e.to_string(), None);
            }
        }
        match self.recovery.take() {
            Some(recovery) => Box::pin(self.replay_room(*recovery)).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;

//! The public listener's socket, seen by hyper through [`AdmittedIo`]: it
//! notices the first byte of each request, so that a handshake slot is held
//! from then until the request is answered (contract 3.2), and never between
//! the requests of a keep-alive connection.
//!
//! How: a [`ConnAdmission`] shared by the IO and the connection's service
//! holds the connection's phase.
//!
//! - `Idle` (no request in progress): a read that returns bytes takes the
//!   [`HandshakeSlots`] (the node's, and the client address's when the peer
//!   is not a trusted proxy, since then the peer is the client). When they
//!   cannot be had, the bytes are dropped, the raw 503 is written, the socket
//!   shut down and drained a little (so the close is a FIN, not a reset that
//!   would discard the 503), and hyper reads end-of-file: the request is
//!   refused at once, without being parsed. Otherwise the phase is `Head`
//!   until hyper has parsed the request.
//! - `Answering`: the service took the slots (and drops them once it has
//!   answered). The next flush of the response returns the phase to `Idle`;
//!   bytes read meanwhile (a pipelined request) take no slot here, so the
//!   service takes them for such a request itself.
//! - `Upgraded`: the socket belongs to a WebSocket session; reads pass
//!   through, and the IO lets go of the shared state at its next read (an
//!   idle connection does not keep it for its whole life).
//!
//! Idle keep-alive connections and slow request heads are closed by hyper's
//! header read timeout (`--handshake-timeout`), which runs from the end of the
//! previous response.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::admission::{Admission, HandshakeSlots};
use crate::response::raw_busy_response;

/// No request in progress.
const IDLE: u8 = 0;
/// A request's first bytes are read and its slots taken; the head is not
/// parsed yet (further reads take no second set).
const HEAD: u8 = 1;
/// The service has the request.
const ANSWERING: u8 = 2;
/// A WebSocket session owns the socket.
const UPGRADED: u8 = 3;

/// How long a refused connection is drained before it is closed.
const REFUSAL_DRAIN: Duration = Duration::from_secs(1);
/// How much of a refused request is read (and dropped) before the close.
const REFUSAL_DRAIN_BYTES: usize = 16 * 1024;

/// One public connection's admission state, shared by its IO and service.
pub struct ConnAdmission {
    admission: Arc<Admission>,
    /// The peer (or the PROXY header's source) when it is itself the client,
    /// i.e. not a trusted proxy; `None` when forwarding headers decide.
    direct_client: Option<IpAddr>,
    phase: AtomicU8,
    slots: Mutex<Option<HandshakeSlots>>,
}

impl ConnAdmission {
    pub fn new(admission: Arc<Admission>, direct_client: Option<IpAddr>) -> Arc<ConnAdmission> {
        Arc::new(ConnAdmission {
            admission,
            direct_client,
            phase: AtomicU8::new(IDLE),
            slots: Mutex::new(None),
        })
    }

    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// A request's head has been read: the slots taken at its first byte,
    /// if any, go to the service, which holds them until it has answered.
    pub fn answering(&self) -> Option<HandshakeSlots> {
        self.phase.store(ANSWERING, Ordering::Release);
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The connection became a WebSocket: its reads take no slot any more.
    pub fn upgraded(&self) {
        self.phase.store(UPGRADED, Ordering::Release);
    }

    /// The first byte of a request: takes its slots, or says why not.
    fn first_byte(&self) -> Result<(), super::admission::Refusal> {
        let slots = self.admission.begin_handshake(self.direct_client)?;
        *self.slots.lock().unwrap_or_else(|e| e.into_inner()) = Some(slots);
        Ok(())
    }
}

/// Refusing a request before it is parsed.
enum Refusing {
    /// Writing the raw 503; `sent` bytes so far.
    Writing {
        sent: usize,
    },
    /// Reading and dropping what the client still sends, until it closes,
    /// `left` bytes more, or the deadline.
    Draining {
        left: usize,
        deadline: Pin<Box<Sleep>>,
    },
    Done,
}

/// The public socket as hyper (and, after the upgrade, the session) sees it.
pub struct AdmittedIo {
    inner: TcpStream,
    /// Bytes read before HTTP started (after a PROXY header), served first.
    prefix: Bytes,
    /// `None` once the socket is a WebSocket's.
    conn: Option<Arc<ConnAdmission>>,
    refusing: Option<Refusing>,
}

impl AdmittedIo {
    pub fn new(inner: TcpStream, prefix: Bytes, conn: Arc<ConnAdmission>) -> AdmittedIo {
        AdmittedIo {
            inner,
            prefix,
            conn: Some(conn),
            refusing: None,
        }
    }

    /// The socket, once it is a WebSocket's (admission has nothing left to
    /// do), and the bytes read before HTTP that were not consumed.
    pub fn into_socket(self) -> (TcpStream, Bytes) {
        (self.inner, self.prefix)
    }

    /// Drives the refusal; `Ready(Ok(()))` with nothing read is the end of
    /// file hyper sees.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Some(state) = self.refusing.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match state {
                Refusing::Writing { sent } => {
                    let raw = raw_busy_response();
                    while *sent < raw.len() {
                        match ready!(Pin::new(&mut self.inner).poll_write(cx, &raw[*sent..])) {
                            Ok(0) | Err(_) => {
                                self.refusing = Some(Refusing::Done);
                                return Poll::Ready(Ok(()));
                            }
                            Ok(n) => *sent += n,
                        }
                    }
                    // A failed shutdown means the peer is gone: nothing to drain.
                    if ready!(Pin::new(&mut self.inner).poll_shutdown(cx)).is_err() {
                        self.refusing = Some(Refusing::Done);
                        return Poll::Ready(Ok(()));
                    }
                    self.refusing = Some(Refusing::Draining {
                        left: REFUSAL_DRAIN_BYTES,
                        deadline: Box::pin(tokio::time::sleep(REFUSAL_DRAIN)),
                    });
                }
                Refusing::Draining { left, deadline } => {
                    if deadline.as_mut().poll(cx).is_ready() {
                        self.refusing = Some(Refusing::Done);
                        continue;
                    }
                    let mut sink = [0u8; 1024];
                    let mut buf = ReadBuf::new(&mut sink);
                    match ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf)) {
                        Ok(()) if !buf.filled().is_empty() => {
                            *left = left.saturating_sub(buf.filled().len());
                            if *left == 0 {
                                self.refusing = Some(Refusing::Done);
                            }
                        }
                        _ => self.refusing = Some(Refusing::Done),
                    }
                }
                Refusing::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncRead for AdmittedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusing.is_some() {
            return this.poll_refuse(cx);
        }
        let phase = this.conn.as_ref().map(|c| c.phase.load(Ordering::Acquire));
        if phase == Some(UPGRADED) {
            // Its phase can change no more: nothing left to share.
            this.conn = None;
        }
        let before = buf.filled().len();
        if this.prefix.has_remaining() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
        } else {
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        }
        let read = buf.filled().len() > before;
        let idle = this
            .conn
            .as_ref()
            .filter(|c| c.phase.load(Ordering::Acquire) == IDLE);
        if let (true, Some(conn)) = (read, idle) {
            if let Err(refusal) = conn.first_byte() {
                tracing::debug!(
                    reason = refusal.reason().as_str(),
                    "Request refused at its first byte."
                );
                buf.set_filled(before);
                this.refusing = Some(Refusing::Writing { sent: 0 });
                return this.poll_refuse(cx);
            }
            // The slots now belong to this request; `answering` hands them on.
            conn.phase.store(HEAD, Ordering::Release);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for AdmittedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        // The answer is on the wire: the next byte read starts a new request.
        if let Some(conn) = &this.conn {
            let _not_answering =
                conn.phase
                    .compare_exchange(ANSWERING, IDLE, Ordering::AcqRel, Ordering::Acquire);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

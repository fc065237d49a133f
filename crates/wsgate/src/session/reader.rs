//! The session's read path: RFC 6455 frames from a client, parsed by the
//! server itself (not tungstenite), with no read buffer while a socket is idle.
//!
//! A read happens when the socket is readable, into a [`SCRATCH`]-byte buffer
//! on the stack of the poll that reads (not in the session's future). A
//! connection keeps only what a read left unfinished: the bytes of a partial
//! frame (or of frames after the one returned) in `pending`, and the payload
//! of a fragmented message in `message`. Both are given back (emptied, not
//! kept at their largest size) once consumed, so an idle connection holds
//! two empty `Vec`s.
//!
//! What is checked, each failure a [`ReadError`] (its close code decided in
//! [`crate::errors::read_error_close`]): client frames are masked, RSV2 and
//! RSV3 are clear, and RSV1 too unless permessage-deflate was negotiated
//! ([`Reader::new`]), the opcode is known, control
//! frames are at most 125 bytes and not fragmented, continuations continue a
//! message and data frames do not interrupt one (1002); a frame or message
//! over the hard limit is refused from its header, before its payload is read
//! or allocated (1009); a text message is valid UTF-8 once reassembled, so a
//! character split across fragments is fine (1007). A close frame's code must
//! be one a peer may send; another is answered as tungstenite did, with 1002.
//!
//! With permessage-deflate, RSV1 on the first frame of a data message marks
//! it compressed (RSV1 on a continuation or a control frame is 1002). The
//! compressed bytes are reassembled under the same limits, then inflated in
//! one go by [`crate::deflate::inflate`], whose output is bounded by the hard
//! limit too (1009), corrupt data being 1002; UTF-8 is checked after.
//!
//! Pings and closes are returned to the session, which answers them through
//! its own writer ([`super::writer`]).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, ReadBuf};

use crate::deflate::InflateError;

pub use crate::errors::ReadError;

/// Bytes read per read, on the stack.
pub const SCRATCH: usize = 4096;
/// Most frames parsed in one poll without returning one (empty fragments):
/// then the task yields, so one client cannot hold its worker.
const FRAMES_PER_POLL: usize = 64;
/// A `pending` buffer larger than this is shrunk once its frame is consumed.
const KEEP_PENDING: usize = SCRATCH;

/// RFC 6455 opcodes (the writer frames with the same ones).
const CONTINUATION: u8 = 0x0;
pub(super) const TEXT: u8 = 0x1;
pub(super) const BINARY: u8 = 0x2;
pub(super) const CLOSE: u8 = 0x8;
pub(super) const PING: u8 = 0x9;
pub(super) const PONG: u8 = 0xA;

/// A message or control frame from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A text message, reassembled and valid UTF-8.
    Text(String),
    /// A binary message, reassembled.
    Binary(Vec<u8>),
    /// A ping and its payload (to be echoed in the pong).
    Ping(Vec<u8>),
    Pong,
    /// The client's close: its code and reason, or none. A code a peer may
    /// not send is replaced by 1002 "Protocol violation".
    Close(Option<(u16, String)>),
}

/// A frame header, parsed.
struct Head {
    fin: bool,
    /// RSV1: a compressed message (permessage-deflate).
    rsv1: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Header bytes, mask included.
    size: usize,
    payload: usize,
}

/// The header at the start of `buf`, `None` while incomplete. The declared
/// length is checked against `limit` as soon as it is known.
fn head(buf: &[u8], limit: usize, deflate: bool) -> Result<Option<Head>, ReadError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let rsv1 = b0 & 0x40 != 0;
    if b0 & 0x30 != 0 || (rsv1 && !deflate) {
        return Err(ReadError::Protocol("reserved bits set"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
        return Err(ReadError::Protocol("unknown opcode"));
    }
    if rsv1 && !matches!(opcode, TEXT | BINARY) {
        return Err(ReadError::Protocol(
            "RSV1 on a continuation or control frame",
        ));
    }
    if b1 & 0x80 == 0 {
        return Err(ReadError::Protocol("unmasked frame from a client"));
    }
    let control = opcode >= CLOSE;
    if control && !fin {
        return Err(ReadError::Protocol("fragmented control frame"));
    }
    let (payload, at) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if control && payload > 125 {
        return Err(ReadError::Protocol("control frame over 125 bytes"));
    }
    if payload >> 63 != 0 {
        return Err(ReadError::Protocol("frame length with the top bit set"));
    }
    let payload = match usize::try_from(payload) {
        Ok(n) if n <= limit => n,
        _ => return Err(ReadError::TooBig { limit }),
    };
    let Some(mask) = buf
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
    else {
        return Ok(None);
    };
    Ok(Some(Head {
        fin,
        rsv1,
        opcode,
        mask,
        size: at + 4,
        payload,
    }))
}

fn unmask(bytes: &mut [u8], mask: [u8; 4]) {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Whether a peer may send this close code (RFC 6455 7.4).
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fn close_frame(payload: &[u8]) -> Result<Frame, ReadError> {
    match payload {
        [] => Ok(Frame::Close(None)),
        [_] => Err(ReadError::Protocol("close frame of one byte")),
        [hi, lo, reason @ ..] => {
            let reason = std::str::from_utf8(reason).map_err(|_| ReadError::Utf8)?;
            let code = u16::from_be_bytes([*hi, *lo]);
            Ok(Frame::Close(Some(if close_code_allowed(code) {
                (code, reason.to_owned())
            } else {
                (1002, "Protocol violation".to_owned())
            })))
        }
    }
}

/// A data message, reassembled: inflated first if `compressed`.
fn data(opcode: u8, payload: Vec<u8>, compressed: bool, limit: usize) -> Result<Frame, ReadError> {
    let payload = if compressed {
        crate::deflate::inflate(&payload, limit).map_err(|e| match e {
            InflateError::TooBig { limit } => ReadError::TooBig { limit },
            InflateError::Corrupt => ReadError::Protocol("invalid compressed data"),
        })?
    } else {
        payload
    };
    if opcode == TEXT {
        String::from_utf8(payload)
            .map(Frame::Text)
            .map_err(|_| ReadError::Utf8)
    } else {
        Ok(Frame::Binary(payload))
    }
}

/// A connection's read state: what the last reads left unfinished.
#[derive(Debug, Default)]
pub struct Reader {
    /// Bytes read and not yet consumed: a partial frame, or frames after
    /// the one last returned.
    pending: Vec<u8>,
    /// The payload so far of a fragmented message.
    message: Vec<u8>,
    /// The opcode of that message (text or binary), 0 when none is open.
    opcode: u8,
    /// That message is compressed (RSV1 on its first frame).
    compressed: bool,
    /// permessage-deflate was negotiated: RSV1 is allowed.
    deflate: bool,
}

impl Reader {
    /// A reader for a connection that negotiated permessage-deflate, or
    /// not; `early` holds bytes already read from the socket, parsed first.
    pub fn new(deflate: bool, early: Bytes) -> Reader {
        Reader {
            deflate,
            pending: early.to_vec(),
            ..Reader::default()
        }
    }

    /// Whether permessage-deflate was negotiated.
    pub fn deflate(&self) -> bool {
        self.deflate
    }

    /// Parses the frame at the start of `buf`: `None` while incomplete,
    /// else the bytes it took and the message or control frame it finished
    /// (`None` for a fragment that does not end its message).
    fn step(
        &mut self,
        buf: &[u8],
        limit: usize,
    ) -> Result<Option<(usize, Option<Frame>)>, ReadError> {
        let Some(h) = head(buf, limit, self.deflate)? else {
            return Ok(None);
        };
        match h.opcode {
            CONTINUATION if self.opcode == 0 => {
                return Err(ReadError::Protocol("continuation without a message"))
            }
            CONTINUATION if self.message.len() + h.payload > limit => {
                return Err(ReadError::TooBig { limit })
            }
            TEXT | BINARY if self.opcode != 0 => {
                return Err(ReadError::Protocol("new message inside a fragmented one"))
            }
            _ => {}
        }
        let end = h.size + h.payload;
        let Some(bytes) = buf.get(h.size..end) else {
            return Ok(None);
        };
        let frame = match h.opcode {
            CONTINUATION => {
                let start = self.message.len();
                self.message.extend_from_slice(bytes);
                unmask(&mut self.message[start..], h.mask);
                if h.fin {
                    let opcode = std::mem::take(&mut self.opcode);
                    let compressed = std::mem::take(&mut self.compressed);
                    let message = std::mem::take(&mut self.message);
                    Some(data(opcode, message, compressed, limit)?)
                } else {
                    None
                }
            }
            opcode => {
                let mut payload = bytes.to_vec();
                unmask(&mut payload, h.mask);
                match opcode {
                    CLOSE => Some(close_frame(&payload)?),
                    PING => Some(Frame::Ping(payload)),
                    PONG => Some(Frame::Pong),
                    _ if h.fin => Some(data(opcode, payload, h.rsv1, limit)?),
                    _ => {
                        self.opcode = opcode;
                        self.compressed = h.rsv1;
                        self.message = payload;
                        None
                    }
                }
            }
        };
        Ok(Some((end, frame)))
    }

    /// Parses what `pending` holds: the next frame, or `None` when it needs
    /// more bytes (or took `budget` fragments). Consumed bytes are dropped.
    fn take_pending(
        &mut self,
        limit: usize,
        budget: &mut usize,
    ) -> Result<Option<Frame>, ReadError> {
        let pending = std::mem::take(&mut self.pending);
        let mut at = 0;
        let result = loop {
            if at == pending.len() || *budget == 0 {
                break Ok(None);
            }
            *budget -= 1;
            match self.step(&pending[at..], limit) {
                Ok(Some((n, frame))) => {
                    at += n;
                    if frame.is_some() {
                        break Ok(frame);
                    }
                }
                Ok(None) => break Ok(None),
                Err(e) => break Err(e),
            }
        };
        self.keep(pending, at);
        result
    }

    /// Keeps `buf[at..]` as `pending`, giving back a large buffer's memory.
    fn keep(&mut self, mut buf: Vec<u8>, at: usize) {
        if at == buf.len() {
            return;
        }
        if at == 0 {
            self.pending = buf;
            return;
        }
        if buf.capacity() > KEEP_PENDING && buf.len() - at <= KEEP_PENDING {
            self.pending = buf[at..].to_vec();
        } else {
            buf.drain(..at);
            self.pending = buf;
        }
    }

    /// Feeds bytes read from the socket; returns the first frame they
    /// finish. Bytes after it stay pending for [`Reader::next_pending`].
    pub fn feed(&mut self, bytes: &[u8], limit: usize) -> Result<Option<Frame>, ReadError> {
        let mut budget = usize::MAX;
        self.feed_budget(bytes, limit, &mut budget)
    }

    fn feed_budget(
        &mut self,
        bytes: &[u8],
        limit: usize,
        budget: &mut usize,
    ) -> Result<Option<Frame>, ReadError> {
        if !self.pending.is_empty() {
            self.pending.extend_from_slice(bytes);
            return self.take_pending(limit, budget);
        }
        // The usual case: whole frames in one read, parsed where they were read.
        let mut at = 0;
        while at < bytes.len() && *budget > 0 {
            *budget -= 1;
            match self.step(&bytes[at..], limit)? {
                Some((n, frame)) => {
                    at += n;
                    if frame.is_some() {
                        self.pending = bytes[at..].to_vec();
                        return Ok(frame);
                    }
                }
                None => break,
            }
        }
        self.pending = bytes[at..].to_vec();
        Ok(None)
    }

    /// The next frame from bytes already read, if they hold a whole one.
    pub fn next_pending(&mut self, limit: usize) -> Result<Option<Frame>, ReadError> {
        let mut budget = usize::MAX;
        self.take_pending(limit, &mut budget)
    }

    /// The next frame: from bytes already read, else from the socket once
    /// it is readable. `None` when the socket ended or failed.
    pub fn poll_next<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
        limit: usize,
    ) -> Poll<Option<Result<Frame, ReadError>>> {
        let mut budget = FRAMES_PER_POLL;
        if !self.pending.is_empty() {
            match self.take_pending(limit, &mut budget) {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
        loop {
            if budget == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut scratch = [0u8; SCRATCH];
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *io).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "WebSocket read failed.");
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(None),
                Poll::Ready(Ok(())) => {}
            }
            match self.feed_budget(buf.filled(), limit, &mut budget) {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }

    /// The next frame, read from `io` as needed.
    pub async fn next<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        limit: usize,
    ) -> Option<Result<Frame, ReadError>> {
        std::future::poll_fn(|cx| self.poll_next(io, cx, limit)).await
    }

    /// Bytes this connection holds for partial frames and messages.
    pub fn held(&self) -> usize {
        self.pending.capacity() + self.message.capacity()
    }
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;

//! The session's write path: the frames of one batch go to the socket in
//! vectored writes (one `writev` for up to [`SLICES`] / 2 frames), each frame
//! as its 2–10 byte header plus the shared encoded bytes of its payload.
//!
//! Why not tungstenite's own writer: it copies every payload into a per-socket
//! buffer that keeps its largest size for the connection's life (16 KiB and
//! more on every socket after a broadcast burst, about 150 bytes after the
//! `welcome` on an idle one), and copies bytes that are already shared by
//! every socket of a fan-out. Here a batch owns nothing but its list of
//! frames, released once written: an idle connection holds no write buffer.
//!
//! Every frame the server sends goes through here, control frames too (the
//! pong answering a client's ping, the Close of either side's handshake), so
//! frames never interleave mid-frame: a batch left half written (a write
//! abandoned by a close request) is finished before the Close goes out.
//! Server frames are not masked (RFC 6455 5.1).

use std::io::{self, IoSlice};

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use wsgate_protocol::Codec;

use super::reader::{BINARY, CLOSE, PING, PONG, TEXT};

/// Most slices given to one vectored write (two per frame).
const SLICES: usize = 128;

/// A frame's header: FIN and opcode, then the payload length (7 bits, or
/// 126 + 16 bits, or 127 + 64 bits).
#[derive(Debug, Clone, Copy)]
struct Head {
    bytes: [u8; 10],
    len: u8,
}

impl Head {
    /// RSV1 in the first byte: a compressed message (RFC 7692).
    const RSV1: u8 = 0x40;

    fn data(codec: Codec) -> u8 {
        match codec {
            Codec::Json => TEXT,
            Codec::Msgpack => BINARY,
        }
    }

    fn new(opcode: u8, payload: usize) -> Head {
        let mut bytes = [0u8; 10];
        bytes[0] = 0x80 | opcode;
        let len = if payload < 126 {
            bytes[1] = payload as u8;
            2
        } else if let Ok(short) = u16::try_from(payload) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(payload as u64).to_be_bytes());
            10
        };
        Head { bytes, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Frames queued for the socket, and how much of them is written.
#[derive(Debug, Default)]
pub struct Writer {
    frames: Vec<(Head, Bytes)>,
    /// Bytes of `frames` already on the socket.
    written: usize,
}

impl Writer {
    /// Queues one data frame: text for JSON, binary for MessagePack.
    pub fn data(&mut self, codec: Codec, payload: Bytes) {
        self.frames
            .push((Head::new(Head::data(codec), payload.len()), payload));
    }

    /// Queues one data frame whose payload is a deflated message
    /// (permessage-deflate): the same frame with RSV1 set. Data frames only.
    pub fn deflated(&mut self, codec: Codec, payload: Bytes) {
        let mut head = Head::new(Head::data(codec), payload.len());
        head.bytes[0] |= Head::RSV1;
        self.frames.push((head, payload));
    }

    /// Queues a ping with no payload.
    pub fn ping(&mut self) {
        self.frames.push((Head::new(PING, 0), Bytes::new()));
    }

    /// Queues a pong echoing a ping's payload (at most 125 bytes).
    pub fn pong(&mut self, payload: Bytes) {
        self.frames.push((Head::new(PONG, payload.len()), payload));
    }

    /// Queues a close frame: the code and reason, or an empty payload. The
    /// reason is cut (at a character boundary) to fit the 125-byte control
    /// frame limit.
    pub fn close(&mut self, close: Option<(u16, &str)>) {
        let mut payload = Vec::new();
        if let Some((code, reason)) = close {
            let mut end = reason.len().min(123);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            payload.extend_from_slice(&code.to_be_bytes());
            payload.extend_from_slice(&reason.as_bytes()[..end]);
        }
        self.frames
            .push((Head::new(CLOSE, payload.len()), Bytes::from(payload)));
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Writes every queued frame, then releases the batch's memory.
    ///
    /// Cancel-safe: progress is recorded after each write, so a write dropped
    /// mid-batch (a close request) resumes where it stopped on the next call.
    pub async fn write_to<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> io::Result<()> {
        while !self.frames.is_empty() {
            let n = {
                // Sized to the batch: a fixed array of `SLICES` would be
                // cleared on every write, which costs more than this one
                // allocation for the usual batch of one or two frames.
                let mut slices = vec![IoSlice::new(&[]); (self.frames.len() * 2).min(SLICES)];
                let filled = self.slices(&mut slices);
                io.write_vectored(&slices[..filled]).await?
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.advance(n);
        }
        Ok(())
    }

    /// Fills `out` with the unwritten bytes, in order; returns how many.
    fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut skip = self.written;
        let mut filled = 0;
        for (head, payload) in &self.frames {
            for part in [head.as_slice(), &payload[..]] {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                if filled == out.len() {
                    return filled;
                }
                out[filled] = IoSlice::new(&part[skip..]);
                skip = 0;
                filled += 1;
            }
        }
        filled
    }

    /// Records `n` more bytes written, dropping the frames fully written.
    fn advance(&mut self, n: usize) {
        self.written += n;
        let mut done = 0;
        for (head, payload) in &self.frames {
            let size = usize::from(head.len) + payload.len();
            if self.written < size {
                break;
            }
            self.written -= size;
            done += 1;
        }
        if done == self.frames.len() {
            // Give the batch's list back: most connections are idle between writes.
            *self = Writer::default();
        } else {
            self.frames.drain(..done);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// Accepts at most `step` bytes per write, and is not ready every other call.
    struct Trickle {
        got: Vec<u8>,
        step: usize,
        ready: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.ready = !self.ready;
            if !self.ready {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(self.step);
            self.got.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn expected(frames: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (op, p) in frames {
            out.push(0x80 | op);
            match p.len() {
                n if n < 126 => out.push(n as u8),
                n if n <= 0xFFFF => {
                    out.push(126);
                    out.extend_from_slice(&(n as u16).to_be_bytes());
                }
                n => {
                    out.push(127);
                    out.extend_from_slice(&(n as u64).to_be_bytes());
                }
            }
            out.extend_from_slice(p);
        }
        out
    }

    #[tokio::test]
    async fn frames_of_every_length_survive_partial_and_interrupted_writes() {
        let payloads: Vec<Vec<u8>> = [0usize, 1, 125, 126, 65_535, 65_536, 70_000]
            .iter()
            .map(|&n| (0..n).map(|i| (i % 251) as u8).collect())
            .collect();
        for step in [3usize, 4096, usize::MAX] {
            let mut w = Writer::default();
            let mut want = Vec::new();
            for (i, p) in payloads.iter().enumerate() {
                let codec = if i % 2 == 0 {
                    Codec::Json
                } else {
                    Codec::Msgpack
                };
                w.data(codec, Bytes::from(p.clone()));
                want.push((if i % 2 == 0 { 1 } else { 2 }, p.clone()));
            }
            w.ping();
            want.push((9, Vec::new()));
            let mut io = Trickle {
                got: Vec::new(),
                step,
                ready: false,
            };
            // Interrupt the batch after a few writes (as a close request
            // would), then resume it: nothing is lost or repeated.
            let first = tokio::time::timeout(std::time::Duration::from_millis(1), async {
                w.write_to(&mut io).await
            })
            .await;
            if first.is_err() {
                w.write_to(&mut io).await.unwrap();
            }
            assert!(w.is_empty());
            assert_eq!(io.got, expected(&want), "step {step}");
        }
    }

    #[test]
    fn more_frames_than_one_write_takes() {
        let mut w = Writer::default();
        for _ in 0..100 {
            w.data(Codec::Json, Bytes::from_static(b"{}"));
        }
        let filled = |w: &Writer| w.slices(&mut [IoSlice::new(&[]); SLICES]);
        assert_eq!(filled(&w), SLICES);
        w.advance(4 * 70);
        assert_eq!(w.frames.len(), 30);
        assert_eq!(filled(&w), 60);
    }
}

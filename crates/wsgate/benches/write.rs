//! The session's write path: one batch of frames for one socket, written the
//! way the session does it ([`Writer`]: headers plus shared payloads in
//! vectored writes) against tungstenite's own writer (each payload copied into
//! its per-socket buffer, then written). The socket is a sink that takes
//! everything, so the figures are the CPU of framing and copying alone.
//! Run: `cargo bench -p wsgate --bench write`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: its fixed inputs are valid, and a failure stops it with its message"
)]

use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::io::AsyncWrite;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use wsgate::session::writer::Writer;
use wsgate_protocol::Codec;

/// Counts what it is given; every write takes all of it.
#[derive(Default)]
struct Sink {
    bytes: usize,
    writes: usize,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes += buf.len();
        self.writes += 1;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// tungstenite's socket must read too; nothing comes.
impl Read for Sink {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().write(buf))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = bufs.iter().map(|b| b.len()).sum();
        this.bytes += n;
        this.writes += 1;
        Poll::Ready(Ok(n))
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn write_batch(c: &mut Criterion) {
    let payload = Bytes::from(vec![b'x'; 160]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("write_batch");
    for frames in [1usize, 8, 64] {
        g.throughput(Throughput::Elements(frames as u64));
        g.bench_with_input(BenchmarkId::new("vectored", frames), &frames, |b, &n| {
            let mut sink = Sink::default();
            b.iter(|| {
                let mut w = Writer::default();
                for _ in 0..n {
                    w.data(Codec::Json, payload.clone());
                }
                rt.block_on(w.write_to(&mut sink)).unwrap();
            });
            assert!(sink.writes > 0);
        });
        g.bench_with_input(BenchmarkId::new("tungstenite", frames), &frames, |b, &n| {
            let config = WebSocketConfig::default().write_buffer_size(16 * 1024);
            let mut ws = WebSocket::from_raw_socket(Sink::default(), Role::Server, Some(config));
            b.iter(|| {
                for _ in 0..n {
                    let frame = Frame::message(payload.clone(), OpCode::Data(Data::Text), true);
                    ws.write(Message::Frame(frame)).unwrap();
                }
                ws.flush().unwrap();
            });
        });
    }
    g.finish();
}

criterion_group!(benches, write_batch);
criterion_main!(benches);

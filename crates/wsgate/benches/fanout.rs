//! Fan-out hot path: one message pushed to N connections' outboxes through the
//! hub, encoded once and shared, then taken out as the session's write loop
//! would (the encoded payload for its codec). Run: `cargo bench -p wsgate`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: its fixed inputs are valid, and a failure stops it with its message"
)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;
use wsgate::hub::{Conn, Hub, Outgoing};
use wsgate_protocol::{Codec, Kind, MessageFrame, ServerFrame};

fn message() -> ServerFrame {
    ServerFrame::Message(MessageFrame {
        id: "01a20326-6deb-7243-bb49-dbd9a285ad7d".into(),
        kind: Kind::Broadcast,
        from: "server".into(),
        to: None,
        room: None,
        content: json!({"text":"price update","bid":101.25,"ask":101.5}),
        time: 1_795_349_179_883,
        replay: false,
        offset: None,
        epoch: None,
    })
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_to_all");
    for n in [1_000usize, 10_000] {
        let hub = Hub::new();
        let mut outboxes = Vec::with_capacity(n);
        for i in 0..n {
            let conn = Conn::new(i as u64 + 1, Arc::from(format!("u{i}").as_str()), 64);
            hub.add(&conn);
            let codec = if i % 10 == 0 {
                Codec::Msgpack
            } else {
                Codec::Json
            };
            outboxes.push((conn, codec));
        }
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let d = Outgoing::message(message(), Kind::Broadcast, 0);
                let queued = hub.to_all(&d);
                assert_eq!(queued, n);
                let mut taken = Vec::with_capacity(1);
                for (conn, codec) in outboxes.iter() {
                    conn.take(&mut taken, 1);
                    for d in taken.drain(..) {
                        let m = d.payload(*codec).expect("encodes");
                        std::hint::black_box(m);
                    }
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);

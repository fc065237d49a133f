//! Codec hot paths: decoding client frames and encoding server frames, in both
//! subprotocols. Run: `cargo bench -p wsgate-protocol`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark: its fixed inputs are valid, and a failure stops it with its message"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use wsgate_protocol::{decode_client, encode_server, Codec, Kind, MessageFrame, ServerFrame};

fn decode(c: &mut Criterion) {
    let frame = json!({"type":"publish","room":"lobby","ref":42,"content":{"text":"hello, world","n":7,"tags":["a","b"]}});
    let as_json = frame.to_string().into_bytes();
    let as_msgpack = rmp_serde::to_vec_named(&frame).expect("encodes");
    let mut g = c.benchmark_group("decode_client");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_publish", |b| {
        b.iter(|| decode_client(Codec::Json, black_box(&as_json)))
    });
    g.bench_function("msgpack_publish", |b| {
        b.iter(|| decode_client(Codec::Msgpack, black_box(&as_msgpack)))
    });
    let bad = b"{\"type\":\"publish\",\"room\":5}".to_vec();
    g.bench_function("json_bad_request", |b| {
        b.iter(|| decode_client(Codec::Json, black_box(&bad)))
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let frame = ServerFrame::Message(MessageFrame {
        id: "01a20326-6deb-7243-bb49-dbd9a285ad7d".into(),
        kind: Kind::Room,
        from: "alice".into(),
        to: None,
        room: Some("lobby".into()),
        content: json!({"text":"hello, world","n":7,"tags":["a","b"]}),
        time: 1_795_349_179_883,
        replay: false,
        offset: Some(1_234),
        epoch: Some("5f0c3a9e12b4d678".into()),
    });
    let mut g = c.benchmark_group("encode_server");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_message", |b| {
        b.iter(|| encode_server(Codec::Json, black_box(&frame)))
    });
    g.bench_function("msgpack_message", |b| {
        b.iter(|| encode_server(Codec::Msgpack, black_box(&frame)))
    });
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);

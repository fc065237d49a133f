//! Any bytes as what a client writes after the upgrade, read by the server's
//! own frame reader (`session::reader`) with the limit the server really
//! uses: never a panic, never a message over the hard limit, never more held
//! than one message and one frame, and the same frames however the bytes are
//! split into reads (the first input byte picks the read size, and its low
//! bit whether permessage-deflate was negotiated: then RSV1 frames are
//! inflated, never past the hard limit).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::config::Config;
use wsgate::session::reader::{Frame, ReadError, Reader, SCRATCH};

/// Every frame read from `wire` fed `chunk` bytes at a time, and the error
/// that ended it if any.
fn read(wire: &[u8], chunk: usize, limit: usize, deflate: bool) -> (Vec<Frame>, Option<ReadError>) {
    let mut reader = Reader::new(deflate, Default::default());
    let mut frames = Vec::new();
    for part in wire.chunks(chunk) {
        let mut next = reader.feed(part, limit);
        loop {
            match next {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
            next = reader.next_pending(limit);
        }
        assert!(
            reader.held() <= 2 * (limit + 14) + 2 * SCRATCH + wire.len(),
            "the reader holds {} bytes",
            reader.held()
        );
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, wire)) = data.split_first() else {
        return;
    };
    let config = Config {
        max_message_bytes: 1024,
        ..Config::default()
    };
    let hard = config.hard_message_limit();
    let deflate = split & 1 == 1;
    let whole = read(wire, wire.len().max(1), hard, deflate);
    for frame in &whole.0 {
        let len = match frame {
            Frame::Text(t) => t.len(),
            Frame::Binary(b) | Frame::Ping(b) => b.len(),
            Frame::Pong | Frame::Close(_) => 0,
        };
        assert!(len <= hard, "a message over the hard limit");
    }
    let split = read(wire, usize::from(split >> 1).max(1), hard, deflate);
    assert_eq!(whole, split, "the frames depend on how the bytes were read");
});

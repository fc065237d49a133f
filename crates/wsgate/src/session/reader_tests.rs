use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const LIMIT: usize = 1 << 20;

/// A client frame: FIN, opcode, masked (or not) payload.
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mut body = payload.to_vec();
    if let Some(mask) = mask {
        out.extend_from_slice(&mask);
        unmask(&mut body, mask);
    }
    out.extend_from_slice(&body);
    out
}

fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, opcode, payload, Some(MASK))
}

/// Every frame the reader returns for `wire` fed in chunks of `chunk`
/// bytes, ending with the error if there is one.
fn read_all(wire: &[u8], chunk: usize, limit: usize) -> Vec<Result<Frame, ReadError>> {
    let mut r = Reader::default();
    let mut out = Vec::new();
    for part in wire.chunks(chunk.max(1)) {
        let mut next = r.feed(part, limit);
        loop {
            match next {
                Ok(Some(f)) => out.push(Ok(f)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
            next = r.next_pending(limit);
        }
    }
    out
}

/// The same in every chunking: whole, byte by byte, and odd sizes.
fn read(wire: &[u8], limit: usize) -> Vec<Result<Frame, ReadError>> {
    let whole = read_all(wire, wire.len(), limit);
    for chunk in [1, 2, 3, 7, 125, 4096] {
        assert_eq!(read_all(wire, chunk, limit), whole, "chunk {chunk}");
    }
    whole
}

#[test]
fn a_masked_text_frame_is_unmasked() {
    let got = read(&masked(true, TEXT, b"{\"type\":\"ping\"}"), LIMIT);
    assert_eq!(got, vec![Ok(Frame::Text("{\"type\":\"ping\"}".into()))]);
}

#[test]
fn an_unmasked_client_frame_is_a_protocol_error() {
    let got = read(&frame(true, TEXT, b"hi", None), LIMIT);
    assert_eq!(
        got,
        vec![Err(ReadError::Protocol("unmasked frame from a client"))]
    );
}

#[test]
fn lengths_at_every_encoding_boundary() {
    for n in [0usize, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
        let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let wire = masked(true, BINARY, &payload);
        let header = wire.len() - n;
        assert_eq!(
            header,
            match n {
                0..=125 => 6,
                126..=65_535 => 8,
                _ => 14,
            },
            "header of {n}"
        );
        assert_eq!(read(&wire, LIMIT), vec![Ok(Frame::Binary(payload))], "{n}");
    }
}

#[test]
fn fragments_are_reassembled_around_interleaved_control_frames() {
    let mut wire = masked(false, TEXT, b"hel");
    wire.extend(masked(true, PING, b"p1"));
    wire.extend(masked(false, CONTINUATION, b"lo "));
    wire.extend(masked(true, PONG, b""));
    wire.extend(masked(true, CONTINUATION, b"world"));
    wire.extend(masked(true, BINARY, &[1, 2, 3]));
    assert_eq!(
        read(&wire, LIMIT),
        vec![
            Ok(Frame::Ping(b"p1".to_vec())),
            Ok(Frame::Pong),
            Ok(Frame::Text("hello world".into())),
            Ok(Frame::Binary(vec![1, 2, 3])),
        ]
    );
}

#[test]
fn unknown_opcodes_are_protocol_errors() {
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert_eq!(
            read(&masked(true, op, b"x"), LIMIT),
            vec![Err(ReadError::Protocol("unknown opcode"))],
            "opcode {op:#x}"
        );
    }
}

#[test]
fn reserved_bits_are_protocol_errors() {
    for rsv in [0x40u8, 0x20, 0x10] {
        let mut wire = masked(true, TEXT, b"x");
        wire[0] |= rsv;
        assert_eq!(
            read(&wire, LIMIT),
            vec![Err(ReadError::Protocol("reserved bits set"))],
            "rsv {rsv:#x}"
        );
    }
}

#[test]
fn utf8_is_checked_on_the_whole_message() {
    // "é" is 0xC3 0xA9: split across two fragments it is still valid.
    let mut wire = masked(false, TEXT, b"caf\xc3");
    wire.extend(masked(true, CONTINUATION, b"\xa9"));
    assert_eq!(read(&wire, LIMIT), vec![Ok(Frame::Text("café".into()))]);
    // A lead byte whose continuation never comes is not.
    let mut wire = masked(false, TEXT, b"caf\xc3");
    wire.extend(masked(true, CONTINUATION, b"!"));
    assert_eq!(read(&wire, LIMIT), vec![Err(ReadError::Utf8)]);
    assert_eq!(
        read(&masked(true, TEXT, b"\xff"), LIMIT),
        vec![Err(ReadError::Utf8)]
    );
    // Binary messages are not text.
    assert_eq!(
        read(&masked(true, BINARY, b"\xff"), LIMIT),
        vec![Ok(Frame::Binary(vec![0xff]))]
    );
}

#[test]
fn control_frames_are_small_and_whole() {
    assert_eq!(
        read(&masked(true, PING, &[0; 125]), LIMIT),
        vec![Ok(Frame::Ping(vec![0; 125]))]
    );
    assert_eq!(
        read(&masked(true, PING, &[0; 126]), LIMIT),
        vec![Err(ReadError::Protocol("control frame over 125 bytes"))]
    );
    assert_eq!(
        read(&masked(false, PING, b""), LIMIT),
        vec![Err(ReadError::Protocol("fragmented control frame"))]
    );
}

#[test]
fn fragments_must_follow_the_rules() {
    assert_eq!(
        read(&masked(true, CONTINUATION, b"x"), LIMIT),
        vec![Err(ReadError::Protocol("continuation without a message"))]
    );
    let mut wire = masked(false, TEXT, b"a");
    wire.extend(masked(true, TEXT, b"b"));
    assert_eq!(
        read(&wire, LIMIT),
        vec![Err(ReadError::Protocol(
            "new message inside a fragmented one"
        ))]
    );
}

#[test]
fn over_the_limit_is_refused_from_the_header() {
    let limit = 1000;
    assert_eq!(
        read(&masked(true, TEXT, &[b'a'; 1000]), limit),
        vec![Ok(Frame::Text("a".repeat(1000)))]
    );
    // Only the header is sent: the refusal does not wait for the payload.
    let mut header = masked(true, TEXT, &[b'a'; 1001]);
    header.truncate(4);
    assert_eq!(read(&header, limit), vec![Err(ReadError::TooBig { limit })]);
    let mut huge = vec![0x82, 0x80 | 127];
    huge.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
    assert_eq!(read(&huge, limit), vec![Err(ReadError::TooBig { limit })]);
    huge[2] = 0xff;
    assert_eq!(
        read(&huge, limit),
        vec![Err(ReadError::Protocol(
            "frame length with the top bit set"
        ))]
    );
    // Fragments each under the limit, adding up past it.
    let mut wire = masked(false, BINARY, &[0; 600]);
    wire.extend(masked(true, CONTINUATION, &[0; 401]));
    assert_eq!(read(&wire, limit), vec![Err(ReadError::TooBig { limit })]);
}

#[test]
fn close_frames_carry_a_code_a_peer_may_send() {
    let close = |payload: &[u8]| read(&masked(true, CLOSE, payload), LIMIT);
    assert_eq!(close(b""), vec![Ok(Frame::Close(None))]);
    assert_eq!(
        close(&[0x03]),
        vec![Err(ReadError::Protocol("close frame of one byte"))]
    );
    let mut normal = 1000u16.to_be_bytes().to_vec();
    normal.extend_from_slice(b"bye");
    assert_eq!(
        close(&normal),
        vec![Ok(Frame::Close(Some((1000, "bye".into()))))]
    );
    assert_eq!(
        close(&4001u16.to_be_bytes()),
        vec![Ok(Frame::Close(Some((4001, String::new()))))]
    );
    for bad in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
        assert_eq!(
            close(&bad.to_be_bytes()),
            vec![Ok(Frame::Close(Some((1002, "Protocol violation".into()))))],
            "code {bad}"
        );
    }
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.push(0xff);
    assert_eq!(close(&bad_reason), vec![Err(ReadError::Utf8)]);
}

#[test]
fn buffers_are_given_back_once_a_message_completes() {
    let mut r = Reader::default();
    let mut wire = masked(false, BINARY, &[7; 40_000]);
    wire.extend(masked(true, CONTINUATION, &[7; 40_000]));
    let mut got = None;
    for part in wire.chunks(SCRATCH) {
        if let Some(f) = r.feed(part, LIMIT).unwrap() {
            got = Some(f);
        }
        assert!(r.held() <= 2 * 80_000, "held {}", r.held());
    }
    assert_eq!(got, Some(Frame::Binary(vec![7; 80_000])));
    assert_eq!(r.held(), 0, "an idle reader holds nothing");
    // Two frames in one read: the second waits in `pending`, then is freed.
    let mut two = masked(true, TEXT, b"a");
    two.extend(masked(true, TEXT, b"b"));
    assert_eq!(r.feed(&two, LIMIT), Ok(Some(Frame::Text("a".into()))));
    assert!(r.held() > 0);
    assert_eq!(r.next_pending(LIMIT), Ok(Some(Frame::Text("b".into()))));
    assert_eq!(r.held(), 0);
}

#[tokio::test]
async fn reads_frames_from_a_socket_and_ends_at_eof() {
    let (mut client, mut server) = tokio::io::duplex(64);
    let mut wire = Vec::new();
    for i in 0..50u8 {
        wire.extend(masked(true, BINARY, &vec![i; usize::from(i) * 10]));
    }
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        client.write_all(&wire).await.unwrap();
    });
    let mut r = Reader::default();
    for i in 0..50u8 {
        let f = r.next(&mut server, LIMIT).await;
        assert_eq!(f, Some(Ok(Frame::Binary(vec![i; usize::from(i) * 10]))));
    }
    writer.await.unwrap();
    assert_eq!(r.next(&mut server, LIMIT).await, None);
}

/// The same reading as [`read_all`], on a connection that negotiated
/// permessage-deflate, for every chunking.
fn read_deflate(wire: &[u8], limit: usize) -> Vec<Result<Frame, ReadError>> {
    let all = |chunk: usize| {
        let mut r = Reader::new(true, bytes::Bytes::new());
        let mut out = Vec::new();
        for part in wire.chunks(chunk.max(1)) {
            let mut next = r.feed(part, limit);
            loop {
                match next {
                    Ok(Some(f)) => out.push(Ok(f)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
                next = r.next_pending(limit);
            }
        }
        out
    };
    let whole = all(wire.len());
    for chunk in [1, 3, 125, 4096] {
        assert_eq!(all(chunk), whole, "chunk {chunk}");
    }
    whole
}

fn rsv1(mut wire: Vec<u8>) -> Vec<u8> {
    wire[0] |= 0x40;
    wire
}

#[test]
fn compressed_messages_with_deflate_negotiated() {
    let text = "hello compressed world ".repeat(20);
    let c = crate::deflate::compress(text.as_bytes()).unwrap();
    // One frame, and the same message in three fragments (RSV1 on the first).
    let mut wire = rsv1(masked(true, TEXT, &c));
    let (a, rest) = c.split_at(c.len() / 3);
    let (b, rest) = rest.split_at(rest.len() / 2);
    wire.extend(rsv1(masked(false, TEXT, a)));
    wire.extend(masked(false, CONTINUATION, b));
    wire.extend(masked(true, CONTINUATION, rest));
    // An uncompressed message on the same connection (RSV1 clear).
    wire.extend(masked(true, BINARY, b"plain"));
    let bin = crate::deflate::compress(&[7u8; 3000]).unwrap();
    wire.extend(rsv1(masked(true, BINARY, &bin)));
    assert_eq!(
        read_deflate(&wire, LIMIT),
        vec![
            Ok(Frame::Text(text.clone())),
            Ok(Frame::Text(text)),
            Ok(Frame::Binary(b"plain".to_vec())),
            Ok(Frame::Binary(vec![7u8; 3000])),
        ]
    );
}

#[test]
fn rsv1_rules() {
    let c = crate::deflate::compress(b"abc").unwrap();
    // Without negotiation RSV1 stays a protocol error.
    assert_eq!(
        read(&rsv1(masked(true, TEXT, &c)), LIMIT),
        vec![Err(ReadError::Protocol("reserved bits set"))]
    );
    let on_continuation = [
        masked(false, TEXT, b"ab"),
        rsv1(masked(true, CONTINUATION, b"c")),
    ]
    .concat();
    let cases = [
        on_continuation,
        rsv1(masked(true, PING, b"")),
        rsv1(masked(true, CLOSE, b"")),
        rsv1(masked(true, PONG, b"")),
    ];
    for wire in cases {
        assert_eq!(
            read_deflate(&wire, LIMIT),
            vec![Err(ReadError::Protocol(
                "RSV1 on a continuation or control frame"
            ))],
            "{wire:02x?}"
        );
    }
    // RSV2 and RSV3 are never allowed.
    for rsv in [0x20u8, 0x10] {
        let mut wire = masked(true, TEXT, b"x");
        wire[0] |= rsv;
        assert_eq!(
            read_deflate(&wire, LIMIT),
            vec![Err(ReadError::Protocol("reserved bits set"))]
        );
    }
}

#[test]
fn inflated_messages_are_bounded_and_checked() {
    let limit = 16 * 1024;
    // A bomb: 10 MB of zeros in a few KiB, closed at the limit (1009).
    let bomb = crate::deflate::compress(&vec![0u8; 10 << 20]).unwrap();
    assert!(bomb.len() < limit);
    assert_eq!(
        read_deflate(&rsv1(masked(true, BINARY, &bomb)), limit),
        vec![Err(ReadError::TooBig { limit })]
    );
    // Data that does not inflate: 1002.
    assert_eq!(
        read_deflate(&rsv1(masked(true, BINARY, &[0xff, 0xff, 0xff])), limit),
        vec![Err(ReadError::Protocol("invalid compressed data"))]
    );
    // Text that is not UTF-8 once inflated: 1007.
    let bad = crate::deflate::compress(&[0xc3, 0x28]).unwrap();
    assert_eq!(
        read_deflate(&rsv1(masked(true, TEXT, &bad)), limit),
        vec![Err(ReadError::Utf8)]
    );
}

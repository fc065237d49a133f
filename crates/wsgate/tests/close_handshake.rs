//! Contract gaps of #10, against the real binary:
//! - an `error` to an oversized frame echoes the frame's `ref` (section 4),
//!   so an SDK request is rejected instead of timing out;
//! - a server-initiated close keeps the socket open and reading until the
//!   peer's close (or a short timeout): a client still sending a large
//!   fragmented message sees the 1009 close and a clean end of stream, not a
//!   reset that could eat the close frame;
//! - an admin API 413 is readable by a client that sent its whole body.

#[macro_use]
mod support;

use serde_json::{json, Value};
use support::{encode_frame, RawWs, WsgateProc, API_KEY, CONTINUATION, TEXT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `--max-message-bytes 1024`: the hard limit is 16 KiB.
const MAX: usize = 1024;
const HARD: usize = 16 * 1024;

async fn server() -> WsgateProc {
    WsgateProc::start(&[
        "--max-message-bytes",
        "1024",
        "--api-max-body-bytes",
        "4096",
    ])
    .await
}

#[tokio::test]
async fn an_oversized_frame_gets_message_too_large_with_its_ref() {
    let server = server().await;
    let mut ws = RawWs::connect(&server, "big-sender").await;
    let content = "x".repeat(MAX * 2);
    ws.send_json(&json!({"type": "send", "ref": "big-1", "to": "bob", "content": content}))
        .await;
    let v = ws.next_json().await;
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["code"], "message_too_large", "{v}");
    assert_eq!(v["ref"], "big-1", "the error echoes the frame's ref: {v}");
    // A numeric ref too, and the connection stays open.
    ws.send_json(&json!({"type": "publish", "ref": 42, "room": "r", "content": content}))
        .await;
    let v = ws.next_json().await;
    assert_eq!(
        (v["code"].clone(), v["ref"].clone()),
        (json!("message_too_large"), json!(42))
    );
    ws.assert_open().await;

    // MessagePack: the same, from a binary frame.
    let mut mp = RawWs::connect_with(
        &server,
        &format!("/ws?token={}", support::token("big-mp")),
        &[("Sec-WebSocket-Protocol", "wsgate.v1.msgpack")],
    )
    .await;
    let frame = json!({"type": "send", "ref": "big-2", "to": "bob", "content": content});
    let bytes = rmp_serde::to_vec_named(&frame).expect("msgpack");
    mp.send_frame(support::BINARY, &bytes, true).await;
    let v = mp.next_json().await;
    assert_eq!(
        (v["code"].clone(), v["ref"].clone()),
        (json!("message_too_large"), json!("big-2"))
    );
}

#[tokio::test]
async fn a_client_still_sending_a_fragmented_message_sees_1009_and_a_clean_end() {
    let server = server().await;
    let mut ws = RawWs::connect(&server, "blaster").await;
    let piece = vec![b' '; 4096];
    ws.send_frame(TEXT, &piece, false).await;
    // Past the hard limit, and then some: the server closes mid-message.
    for _ in 0..(HARD / piece.len() + 2) {
        ws.stream()
            .write_all(&encode_frame(CONTINUATION, &piece, false))
            .await
            .expect("fragments up to the limit are taken");
    }
    assert_eq!(ws.close_code().await, Some(1009));
    // The client was still sending when the close came: its next fragments
    // must be read (and dropped) by the server, not answered with a reset.
    for _ in 0..64 {
        ws.stream()
            .write_all(&encode_frame(CONTINUATION, &piece, false))
            .await
            .expect("the server keeps reading after its close frame");
    }
    // The client's close, then the end of its side: a clean end of stream.
    ws.stream()
        .write_all(&encode_frame(0x8, &1000u16.to_be_bytes(), true))
        .await
        .expect("close frame");
    ws.stream().shutdown().await.expect("shutdown");
    let mut rest = Vec::new();
    let end = tokio::time::timeout(support::T, ws.stream().read_to_end(&mut rest)).await;
    match end {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("the server reset the connection instead of closing it: {e}"),
        Err(_) => panic!("the server did not close the connection"),
    }
}

#[tokio::test]
async fn a_413_is_readable_by_a_client_that_sent_its_whole_body() {
    let server = server().await;
    for size in [8 * 1024, 256 * 1024, 2 * 1024 * 1024] {
        let body = format!(r#"{{"to":"bob","content":"{}"}}"#, "y".repeat(size));
        let head = format!(
            "POST /api/v1/publish HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {API_KEY}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let mut s = TcpStream::connect(server.admin).await.expect("connect");
        s.write_all(head.as_bytes()).await.expect("head");
        s.write_all(body.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{size}: the server reset while the body was sent: {e}"));
        let mut buf = Vec::new();
        let read = tokio::time::timeout(support::T, s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf).to_string();
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{size}: reset before the response was read: {e} ({text:?})"),
            Err(_) => panic!("{size}: no end of the response: {text:?}"),
        }
        assert!(text.starts_with("HTTP/1.1 413"), "{size}: {text}");
        let json_start = text.find("\r\n\r\n").map_or(0, |i| i + 4);
        let v: Value = serde_json::from_str(&text[json_start..]).unwrap_or(Value::Null);
        assert_eq!(v["error"], "payload_too_large", "{size}: {text}");
    }
}

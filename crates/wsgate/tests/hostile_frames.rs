//! Hostile clients, WebSocket frames and payloads: bad UTF-8, oversize
//! fragmented messages, ping floods, absurd declared lengths, frames of the
//! wrong kind, deeply nested JSON, MessagePack with huge declared sizes, bad
//! names and duplicate keys. Each case checks the contract's answer, that the
//! process lives, that a bystander still gets its pong, and the metric.

#[macro_use]
mod support;

use serde_json::{json, Value};
use support::{assert_unharmed, encode_frame, RawWs, WsgateProc, BINARY, CONTINUATION, PING, TEXT};
use tokio::io::AsyncWriteExt;

/// `--max-message-bytes 131072`: hard limit 512 KiB (4x), so 100,000 `[` is
/// read and parsed rather than refused for its size.
const MAX: &str = "131072";
const HARD: usize = 4 * 131072;

async fn server() -> WsgateProc {
    WsgateProc::start(&["--max-message-bytes", MAX]).await
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_1007() {
    let mut server = server().await;
    let mut bystander = server.bystander("bystander").await;
    let mut ws = RawWs::connect(&server, "mallory").await;
    ws.send_frame(TEXT, b"{\"type\":\"ping\",\"x\":\"\xff\xfe\xc0\"}", true)
        .await;
    assert_eq!(ws.close_code().await, Some(1007));
    server
        .wait_metric("wsgate_disconnects_total{code=\"1007\"}", 1.0)
        .await;
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn fragments_adding_up_past_the_hard_limit_close_1009() {
    let mut server = server().await;
    let mut bystander = server.bystander("bystander").await;
    let rss_before = server.proc_status("VmRSS");
    let mut ws = RawWs::connect(&server, "mallory").await;
    let piece = vec![b' '; 64 * 1024];
    ws.send_frame(TEXT, &piece, false).await;
    // Each fragment is small; together they pass the hard limit.
    for _ in 0..(HARD / piece.len() + 2) {
        let frame = encode_frame(CONTINUATION, &piece, false);
        if ws.stream().write_all(&frame).await.is_err() {
            break; // the server closed mid-stream
        }
    }
    assert_eq!(ws.close_code().await, Some(1009));
    server
        .wait_metric("wsgate_disconnects_total{code=\"1009\"}", 1.0)
        .await;
    let grown = server.proc_status("VmRSS").saturating_sub(rss_before);
    assert!(grown < 32 * 1024, "RSS grew {grown} kB");
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn a_huge_declared_frame_length_closes_1009_without_allocating_it() {
    let mut server = server().await;
    let mut bystander = server.bystander("bystander").await;
    let rss_before = server.proc_status("VmRSS");
    for len in [u64::from(u32::MAX), 1 << 62] {
        let mut ws = RawWs::connect(&server, "mallory").await;
        let mut frame = vec![0x80 | BINARY, 0x80 | 127];
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&[1, 2, 3, 4]);
        frame.extend_from_slice(&[0u8; 1024]);
        ws.stream().write_all(&frame).await.expect("write");
        assert_eq!(ws.close_code().await, Some(1009), "declared {len}");
    }
    let grown = server.proc_status("VmRSS").saturating_sub(rss_before);
    assert!(grown < 32 * 1024, "RSS grew {grown} kB");
    server
        .wait_metric("wsgate_disconnects_total{code=\"1009\"}", 2.0)
        .await;
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn a_ping_flood_is_rate_limited_then_closed_1008() {
    let mut server = server().await;
    let mut bystander = server.bystander("bystander").await;
    let mut ws = RawWs::connect(&server, "mallory").await;
    // rate-limit 20/s, burst 40: the 41st ping onward is refused; 10 refusals close.
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.extend_from_slice(&encode_frame(PING, b"flood", true));
    }
    let _ = ws.stream().write_all(&flood).await;
    let mut limited = 0;
    let code = loop {
        match ws.read_frame().await {
            Some(support::Frame::Text(t)) => {
                let v: Value = serde_json::from_str(&t).expect("JSON");
                if v["type"] == "error" {
                    assert_eq!(v["code"], "rate_limited", "{v}");
                    assert!(v["retry_after_ms"].as_u64().is_some_and(|ms| ms >= 1));
                    limited += 1;
                }
            }
            Some(support::Frame::Close(code)) => break code,
            Some(_) => {}
            None => panic!("closed without a close frame"),
        }
    };
    assert_eq!(code, Some(1008));
    assert_eq!(limited, 10, "ten rate_limited errors before the close");
    assert!(server.metric("wsgate_rate_limited_total").await >= 10.0);
    server
        .wait_metric("wsgate_disconnects_total{code=\"1008\"}", 1.0)
        .await;
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn binary_on_json_and_text_on_msgpack_are_bad_requests_and_stay_open() {
    let mut server = server().await;
    let mut bystander = server.bystander("bystander").await;
    let before = server
        .metric("wsgate_frame_errors_total{code=\"bad_request\"}")
        .await;

    let mut json_ws = RawWs::connect(&server, "mallory").await;
    json_ws
        .send_frame(BINARY, b"\x81\xa4type\xa4ping", true)
        .await;
    let err = json_ws.next_json().await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("error"), Some("bad_request"))
    );
    json_ws.assert_open().await;

    let path = format!("/ws?token={}", support::token("mallory"));
    let mut mp = RawWs::connect_with(
        &server,
        &path,
        &[("sec-websocket-protocol", "wsgate.v1.msgpack")],
    )
    .await;
    mp.send_frame(TEXT, br#"{"type":"ping"}"#, true).await;
    let err = mp.next_json().await;
    assert_eq!(
        (err["type"].as_str(), err["code"].as_str()),
        (Some("error"), Some("bad_request"))
    );
    // Still open: a MessagePack ping gets a pong.
    let ping = rmp_serde::to_vec_named(&json!({"type": "ping", "ref": 7})).expect("encode");
    mp.send_frame(BINARY, &ping, true).await;
    assert_eq!(mp.next_json().await, json!({"type": "pong", "ref": 7}));

    let after = server
        .metric("wsgate_frame_errors_total{code=\"bad_request\"}")
        .await;
    assert!(after >= before + 2.0, "{before} -> {after}");
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn deeply_nested_json_is_a_bad_request() {
    let mut server = server().await;
    let mut bystander = server.bystander("bystander").await;
    let mut ws = RawWs::connect(&server, "mallory").await;
    for body in [
        "[".repeat(100_000),
        format!(
            r#"{{"type":"send","to":"bob","content":{}"#,
            "[".repeat(100_000)
        ),
        format!(
            r#"{{"type":"send","to":"bob","content":{}}}"#,
            "{\"a\":".repeat(20_000)
        ),
    ] {
        assert!(body.len() <= HARD);
        ws.send_frame(TEXT, body.as_bytes(), true).await;
        let err = ws.next_json().await;
        assert_eq!(err["code"], "bad_request", "{err}");
    }
    ws.assert_open().await;
    assert!(
        server
            .metric("wsgate_frame_errors_total{code=\"bad_request\"}")
            .await
            >= 3.0
    );
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn msgpack_with_huge_declared_sizes_is_a_bad_request() {
    let mut server = server().await;
    let mut bystander = server.bystander("bystander").await;
    let rss_before = server.proc_status("VmRSS");
    let path = format!("/ws?token={}", support::token("mallory"));
    let mut mp = RawWs::connect_with(
        &server,
        &path,
        &[("sec-websocket-protocol", "wsgate.v1.msgpack")],
    )
    .await;
    let cases: [&[u8]; 6] = [
        b"\xdf\xff\xff\xff\xff",                                // map32 of 4G pairs
        b"\x81\xa4type\xdd\xff\xff\xff\xff",                    // array32 of 4G
        b"\x81\xa4type\xdb\xff\xff\xff\xff",                    // str32 of 4G bytes
        b"\x82\xa4type\xa4send\xa7content\xc6\xff\xff\xff\xf0", // bin32 of 4G bytes
        b"\x83\xa4type\xa4send\xa2to\xa3bob\xa7content\xdd\x7f\xff\xff\xff",
        b"\x83\xa4type\xa4send\xa2to\xa3bob\xa7content\xdf\x7f\xff\xff\xff",
    ];
    for case in cases {
        mp.send_frame(BINARY, case, true).await;
        let err = mp.next_json().await;
        assert_eq!(err["code"], "bad_request", "{case:?}: {err}");
    }
    // Deep nesting: past the depth limit (128, as for JSON) is a bad request;
    // 1,000 levels used to overflow the session's stack and abort the process.
    for (depth, ok) in [(100_000, false), (1_000, false), (100, true)] {
        let mut frame = b"\x84\xa4type\xa4send\xa2to\xa3bob\xa3ref\x01\xa7content".to_vec();
        frame.extend(std::iter::repeat_n(0x91u8, depth));
        frame.push(0xc0);
        mp.send_frame(BINARY, &frame, true).await;
        let answer = mp.next_json().await;
        if ok {
            assert_eq!(answer["ok"], true, "depth {depth}: {answer}");
        } else {
            assert_eq!(answer["code"], "bad_request", "depth {depth}: {answer}");
        }
    }
    let ping = rmp_serde::to_vec_named(&json!({"type": "ping"})).expect("encode");
    mp.send_frame(BINARY, &ping, true).await;
    assert_eq!(mp.next_json().await["type"], "pong");
    let grown = server.proc_status("VmRSS").saturating_sub(rss_before);
    assert!(grown < 32 * 1024, "RSS grew {grown} kB");
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn control_characters_and_non_ascii_in_names_are_refused() {
    let mut server = WsgateProc::start(&["--allow-anonymous"]).await;
    let mut bystander = server.bystander("bystander").await;
    for user in [
        "a%00b", "a%01b", "a%0Ab", "%C3%A9", "a%20b", "a%2Fb", "", "%FF",
    ] {
        let r = support::try_upgrade(&server, &format!("/ws?user={user}"), &[]).await;
        assert_eq!(r.status, 400, "?user={user}: {}", r.text());
        let body: Value = serde_json::from_str(&r.text()).unwrap_or(Value::Null);
        assert_eq!(body["error"], "bad_request", "?user={user}: {}", r.text());
    }
    assert!(
        server
            .metric("wsgate_connections_rejected_total{reason=\"bad_request\"}")
            .await
            >= 8.0
    );
    let mut ws = RawWs::connect_with(&server, "/ws?user=mallory", &[]).await;
    for room in [
        "a\u{0}b",
        "a\u{1}b",
        "a\nb",
        "é",
        "../x",
        "a b",
        "",
        "x\u{202e}y",
    ] {
        for frame in [
            json!({"type": "join", "room": room, "ref": 1}),
            json!({"type": "send", "to": room, "content": 1, "ref": 1}),
            json!({"type": "presence", "user": room, "ref": 1}),
        ] {
            ws.send_json(&frame).await;
            let err = ws.next_json().await;
            assert_eq!(
                (err["code"].as_str(), err["ref"].as_i64()),
                (Some("bad_request"), Some(1)),
                "{frame}"
            );
        }
        // Stay under the "10 errors in 10 s" rule: it is not what this tests.
        ws = RawWs::connect_with(&server, "/ws?user=mallory", &[]).await;
    }
    assert_unharmed(&mut server, &mut bystander).await;
}

#[tokio::test]
async fn duplicate_keys_are_bad_requests() {
    let mut server = server().await;
    let mut bystander = server.bystander("bystander").await;
    let mut ws = RawWs::connect(&server, "mallory").await;
    for text in [
        r#"{"type":"join","room":"a","room":"b"}"#,
        r#"{"type":"join","type":"leave","room":"a"}"#,
        r#"{"type":"send","to":"bob","content":1,"content":2}"#,
        r#"{"type":"ping","ref":1,"ref":2}"#,
    ] {
        ws.send_frame(TEXT, text.as_bytes(), true).await;
        let err = ws.next_json().await;
        assert_eq!(err["code"], "bad_request", "{text}: {err}");
    }
    ws.assert_open().await;

    let path = format!("/ws?token={}", support::token("mallory"));
    let mut mp = RawWs::connect_with(
        &server,
        &path,
        &[("sec-websocket-protocol", "wsgate.v1.msgpack")],
    )
    .await;
    mp.send_frame(
        BINARY,
        b"\x83\xa4type\xa4join\xa4room\xa1a\xa4room\xa1b",
        true,
    )
    .await;
    assert_eq!(mp.next_json().await["code"], "bad_request");
    assert_unharmed(&mut server, &mut bystander).await;
}

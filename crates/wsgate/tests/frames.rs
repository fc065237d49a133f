//! Client frames and their replies, every error code, the size limits, the
//! rate limit, the 10-errors rule, `caps` and `rooms` claims, max rooms,
//! heartbeats, token expiry and `refresh` (contract section 4).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is how a check fails"
)]

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use tokio_tungstenite::tungstenite::Message;
use wsgate_client::{Client, ErrorCode, ServerFrame};

/// Sends raw JSON text and returns the next frame as a value.
async fn raw(client: &mut Client, text: &str) -> Value {
    client
        .send_raw(Message::Text(text.to_owned().into()))
        .await
        .unwrap();
    client.next_value(T).await.unwrap()
}

/// Asserts the connection still answers a ping, and that nothing else was queued first.
async fn still_works(client: &mut Client) {
    client
        .send_frame(&json!({"type": "ping", "ref": "alive"}))
        .await
        .unwrap();
    let next = client.next_value(T).await.unwrap();
    assert_eq!(next, json!({"type": "pong", "ref": "alive"}));
}

#[tokio::test]
async fn ping_echoes_string_and_number_refs() {
    let node = start(config()).await;
    let mut c = node.connect("a").await;
    assert_eq!(
        raw(&mut c, r#"{"type":"ping","ref":"x1"}"#).await,
        json!({"type": "pong", "ref": "x1"})
    );
    assert_eq!(
        raw(&mut c, r#"{"type":"ping","ref":12345}"#).await,
        json!({"type": "pong", "ref": 12345})
    );
    assert_eq!(
        raw(&mut c, r#"{"type":"ping"}"#).await,
        json!({"type": "pong"})
    );
}

#[tokio::test]
async fn join_leave_and_presence_queries() {
    let node = start(config()).await;
    let mut a = node.connect("alice").await;
    let mut b = node.connect("bob").await;
    let r = a.request(join("lobby")).await.unwrap();
    assert_eq!(r.room.as_deref(), Some("lobby"));
    assert_eq!(r.members, Some(vec!["alice".to_string()]));
    let r = b.request(join("lobby")).await.unwrap();
    assert_eq!(r.members, Some(vec!["alice".into(), "bob".into()]));
    // Joining twice is fine and changes nothing.
    let r = b.request(join("lobby")).await.unwrap();
    assert_eq!(r.members, Some(vec!["alice".into(), "bob".into()]));

    let r = a
        .request(json!({"type": "presence", "room": "lobby"}))
        .await
        .unwrap();
    assert_eq!(r.members, Some(vec!["alice".into(), "bob".into()]));
    let r = a
        .request(json!({"type": "presence", "user": "bob"}))
        .await
        .unwrap();
    assert_eq!(
        (r.user.as_deref(), r.online, r.connections),
        (Some("bob"), Some(true), Some(1))
    );
    let _b2 = node.connect("bob").await;
    let r = a
        .request(json!({"type": "presence", "user": "bob"}))
        .await
        .unwrap();
    assert_eq!(r.connections, Some(2));
    let r = a
        .request(json!({"type": "presence", "user": "nobody"}))
        .await
        .unwrap();
    assert_eq!((r.online, r.connections), (Some(false), Some(0)));

    let r = b
        .request(json!({"type": "leave", "room": "lobby"}))
        .await
        .unwrap();
    assert_eq!(r.room.as_deref(), Some("lobby"));
    assert!(r.members.is_none());
    // Leaving a room one is not in is not an error.
    b.request(json!({"type": "leave", "room": "elsewhere"}))
        .await
        .unwrap();
    let r = a
        .request(json!({"type": "presence", "room": "lobby"}))
        .await
        .unwrap();
    assert_eq!(r.members, Some(vec!["alice".to_string()]));
}

#[tokio::test]
async fn malformed_frames_are_bad_request_and_the_connection_lives_on() {
    let node = start(config()).await;
    let mut c = node.connect("a").await;
    // An array is not a frame either. (The decoder reads an array positionally
    // into the frame's fields, so its second element may be echoed as `ref`.)
    let e = raw(&mut c, "[1,2,3]").await;
    assert_eq!(
        (&e["type"], &e["code"]),
        (&json!("error"), &json!("bad_request"))
    );
    for (text, has_ref) in [
        ("{not json", false),
        ("\"ping\"", false),
        (r#"{"ref":"r1"}"#, true),
        (r#"{"type":7,"ref":"r1"}"#, true),
        (r#"{"type":"join","ref":"r1"}"#, true),
        (r#"{"type":"join","room":5,"ref":"r1"}"#, true),
        (r#"{"type":"join","room":"has space","ref":"r1"}"#, true),
        (r#"{"type":"send","to":"b","ref":"r1"}"#, true),
    ] {
        let e = raw(&mut c, text).await;
        assert_eq!(e["type"], "error", "{text}");
        assert_eq!(e["code"], "bad_request", "{text}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
        if has_ref {
            assert_eq!(e["ref"], "r1", "{text}");
        } else {
            assert!(e.get("ref").is_none(), "{text}");
        }
    }
    still_works(&mut c).await;
    let mut c = node.connect("a").await;
    for text in [
        r#"{"type":"ack","ref":"r1"}"#,
        r#"{"type":"ack","id":"x","ids":["y"],"ref":"r1"}"#,
        r#"{"type":"ack","ids":[],"ref":"r1"}"#,
        r#"{"type":"typing","ref":"r1"}"#,
        r#"{"type":"presence","room":"r","user":"u","ref":"r1"}"#,
        r#"{"type":"refresh","ref":"r1"}"#,
        r#"{"type":"publish","room":"r","ref":"r1"}"#,
        r#"{"type":"broadcast","ref":"r1"}"#,
    ] {
        let e = raw(&mut c, text).await;
        assert_eq!(
            (&e["code"], &e["ref"]),
            (&json!("bad_request"), &json!("r1")),
            "{text}"
        );
    }
    let long_ref = format!(r#"{{"type":"ping","ref":"{}"}}"#, "x".repeat(65));
    assert_eq!(raw(&mut c, &long_ref).await["code"], "bad_request");
    still_works(&mut c).await;
    assert!(
        node.metric("wsgate_frame_errors_total{code=\"bad_request\"}")
            .await
            >= 17.0
    );
}

#[tokio::test]
async fn unknown_types_echo_the_ref() {
    let node = start(config()).await;
    let mut c = node.connect("a").await;
    let e = raw(&mut c, r#"{"type":"teleport","ref":9}"#).await;
    assert_eq!(e["code"], "unknown_type");
    assert_eq!(e["ref"], 9);
    let err = c.request(json!({"type": "dance"})).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownType));
    still_works(&mut c).await;
}

#[tokio::test]
async fn frames_over_the_limits() {
    let mut cfg = config();
    cfg.max_message_bytes = 1024;
    let hard = cfg.hard_message_limit();
    assert_eq!(hard, 16 * 1024, "hard limit is 4 x max, at least 16 KiB");
    let node = start(cfg).await;
    let mut c = node.connect("a").await;
    let big = send("b", json!("x".repeat(2000))).to_string();
    let e = raw(&mut c, &big).await;
    assert_eq!(e["code"], "message_too_large");
    still_works(&mut c).await;
    // At exactly max-message-bytes the frame is accepted.
    let mut frame = json!({"type": "ping", "ref": "r", "pad": ""}).to_string();
    let pad = 1024 - frame.len();
    frame = json!({"type": "ping", "ref": "r", "pad": "y".repeat(pad)}).to_string();
    assert_eq!(frame.len(), 1024);
    assert_eq!(raw(&mut c, &frame).await["type"], "pong");

    // Over the hard limit: closed with 1009.
    let huge = "z".repeat(hard + 1);
    c.send_raw(Message::Text(huge.into())).await.unwrap();
    let info = c.wait_closed(T).await.unwrap();
    assert_eq!(info.code, Some(1009));
    let other = node.connect("b").await;
    assert_eq!(other.welcome().user, "b");
}

#[tokio::test]
async fn the_rate_limit_answers_rate_limited_with_retry_after() {
    let mut cfg = config();
    cfg.rate_limit = 2;
    let node = start(cfg).await;
    let mut c = node.connect("a").await;
    // Burst = 2 x rate = 4 frames, then refusals.
    for i in 0..5 {
        c.send_frame(&json!({"type": "ping", "ref": i}))
            .await
            .unwrap();
    }
    let mut retry = None;
    for _ in 0..5 {
        let v = c.next_value(T).await.unwrap();
        if v["type"] == "error" {
            assert_eq!(v["code"], "rate_limited");
            assert_eq!(v["ref"], 4, "the refused frame's ref is echoed");
            let ms = v["retry_after_ms"].as_u64().expect("retry_after_ms");
            assert!(ms > 0 && ms <= 500, "{ms}");
            retry = Some(ms);
        }
    }
    let retry = retry.expect("one frame was rate limited");
    assert_eq!(node.metric("wsgate_rate_limited_total").await, 1.0);
    // Honour retry_after_ms, as a client must; then the connection works.
    tokio::time::sleep(Duration::from_millis(retry + 50)).await;
    still_works(&mut c).await;
}

#[tokio::test]
async fn ten_protocol_errors_in_ten_seconds_close_with_1008() {
    let node = start(config()).await;
    let mut c = node.connect("a").await;
    for _ in 0..9 {
        assert_eq!(raw(&mut c, "nope").await["code"], "bad_request");
    }
    still_works(&mut c).await;
    c.send_raw(Message::Text("nope".into())).await.unwrap();
    let info = c.wait_closed(T).await.unwrap();
    assert_eq!(info.code, Some(1008));
    assert!(info.reason.contains("protocol errors"), "{}", info.reason);

    // Unknown types and oversize frames count as well...
    let mut c = node.connect("a").await;
    for i in 0..10 {
        c.send_frame(&json!({"type": "bogus", "ref": i}))
            .await
            .unwrap();
    }
    assert_eq!(c.wait_closed(T).await.unwrap().code, Some(1008));

    // ...but refusals of well-formed requests do not.
    let mut c = node.connect("a").await;
    for _ in 0..12 {
        let e = c
            .request(json!({"type": "broadcast", "content": 1}))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    }
    still_works(&mut c).await;
}

#[tokio::test]
async fn rate_limited_frames_count_toward_the_ten_errors_rule() {
    let mut cfg = config();
    cfg.rate_limit = 1;
    let node = start(cfg).await;
    let mut c = node.connect("a").await;
    for i in 0..14 {
        if c.send_frame(&json!({"type": "ping", "ref": i}))
            .await
            .is_err()
        {
            break;
        }
    }
    let info = c.wait_closed(T).await.unwrap();
    assert_eq!(info.code, Some(1008));
    assert!(node.metric("wsgate_rate_limited_total").await >= 10.0);
}

#[tokio::test]
async fn forbidden_without_cap_outside_allowed_rooms_and_for_non_members() {
    let node = start(config()).await;
    let mut plain = node.connect("plain").await;
    let e = plain
        .request(json!({"type": "broadcast", "content": "x"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let e = plain
        .request(publish("not-joined", json!("x")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let e = plain
        .request(json!({"type": "typing", "room": "not-joined"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));

    // The `rooms` claim is a list of globs.
    let t = token_claims(&json!({
        "sub": "limited", "exp": now_secs() + 3600, "rooms": ["team-*", "lobby"]
    }));
    let mut limited = node.connect_token(&t).await.unwrap();
    limited.request(join("team-a")).await.unwrap();
    limited.request(join("lobby")).await.unwrap();
    for room in ["other", "lobby2", "team"] {
        let e = limited.request(join(room)).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::Forbidden), "{room}");
    }
    // An empty list allows no room.
    let t = token_claims(&json!({"sub": "none", "exp": now_secs() + 3600, "rooms": []}));
    let mut none = node.connect_token(&t).await.unwrap();
    let e = none.request(join("lobby")).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));

    // The broadcast cap allows broadcast.
    let mut caster = node.connect_token(&broadcaster("caster")).await.unwrap();
    let r = caster
        .request(json!({"type": "broadcast", "content": "all"}))
        .await
        .unwrap();
    assert!(r.id.is_some());
    assert_eq!(plain.next_message(T).await.unwrap().content, json!("all"));
    still_works(&mut plain).await;
}

#[tokio::test]
async fn too_many_rooms() {
    let mut cfg = config();
    cfg.max_rooms = 2;
    let node = start(cfg).await;
    let mut c = node.connect("a").await;
    c.request(join("r1")).await.unwrap();
    c.request(join("r2")).await.unwrap();
    let e = c.request(join("r3")).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::TooManyRooms));
    // Re-joining a room already joined is fine; leaving frees a slot.
    c.request(join("r2")).await.unwrap();
    c.request(json!({"type": "leave", "room": "r1"}))
        .await
        .unwrap();
    c.request(join("r3")).await.unwrap();
    // The limit is per connection.
    let mut c2 = node.connect("a").await;
    c2.request(join("r4")).await.unwrap();
}

#[tokio::test]
async fn ack_typing_and_refresh_reply_only_with_a_ref() {
    let node = start(config()).await;
    let mut a = node.connect("a").await;
    a.send_frame(&json!({"type": "typing", "to": "b"}))
        .await
        .unwrap();
    a.send_frame(&json!({"type": "ack", "id": "0190-unknown"}))
        .await
        .unwrap();
    a.send_frame(&json!({"type": "refresh", "token": token("a")}))
        .await
        .unwrap();
    still_works(&mut a).await;
    let r = a
        .request(json!({"type": "typing", "to": "b"}))
        .await
        .unwrap();
    assert!(r.ok && r.id.is_none());
    a.request(json!({"type": "ack", "ids": ["x", "y"]}))
        .await
        .unwrap();
    a.request(json!({"type": "refresh", "token": token("a")}))
        .await
        .unwrap();
}

#[tokio::test]
async fn typing_goes_to_the_user_or_the_other_room_members() {
    let node = start(config()).await;
    let mut a = node.connect("alice").await;
    let mut b1 = node.connect("bob").await;
    let mut b2 = node.connect("bob").await;
    a.request(json!({"type": "typing", "to": "bob"}))
        .await
        .unwrap();
    for b in [&mut b1, &mut b2] {
        let f = b.next_frame(T).await.unwrap();
        assert_eq!(
            f,
            ServerFrame::Typing {
                from: "alice".into(),
                to: Some("bob".into()),
                room: None
            }
        );
    }
    a.request(join("room1")).await.unwrap();
    b1.request(join("room1")).await.unwrap();
    a.request(json!({"type": "typing", "room": "room1"}))
        .await
        .unwrap();
    let f = b1
        .next_frame_where(T, |f| matches!(f, ServerFrame::Typing { .. }))
        .await
        .unwrap();
    assert_eq!(
        f,
        ServerFrame::Typing {
            from: "alice".into(),
            to: None,
            room: Some("room1".into())
        }
    );
    // The sender does not get its own typing event: the next frame is the pong.
    let next = a.next_value(SHORT).await;
    assert!(
        next.as_ref().map_or(true, |v| v["type"] == "presence"),
        "{next:?}"
    );
    still_works(&mut a).await;
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_closed_with_1001() {
    let mut cfg = config();
    cfg.ping_interval = Duration::from_millis(300);
    cfg.pong_timeout = Duration::from_millis(300);
    let node = start(cfg).await;
    assert_eq!(
        node.connect("w").await.welcome().ping_interval_ms,
        300,
        "welcome carries the ping interval"
    );
    let mut silent = node.connect("silent").await;
    let mut lively = node.connect("lively").await;
    let reader = tokio::spawn(async move {
        // Reading answers the server's pings.
        let r = lively.next_frame(Duration::from_secs(3)).await;
        (lively, r)
    });
    eventually("the silent client is closed", WAIT, || async {
        node.metric("wsgate_disconnects_total{code=\"1001\"}").await >= 1.0
    })
    .await;
    let info = silent.wait_closed(T).await.unwrap();
    assert_eq!(info.code, Some(1001));
    let (mut lively, r) = reader.await.unwrap();
    assert!(
        matches!(r, Err(wsgate_client::ClientError::Timeout)),
        "{r:?}"
    );
    still_works(&mut lively).await;
}

#[tokio::test]
async fn an_expired_token_closes_with_1008_unless_refreshed() {
    let node = start(config()).await;
    let exp = now_secs() + 2;
    let short = token_claims(&json!({"sub": "eve", "exp": exp}));
    let mut stale = node.connect_token(&short).await.unwrap();
    let mut fresh = node.connect_token(&short).await.unwrap();

    // Refresh refusals: another user, an earlier expiry, an expired token.
    let other = token_claims(&json!({"sub": "mallory", "exp": exp + 3600}));
    let e = fresh
        .request(json!({"type": "refresh", "token": other}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let earlier = token_claims(&json!({"sub": "eve", "exp": exp - 1}));
    let e = fresh
        .request(json!({"type": "refresh", "token": earlier}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let expired = token_claims(&json!({"sub": "eve", "exp": now_secs() - 10}));
    let e = fresh
        .request(json!({"type": "refresh", "token": expired}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::TokenExpired));
    let e = fresh
        .request(json!({"type": "refresh", "token": "garbage"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));

    let longer = token_claims(&json!({"sub": "eve", "exp": exp + 3600}));
    fresh
        .request(json!({"type": "refresh", "token": longer}))
        .await
        .unwrap();

    let f = stale.next_frame(Duration::from_secs(6)).await.unwrap();
    match f {
        ServerFrame::Error { code, r#ref, .. } => {
            assert_eq!(code, ErrorCode::TokenExpired);
            assert!(r#ref.is_none());
        }
        other => panic!("expected token_expired, got {other:?}"),
    }
    let info = stale.wait_closed(T).await.unwrap();
    assert_eq!(info.code, Some(1008));
    assert!(info.reason.contains("token expired"), "{}", info.reason);
    // The refreshed connection outlived the old expiry.
    still_works(&mut fresh).await;
}

#[tokio::test]
async fn names_are_1_to_128_bytes_of_the_documented_alphabet() {
    let node = start(config()).await;
    let long_user = "u".repeat(128);
    let mut c = node.connect(&long_user).await;
    assert_eq!(c.welcome().user, long_user);
    let room = "a.b:c@d-e_F9".to_string() + &"r".repeat(116);
    assert_eq!(room.len(), 128);
    c.request(join(&room)).await.unwrap();
    for bad in ["r".repeat(129), String::new(), "a/b".into(), "é".into()] {
        let e = c.request(join(&bad)).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::BadRequest), "{bad:?}");
    }
    let too_long = token_claims(&json!({"sub": "u".repeat(129), "exp": now_secs() + 60}));
    let err = node.connect_token(&too_long).await.err();
    assert_eq!(err.and_then(|e| e.status()), Some(401));
}

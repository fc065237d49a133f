use serde_json::json;

use super::*;
use crate::frame::{Kind, MessageFrame, Position, Reply};

fn json_req(v: Value) -> Result<ClientRequest, DecodeError> {
    decode_client(Codec::Json, v.to_string().as_bytes())
}

fn msgpack_req(v: Value) -> Result<ClientRequest, DecodeError> {
    decode_client(Codec::Msgpack, &rmp_serde::to_vec_named(&v).unwrap())
}

#[test]
fn decodes_every_client_frame_in_both_codecs() {
    let cases = vec![
        (
            json!({"type":"join","room":"r1","ref":1}),
            ClientFrame::Join {
                room: "r1".into(),
                since: None,
            },
        ),
        (
            json!({"type":"join","room":"r1","since":null}),
            ClientFrame::Join {
                room: "r1".into(),
                since: None,
            },
        ),
        (
            json!({"type":"join","room":"r1","since":{"epoch":"e1","offset":0}}),
            ClientFrame::Join {
                room: "r1".into(),
                since: Some(Position {
                    epoch: "e1".into(),
                    offset: 0,
                }),
            },
        ),
        (
            json!({"type":"join","room":"r1","since":{"epoch":"e1","offset":u64::MAX,"x":1}}),
            ClientFrame::Join {
                room: "r1".into(),
                since: Some(Position {
                    epoch: "e1".into(),
                    offset: u64::MAX,
                }),
            },
        ),
        (
            json!({"type":"leave","room":"r1"}),
            ClientFrame::Leave { room: "r1".into() },
        ),
        (
            json!({"type":"send","to":"bob","content":{"a":[1,2]}}),
            ClientFrame::Send {
                to: "bob".into(),
                content: json!({"a":[1,2]}),
                id: None,
            },
        ),
        (
            json!({"type":"send","to":"bob","content":1,"id":"0190a0b4-7c1e-7d2a-9b3f-0123456789AB"}),
            ClientFrame::Send {
                to: "bob".into(),
                content: json!(1),
                id: Some("0190a0b4-7c1e-7d2a-9b3f-0123456789AB".into()),
            },
        ),
        (
            json!({"type":"publish","room":"r","content":"hi"}),
            ClientFrame::Publish {
                room: "r".into(),
                content: json!("hi"),
            },
        ),
        (
            json!({"type":"broadcast","content":null}),
            ClientFrame::Broadcast {
                content: Value::Null,
            },
        ),
        (
            json!({"type":"ack","id":"x1"}),
            ClientFrame::Ack {
                ids: vec!["x1".into()],
            },
        ),
        (
            json!({"type":"ack","ids":["a","b"]}),
            ClientFrame::Ack {
                ids: vec!["a".into(), "b".into()],
            },
        ),
        (
            json!({"type":"typing","to":"bob"}),
            ClientFrame::Typing {
                target: Target::User("bob".into()),
            },
        ),
        (
            json!({"type":"typing","room":"r"}),
            ClientFrame::Typing {
                target: Target::Room("r".into()),
            },
        ),
        (
            json!({"type":"presence","user":"bob"}),
            ClientFrame::Presence {
                target: Target::User("bob".into()),
            },
        ),
        (
            json!({"type":"presence","room":"r"}),
            ClientFrame::Presence {
                target: Target::Room("r".into()),
            },
        ),
        (json!({"type":"ping","ref":"p"}), ClientFrame::Ping),
        (
            json!({"type":"refresh","token":"t.t.t"}),
            ClientFrame::Refresh {
                token: "t.t.t".into(),
            },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(json_req(input.clone()).unwrap().frame, want, "json {input}");
        assert_eq!(
            msgpack_req(input.clone()).unwrap().frame,
            want,
            "msgpack {input}"
        );
    }
}

#[test]
fn errors_carry_the_ref_and_the_right_code() {
    let e = json_req(json!({"type":"join","ref":"r7"})).unwrap_err();
    assert_eq!(
        (e.code, e.r#ref),
        (ErrorCode::BadRequest, Some(Ref::Str("r7".into())))
    );
    let e = json_req(json!({"type":"join","room":5,"ref":3})).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert_eq!(e.r#ref, Some(Ref::Num(3.into())));
    let e = json_req(json!({"type":"fly","ref":"x"})).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownType);
    assert_eq!(e.r#ref, Some(Ref::Str("x".into())));
    let e = msgpack_req(json!({"type":"send","to":"bob","ref":1})).unwrap_err();
    assert!(e.message.contains("content"), "{}", e.message);
    for id in [
        json!("not-a-uuid"),
        json!(7),
        json!("0190a0b4-7c1e-7d2a-9b3f-0123456789ABC"),
    ] {
        let e =
            json_req(json!({"type":"send","to":"bob","content":1,"id":id,"ref":2})).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{id}");
        assert!(e.message.contains("UUID"), "{}", e.message);
    }
}

#[test]
fn rejects_malformed_input_without_panicking() {
    let inputs: Vec<&[u8]> = vec![
        b"",
        b"{",
        b"[]",
        b"null",
        b"{\"type\":\"join\",\"type\":\"join\",\"room\":\"a\"}",
        b"{\"type\":7}",
        b"{\"ref\":{\"a\":1},\"type\":\"ping\"}",
    ];
    for input in inputs {
        let e = decode_client(Codec::Json, input).unwrap_err();
        assert_eq!(
            e.code,
            ErrorCode::BadRequest,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    let deep = "[".repeat(100_000);
    let e = json_req(json!({"type":"ping"})).map(|_| ()).and_then(|()| {
        decode_client(
            Codec::Json,
            format!("{{\"type\":\"broadcast\",\"content\":{deep}").as_bytes(),
        )
    });
    assert_eq!(e.unwrap_err().code, ErrorCode::BadRequest);
    // MessagePack array header declaring 2^32-1 elements with no body.
    let e = decode_client(Codec::Msgpack, &[0xdd, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    let long_ref = "x".repeat(65);
    let e = json_req(json!({"type":"ping","ref":long_ref})).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    let e = json_req(json!({"type":"join","room":"a b"})).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    let e = json_req(json!({"type":"ack","ids":[]})).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    let e = json_req(json!({"type":"typing","to":"a","room":"b"})).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    let long_epoch = "e".repeat(65);
    for since in [
        json!(5),
        json!("e1:3"),
        json!([]),
        json!({}),
        json!({"epoch":"e1"}),
        json!({"offset":3}),
        json!({"epoch":"","offset":3}),
        json!({"epoch":long_epoch,"offset":3}),
        json!({"epoch":7,"offset":3}),
        json!({"epoch":"e1","offset":-1}),
        json!({"epoch":"e1","offset":1.5}),
        json!({"epoch":"e1","offset":"3"}),
    ] {
        for codec in [json_req, msgpack_req] {
            let e = codec(json!({"type":"join","room":"r","since":since,"ref":"j"})).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{since}");
            assert_eq!(e.r#ref, Some(Ref::Str("j".into())), "{since}");
            assert!(e.message.contains("since"), "{}", e.message);
        }
    }
}

#[test]
fn server_frames_encode_with_the_contract_field_names() {
    let frame = ServerFrame::Message(MessageFrame {
        id: "id1".into(),
        kind: Kind::Direct,
        from: "alice".into(),
        to: Some("bob".into()),
        room: None,
        content: json!({"text":"hi"}),
        time: 42,
        replay: false,
        offset: None,
        epoch: None,
    });
    let v: Value = serde_json::from_slice(&encode_server(Codec::Json, &frame).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({"type":"message","id":"id1","kind":"direct","from":"alice","to":"bob","content":{"text":"hi"},"time":42})
    );
    let v: Value = rmp_serde::from_slice(&encode_server(Codec::Msgpack, &frame).unwrap()).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"]["text"], "hi");

    let room = ServerFrame::Message(MessageFrame {
        id: "id2".into(),
        kind: Kind::Room,
        from: "alice".into(),
        to: None,
        room: Some("lobby".into()),
        content: json!(1),
        time: 43,
        replay: true,
        offset: Some(7),
        epoch: Some("ep".into()),
    });
    let v: Value = serde_json::from_slice(&encode_server(Codec::Json, &room).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({"type":"message","id":"id2","kind":"room","from":"alice","room":"lobby","content":1,"time":43,"replay":true,"offset":7,"epoch":"ep"})
    );
    let v: Value = rmp_serde::from_slice(&encode_server(Codec::Msgpack, &room).unwrap()).unwrap();
    assert_eq!(
        (v["offset"].as_u64(), v["epoch"].as_str()),
        (Some(7), Some("ep"))
    );

    let mut joined = Reply::ok(None);
    joined.room = Some("lobby".into());
    joined.epoch = Some("ep".into());
    joined.offset = Some(0);
    joined.recovered = Some(false);
    let v: Value =
        serde_json::from_slice(&encode_server(Codec::Json, &ServerFrame::Reply(joined)).unwrap())
            .unwrap();
    assert_eq!(
        v,
        json!({"type":"reply","ok":true,"room":"lobby","epoch":"ep","offset":0,"recovered":false})
    );

    let mut reply = Reply::ok(Some(Ref::Num(5.into())));
    reply.room = Some("r".into());
    reply.members = Some(vec!["a".into()]);
    let v: Value =
        serde_json::from_slice(&encode_server(Codec::Json, &ServerFrame::Reply(reply)).unwrap())
            .unwrap();
    assert_eq!(
        v,
        json!({"type":"reply","ref":5,"ok":true,"room":"r","members":["a"]})
    );

    let err = ServerFrame::Error {
        r#ref: None,
        code: ErrorCode::RateLimited,
        message: "slow down".into(),
        retry_after_ms: Some(50),
    };
    let v: Value = serde_json::from_slice(&encode_server(Codec::Json, &err).unwrap()).unwrap();
    assert_eq!(
        v,
        json!({"type":"error","code":"rate_limited","message":"slow down","retry_after_ms":50})
    );
}

#[test]
fn encoded_frame_encodes_once_per_codec() {
    let f = EncodedFrame::new(ServerFrame::Pong { r#ref: None });
    let a = f.bytes(Codec::Json).unwrap();
    let b = f.bytes(Codec::Json).unwrap();
    assert_eq!(
        a.as_ptr(),
        b.as_ptr(),
        "second call must share the first encoding"
    );
    assert_eq!(&a[..], br#"{"type":"pong"}"#);
    let back: ServerFrame = rmp_serde::from_slice(&f.bytes(Codec::Msgpack).unwrap()).unwrap();
    assert_eq!(back, ServerFrame::Pong { r#ref: None });
}

fn nested_send(codec: Codec, depth: usize) -> Vec<u8> {
    match codec {
        Codec::Json => format!(
            r#"{{"type":"send","to":"bob","content":{}null{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
        .into_bytes(),
        Codec::Msgpack => {
            let mut b = b"\x83\xa4type\xa4send\xa2to\xa3bob\xa7content".to_vec();
            b.extend(std::iter::repeat_n(0x91u8, depth));
            b.push(0xc0);
            b
        }
    }
}

#[test]
fn nesting_is_limited_alike_in_both_codecs() {
    for codec in [Codec::Json, Codec::Msgpack] {
        assert!(
            decode_client(codec, &nested_send(codec, 100)).is_ok(),
            "{codec:?}"
        );
        let e = decode_client(codec, &nested_send(codec, 200)).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{codec:?}");
    }
    // Decoding never recurses deep enough to threaten a small stack, whatever
    // the declared nesting (a tokio worker has 2 MiB; this thread half that).
    let deep = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(|| {
            [Codec::Json, Codec::Msgpack]
                .map(|codec| decode_client(codec, &nested_send(codec, 100_000)).is_err())
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(deep, [true, true]);
}

#[test]
fn peek_ref_reads_only_the_ref() {
    use crate::codec::peek_ref;
    let big = format!(
        r#"{{"type":"send","content":"{}","ref":"r-1"}}"#,
        "x".repeat(10_000)
    );
    assert_eq!(
        peek_ref(Codec::Json, big.as_bytes()),
        Some(Ref::Str("r-1".into()))
    );
    assert_eq!(
        peek_ref(Codec::Json, br#"{"ref":7,"content":[1,2]}"#),
        Some(Ref::Num(7.into()))
    );
    assert_eq!(peek_ref(Codec::Json, br#"{"content":1}"#), None);
    assert_eq!(peek_ref(Codec::Json, b"not json"), None);
    let long = format!(r#"{{"ref":"{}"}}"#, "r".repeat(65));
    assert_eq!(peek_ref(Codec::Json, long.as_bytes()), None);
    let mp = rmp_serde::to_vec_named(&serde_json::json!({"type":"send","ref":"m-1","content":"x"}))
        .unwrap();
    assert_eq!(peek_ref(Codec::Msgpack, &mp), Some(Ref::Str("m-1".into())));
}

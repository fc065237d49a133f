use super::*;

fn raw_deflate(data: &[u8], flush: FlushCompress) -> Vec<u8> {
    let mut z = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    let mut at = 0;
    loop {
        let before = z.total_in();
        z.compress_vec(&data[at..], &mut out, flush).unwrap();
        at += (z.total_in() - before) as usize;
        if at == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    out
}

#[test]
fn compress_then_inflate_round_trips() {
    for n in [0usize, 1, 300, 70_000] {
        let data: Vec<u8> = (0..n).map(|i| (i % 7) as u8 + b'a').collect();
        let c = compress(&data).unwrap();
        assert!(!c.ends_with(&TAIL));
        assert_eq!(inflate(&c, 100_000).unwrap(), data, "{n} bytes");
    }
    let json =
        br#"{"type":"message","room":"lobby","data":{"text":"hello hello hello"}}"#.repeat(16);
    assert!(compress(&json).unwrap().len() < json.len() / 4);
}

#[test]
fn inflate_accepts_a_final_block() {
    let data = b"final block".repeat(10);
    let c = raw_deflate(&data, FlushCompress::Finish);
    assert_eq!(inflate(&c, 1000).unwrap(), data);
}

#[test]
fn inflate_stops_at_the_limit() {
    let zeros = vec![0u8; 10 * 1024 * 1024];
    let bomb = compress(&zeros).unwrap();
    assert!(bomb.len() < 20_000, "{}", bomb.len());
    assert!(matches!(
        inflate(&bomb, 65_536),
        Err(InflateError::TooBig { limit: 65_536 })
    ));
    // Exactly the limit is fine; one byte more is not.
    let at = vec![0u8; 65_536];
    assert_eq!(
        inflate(&compress(&at).unwrap(), 65_536).unwrap().len(),
        65_536
    );
    let over = vec![0u8; 65_537];
    assert!(matches!(
        inflate(&compress(&over).unwrap(), 65_536),
        Err(InflateError::TooBig { .. })
    ));
}

#[test]
fn inflate_refuses_corrupt_data() {
    // 0xff: BTYPE 11, a reserved block type.
    for bad in [&[0xffu8, 0xff, 0xff][..], &[0x07, 0x00]] {
        assert!(inflate(bad, 1000) == Err(InflateError::Corrupt), "{bad:?}");
    }
}

#[test]
fn negotiation() {
    let n = |offers: &[&str]| negotiate(offers.iter().copied());
    assert_eq!(n(&[]), None);
    assert_eq!(n(&["x-webkit-deflate-frame"]), None);
    assert_eq!(n(&["permessage-deflate"]), Some(ANSWER));
    // What browsers and Node's ws offer.
    assert_eq!(
        n(&["permessage-deflate; client_max_window_bits"]),
        Some(ANSWER)
    );
    assert_eq!(
        n(&["Permessage-Deflate; client_max_window_bits=10; server_no_context_takeover"]),
        Some(ANSWER)
    );
    assert_eq!(
        n(&["permessage-deflate; server_max_window_bits=\"15\""]),
        Some(ANSWER_15)
    );
    // A server window below 15 bits cannot be kept: declined, next offer taken.
    assert_eq!(n(&["permessage-deflate; server_max_window_bits=10"]), None);
    assert_eq!(
        n(&["permessage-deflate; server_max_window_bits=10, permessage-deflate"]),
        Some(ANSWER)
    );
    assert_eq!(
        n(&[
            "foo",
            "permessage-deflate; server_max_window_bits=9",
            "permessage-deflate; client_no_context_takeover"
        ]),
        Some(ANSWER)
    );
    // Malformed offers are declined.
    for bad in [
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=010",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; unknown_param",
        "permessage-deflate; client_max_window_bits=\"10",
    ] {
        assert_eq!(n(&[bad]), None, "{bad}");
    }
}

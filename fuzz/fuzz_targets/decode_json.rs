//! Any bytes through the JSON client-frame decoder: never a panic, and a
//! decoded request always holds valid names and a short `ref`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate_protocol::{decode_client, ClientFrame, Codec, Ref};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_client(Codec::Json, data) {
        match &req.r#ref {
            Some(Ref::Str(s)) => assert!(s.len() <= Ref::MAX_BYTES),
            Some(Ref::Num(n)) => assert!(n.to_string().len() <= Ref::MAX_BYTES),
            None => {}
        }
        if let ClientFrame::Join { room, .. } | ClientFrame::Leave { room } = &req.frame {
            assert!(wsgate_protocol::names::is_valid_name(room));
        }
    }
});

//! Any bytes through the MessagePack client-frame decoder: never a panic, and
//! no allocation driven by a declared (not actual) array, map or string size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate_protocol::{decode_client, ClientFrame, Codec};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_client(Codec::Msgpack, data) {
        if let ClientFrame::Send { to, .. } = &req.frame {
            assert!(wsgate_protocol::names::is_valid_name(to));
        }
    }
});

//! Any bytes as a cluster bus envelope (what a node reads from Redis pub/sub):
//! never a panic; what decodes re-encodes and decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate_protocol::bus::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(data) {
        if let Ok(bytes) = env.encode() {
            let again = Envelope::decode(&bytes).expect("a re-encoded envelope decodes");
            // Floats (NaN) in content make PartialEq unreliable; compare text.
            assert_eq!(format!("{again:?}"), format!("{env:?}"));
        }
    }
});

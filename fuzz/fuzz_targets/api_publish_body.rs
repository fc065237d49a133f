//! Any bytes as a `POST /api/v1/publish` body: never a panic, and an accepted
//! body always names a valid target and sender.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::api::{parse_publish_body, PublishTarget};
use wsgate_protocol::names::is_valid_name;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_publish_body(data) {
        assert!(is_valid_name(&req.from));
        match &req.target {
            PublishTarget::User(n) | PublishTarget::Room(n) => assert!(is_valid_name(n)),
            PublishTarget::Broadcast => {}
        }
    }
});

//! Any bytes as the start of a connection through the PROXY protocol parser
//! (`wsgate::server::proxy_protocol::parse`) in each mode: never a panic; a
//! complete header is no longer than the bytes read and the spec's bounds,
//! parses to the same header when cut at its length, and every shorter
//! prefix of it is `Incomplete` (so the reader never decides early).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::config::ProxyProtocol;
use wsgate::server::proxy_protocol::{parse, Parsed, Version, MAX_V2_PAYLOAD, V1_MAX};

fuzz_target!(|data: &[u8]| {
    for mode in [ProxyProtocol::V1, ProxyProtocol::V2, ProxyProtocol::Any] {
        let Ok(Parsed::Complete { header, len }) = parse(data, mode) else {
            continue;
        };
        assert!(len <= data.len());
        match header.version {
            Version::V1 => assert!(len <= V1_MAX && mode.accepts_v1()),
            Version::V2 => assert!(len <= 16 + MAX_V2_PAYLOAD && mode.accepts_v2()),
        }
        match parse(&data[..len], mode) {
            Ok(Parsed::Complete {
                header: again,
                len: l,
            }) => {
                assert_eq!((again, l), (header, len));
            }
            other => panic!("cut at its length: {other:?}"),
        }
        for n in 0..len {
            assert!(
                matches!(parse(&data[..n], mode), Ok(Parsed::Incomplete)),
                "prefix {n} of {len}"
            );
        }
    }
});

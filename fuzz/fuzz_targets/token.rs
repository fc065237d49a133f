//! Any string as a client token through the server's verifier (fixed HS256
//! secret, issuer and audience) and `jsonwebtoken::decode_header`: never a
//! panic, and whatever verifies (the seeds hold validly signed tokens the
//! fuzzer mutates) names a valid user and has not expired.
#![no_main]

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use wsgate::auth::Authenticator;
use wsgate::config::Config;
use wsgate_protocol::names::is_valid_name;

fn authenticator() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let config = Config {
            jwt_secret: Some("fuzz-secret".into()),
            jwt_issuer: Some("https://issuer.example".into()),
            jwt_audience: Some("wsgate".into()),
            ..Config::default()
        };
        Authenticator::from_config(&config).expect("authenticator")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = jsonwebtoken::decode_header(text);
    let auth = authenticator();
    if let Ok(identity) = auth.verify(text) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        assert!(is_valid_name(&identity.user), "{identity:?}");
        assert!(
            identity.expires_at.is_some_and(|exp| exp > now),
            "{identity:?}"
        );
    }
    let _ = auth.authenticate(Some(text), None, None);
    let _ = auth.authenticate(None, Some(text), Some(text));
});

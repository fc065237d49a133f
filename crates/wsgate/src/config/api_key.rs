//! [`ApiKey`]: the server API key as the node keeps it, a SHA-256 digest of
//! the configured key and never the key itself.
//!
//! A request's key is hashed and the two 32-byte digests are compared in
//! constant time, so the time a check takes says nothing about the key: not
//! its length (every digest is 32 bytes, whatever the key's length), nor how
//! many leading bytes a guess got right (no early exit). The clear key is
//! dropped once hashed at start-up; `Debug` shows neither key nor digest, so
//! a logged `Config` cannot leak it.

use std::fmt;

use sha2::{Digest, Sha256};

/// The configured server API key, kept as its SHA-256 digest.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    digest: [u8; 32],
}

impl ApiKey {
    /// Keeps the digest of `key`.
    pub fn new(key: &str) -> ApiKey {
        ApiKey {
            digest: Sha256::digest(key.as_bytes()).into(),
        }
    }

    /// Whether `given` is the key: the digests compared in constant time.
    pub fn matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        // Every byte is visited whatever differs; `black_box` keeps the
        // optimiser from turning the fold into an early exit.
        let diff = self
            .digest
            .iter()
            .zip(given.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> ApiKey {
        ApiKey::new(key)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_key_and_keeps_only_its_digest() {
        let key = ApiKey::new("s3cret-key");
        assert!(key.matches("s3cret-key"));
        for wrong in [
            "",
            "s",
            "s3cret-ke",
            "s3cret-key ",
            "s3cret-kez",
            "S3CRET-KEY",
        ] {
            assert!(!key.matches(wrong), "{wrong:?}");
        }
        // Long guesses are hashed like short ones: nothing depends on length.
        assert!(!key.matches(&"s3cret-key".repeat(1000)));
        assert_eq!(key.digest, <[u8; 32]>::from(Sha256::digest(b"s3cret-key")));
        assert_eq!(ApiKey::from("s3cret-key"), key);
        let shown = format!("{key:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(shown, "ApiKey(<redacted>)");
    }

    #[test]
    fn an_empty_key_is_still_a_digest() {
        let key = ApiKey::new("");
        assert!(key.matches(""));
        assert!(!key.matches(" "));
    }
}

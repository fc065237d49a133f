//! User ids and room names: 1–128 bytes of `[A-Za-z0-9_.:@-]` (contract section 3).
//!
//! The same rule keeps names safe to embed in Redis keys and channels and in
//! URL paths of the server API.

/// Longest user id or room name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Whether `name` is a valid user id or room name.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert!(is_valid_name("alice"));
        assert!(is_valid_name("org:42/room".replace('/', ".").as_str()));
        assert!(is_valid_name("a@b.c-d_e:f"));
        assert!(is_valid_name(&"x".repeat(128)));
    }

    #[test]
    fn rejects_everything_else() {
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"x".repeat(129)));
        for bad in ["a b", "a/b", "../etc", "a\0b", "é", "a\nb", "a*", "a%2F"] {
            assert!(!is_valid_name(bad), "{bad:?} accepted");
        }
    }
}

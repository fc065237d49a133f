//! HS256 tokens for test users, signed with [`SECRET`] unless told otherwise.

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

use super::{now_secs, SECRET};

/// An HS256 token with these claims, signed with `secret`.
pub fn token_with(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("token")
}

/// An HS256 token with these claims, signed with [`SECRET`].
pub fn token_claims(claims: &Value) -> String {
    token_with(SECRET.as_bytes(), claims)
}

/// A token for `user`, valid for an hour.
pub fn token(user: &str) -> String {
    token_claims(&json!({"sub": user, "exp": now_secs() + 3600}))
}

/// A token for `user` with the `broadcast` cap.
pub fn broadcaster(user: &str) -> String {
    token_claims(&json!({"sub": user, "exp": now_secs() + 3600, "caps": ["broadcast"]}))
}

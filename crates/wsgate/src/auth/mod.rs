//! Who a client is: JWT verification (HS256, RS256, ES256), the `caps` and
//! `rooms` claims, and the anonymous development mode.
//!
//! A token is checked once at the upgrade and again on `refresh`; the session
//! enforces its `exp` while the connection lives. Only the algorithms that have
//! a configured key are accepted, so `alg: none` and key confusion (an HS256
//! token signed with the RSA public key as secret) are refused by construction.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use wsgate_protocol::names::is_valid_name;

use crate::config::{Config, ConfigError};

/// Why a client could not be authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a token is required (Authorization: Bearer or ?token=)")]
    Missing,
    #[error("token given both in the Authorization header and in ?token=")]
    Ambiguous,
    #[error("the token has expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("invalid user id in ?user=")]
    BadUser,
}

/// What a verified token (or anonymous mode) grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id (`sub`).
    pub user: String,
    /// May send `broadcast`.
    pub can_broadcast: bool,
    /// Glob patterns of rooms the user may join; `None` = any room.
    pub rooms: Option<Vec<String>>,
    /// Token expiry, seconds since the epoch; `None` in anonymous mode.
    pub expires_at: Option<u64>,
}

impl Identity {
    /// Whether the identity may join `room`.
    pub fn may_join(&self, room: &str) -> bool {
        match &self.rooms {
            None => true,
            Some(patterns) => patterns
                .iter()
                .any(|p| glob_match(p.as_bytes(), room.as_bytes())),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    rooms: Option<Vec<String>>,
}

/// Verifies tokens with the configured keys.
pub struct Authenticator {
    secret: Option<DecodingKey>,
    public: Option<(DecodingKey, Algorithm)>,
    issuer: Option<String>,
    audience: Option<String>,
    anonymous: bool,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Authenticator {
    /// Builds the verifier; a public key file that is not an RSA or EC P-256
    /// PEM key stops start-up.
    pub fn from_config(config: &Config) -> Result<Authenticator, ConfigError> {
        let public = match &config.jwt_public_key_file {
            None => None,
            Some(path) => {
                let invalid = |reason: String| ConfigError::Invalid {
                    name: "jwt-public-key-file",
                    value: path.display().to_string(),
                    reason,
                };
                let pem = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
                if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                    Some((key, Algorithm::RS256))
                } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                    Some((key, Algorithm::ES256))
                } else {
                    return Err(invalid("not an RSA or EC (P-256) public key in PEM".into()));
                }
            }
        };
        Ok(Authenticator {
            secret: config
                .jwt_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            public,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            anonymous: config.allow_anonymous,
        })
    }

    /// Whether any token key is configured.
    pub fn has_keys(&self) -> bool {
        self.secret.is_some() || self.public.is_some()
    }

    /// Authenticates an upgrade request from its token sources.
    pub fn authenticate(
        &self,
        header_token: Option<&str>,
        query_token: Option<&str>,
        query_user: Option<&str>,
    ) -> Result<Identity, AuthError> {
        match (header_token, query_token) {
            (Some(_), Some(_)) => Err(AuthError::Ambiguous),
            (Some(t), None) | (None, Some(t)) => self.verify(t),
            (None, None) if self.anonymous => {
                let user = match query_user {
                    Some(u) if is_valid_name(u) => u.to_owned(),
                    Some(_) => return Err(AuthError::BadUser),
                    None => format!("anon-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff),
                };
                Ok(Identity {
                    user,
                    can_broadcast: true,
                    rooms: None,
                    expires_at: None,
                })
            }
            (None, None) => Err(AuthError::Missing),
        }
    }

    /// Verifies one token.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 => self.secret.as_ref(),
            alg => self
                .public
                .as_ref()
                .filter(|(_, a)| *a == alg)
                .map(|(k, _)| k),
        }
        .ok_or_else(|| AuthError::Invalid(format!("algorithm {:?} is not accepted", header.alg)))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_nbf = true;
        // A configured issuer or audience must be present, not only match when present.
        let mut required = vec!["exp", "sub"];
        if self.issuer.is_some() {
            required.push("iss");
        }
        if self.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        match &self.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid(e.to_string()),
        })?;
        let claims = data.claims;
        if claims.iat.is_some_and(|iat| iat > now_secs() + 60) {
            return Err(AuthError::Invalid("`iat` is in the future".into()));
        }
        if !is_valid_name(&claims.sub) {
            return Err(AuthError::Invalid("`sub` is not a valid user id".into()));
        }
        Ok(Identity {
            user: claims.sub,
            can_broadcast: claims.caps.iter().any(|c| c == "broadcast"),
            rooms: claims.rooms,
            expires_at: Some(claims.exp),
        })
    }
}

/// Glob match with `*` (any run, including empty) and `?` (one byte).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"team-*", b"team-a"));
        assert!(glob_match(b"team-*", b"team-"));
        assert!(!glob_match(b"team-*", b"teams"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(glob_match(b"*:public", b"org:1:public"));
        assert!(!glob_match(b"*:public", b"org:1:private"));
        assert!(glob_match(b"exact", b"exact"));
        assert!(!glob_match(b"exact", b"exactly"));
    }
}

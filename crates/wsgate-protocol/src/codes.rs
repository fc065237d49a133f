//! Error codes carried by `error` frames and close codes used on WebSocket close.
//!
//! The strings are public interface (contract section 4); [`ErrorCode::ALL`] lets
//! metrics pre-register one series per code.

use serde::{Deserialize, Serialize};

/// The `code` of an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not a frame: bad JSON or MessagePack, a missing or mistyped field.
    BadRequest,
    /// The frame's `type` is not one the server knows.
    UnknownType,
    /// The frame is larger than `max-message-bytes`.
    MessageTooLarge,
    /// Too many frames per second; `retry_after_ms` says when to retry.
    RateLimited,
    /// No capability, room not allowed, or not a member.
    Forbidden,
    /// The connection has joined `max-rooms` rooms already.
    TooManyRooms,
    /// The recipient's inbox, or this sender's share of it, is full; nothing
    /// was stored.
    InboxFull,
    /// The cluster could not confirm the operation: it may or may not have
    /// happened; retry (a `send` with the same `id`, which never duplicates).
    Unavailable,
    /// The token expired (or the refresh token is expired).
    TokenExpired,
    /// A server fault.
    Internal,
}

impl ErrorCode {
    /// Every code, for metric pre-registration.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownType,
        ErrorCode::MessageTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Forbidden,
        ErrorCode::TooManyRooms,
        ErrorCode::InboxFull,
        ErrorCode::Unavailable,
        ErrorCode::TokenExpired,
        ErrorCode::Internal,
    ];

    /// The wire name of the code.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::InboxFull => "inbox_full",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::Internal => "internal",
        }
    }

    /// Whether the error counts toward the "10 protocol errors in 10 s" rule:
    /// the client sent something it should not have (malformed, unknown, too
    /// large, too fast). Refusals of well-formed requests (forbidden, rooms,
    /// cluster unavailable) are the server's answer, not the client's fault.
    pub const fn is_protocol_violation(self) -> bool {
        matches!(
            self,
            ErrorCode::BadRequest
                | ErrorCode::UnknownType
                | ErrorCode::MessageTooLarge
                | ErrorCode::RateLimited
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes the server uses (contract section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// 1000: normal closure.
    Normal = 1000,
    /// 1001: going away (heartbeat timeout: the peer stopped answering).
    GoingAway = 1001,
    /// 1002: a WebSocket protocol violation (bad framing, unmasked frame).
    ProtocolError = 1002,
    /// 1007: a text frame that is not valid UTF-8.
    InvalidPayload = 1007,
    /// 1008: policy violation (repeated errors, token expired and not refreshed).
    Policy = 1008,
    /// 1009: a frame over the hard size limit.
    TooBig = 1009,
    /// 1011: internal error.
    Internal = 1011,
    /// 1012: service restart (drain): reconnect, another node will take you.
    Restart = 1012,
    /// 1013: try again later: the client did not read fast enough.
    TryAgainLater = 1013,
}

impl CloseCode {
    /// Every code, for metric pre-registration.
    pub const ALL: [CloseCode; 9] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::ProtocolError,
        CloseCode::InvalidPayload,
        CloseCode::Policy,
        CloseCode::TooBig,
        CloseCode::Internal,
        CloseCode::Restart,
        CloseCode::TryAgainLater,
    ];

    /// The numeric code.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    /// The close code with this number, if it is one the server uses: the one
    /// lookup from a number (a close frame, the bus, an atomic) to a code.
    pub fn from_u16(code: u16) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|c| c.as_u16() == code)
    }

    /// The numeric code as a metric label.
    pub const fn label(self) -> &'static str {
        match self {
            CloseCode::Normal => "1000",
            CloseCode::GoingAway => "1001",
            CloseCode::ProtocolError => "1002",
            CloseCode::InvalidPayload => "1007",
            CloseCode::Policy => "1008",
            CloseCode::TooBig => "1009",
            CloseCode::Internal => "1011",
            CloseCode::Restart => "1012",
            CloseCode::TryAgainLater => "1013",
        }
    }
}

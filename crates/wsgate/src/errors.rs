//! The one place an error becomes what a client is told: the protocol error
//! code of an `error` frame, the HTTP status and body code of an API or
//! upgrade answer, the gRPC status code of an API call, the close code of a
//! failed socket. Every error type keeps
//! its cause (`#[source]`); only this module decides what it means on the wire.
//!
//! `unavailable` is the honest answer whenever the cluster (Redis, the bus)
//! could not confirm an operation: it may or may not have happened, and the
//! client retries (with the same message id, for a `send`).

use http::StatusCode;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::Error as WsError;
use wsgate_protocol::{CloseCode, ErrorCode};

use crate::auth::AuthError;
use crate::metrics::RejectReason;
use crate::node::NodeError;

/// Why a client request was refused (a session's request handler).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Forbidden(&'static str),
}

/// The protocol error code for a refused node operation.
pub fn node_code(e: &NodeError) -> ErrorCode {
    match e {
        NodeError::Forbidden(_) => ErrorCode::Forbidden,
        NodeError::TooManyRooms(_) => ErrorCode::TooManyRooms,
        NodeError::InboxFull(_) => ErrorCode::InboxFull,
        NodeError::IdTaken => ErrorCode::BadRequest,
        NodeError::NotConnected
        | NodeError::Cluster(_)
        | NodeError::Inbox(_)
        | NodeError::History(_)
        | NodeError::HistoryGap => ErrorCode::Unavailable,
    }
}

/// The HTTP status and body code of a refused node operation (server API).
pub fn node_http(e: &NodeError) -> (StatusCode, &'static str) {
    match node_code(e) {
        ErrorCode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ErrorCode::InboxFull => (StatusCode::TOO_MANY_REQUESTS, "inbox_full"),
        ErrorCode::BadRequest => (StatusCode::BAD_REQUEST, "bad_request"),
        _ => (StatusCode::FORBIDDEN, "forbidden"),
    }
}

/// The gRPC status code of a refused node operation (gRPC server API).
pub fn node_grpc(e: &NodeError) -> tonic::Code {
    match node_code(e) {
        ErrorCode::Unavailable => tonic::Code::Unavailable,
        ErrorCode::InboxFull => tonic::Code::ResourceExhausted,
        ErrorCode::BadRequest => tonic::Code::InvalidArgument,
        _ => tonic::Code::PermissionDenied,
    }
}

/// The protocol error code for a refused client request.
pub fn request_code(e: &RequestError) -> ErrorCode {
    match e {
        RequestError::Node(e) => node_code(e),
        RequestError::Auth(AuthError::Expired) => ErrorCode::TokenExpired,
        RequestError::Auth(_) | RequestError::Forbidden(_) => ErrorCode::Forbidden,
    }
}

/// How an upgrade whose token failed is refused: the rejection metric's
/// reason, the HTTP status and the body code.
pub fn auth_rejection(e: &AuthError) -> (RejectReason, StatusCode, &'static str) {
    match e {
        AuthError::Ambiguous | AuthError::BadUser => (
            RejectReason::BadRequest,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        AuthError::Missing | AuthError::Expired | AuthError::Invalid(_) => (
            RejectReason::Unauthorized,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
    }
}

/// The close code for a socket that failed while reading, or `None` when
/// the peer vanished and there is nobody to tell.
pub fn read_error_close(e: &WsError) -> Option<CloseCode> {
    match e {
        WsError::Capacity(_) => Some(CloseCode::TooBig),
        WsError::Utf8(_) => Some(CloseCode::InvalidPayload),
        // The peer vanished without a close frame: nothing to answer.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some(CloseCode::ProtocolError),
        _ => None,
    }
}

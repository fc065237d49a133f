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
use wsgate_protocol::{CloseCode, ErrorCode};

use crate::auth::AuthError;
use crate::metrics::RejectReason;
use crate::node::NodeError;

/// Why a client's frames cannot be read further (`session::reader`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("a frame or message over the hard limit of {limit} bytes")]
    TooBig { limit: usize },
    #[error("invalid UTF-8 in a text message or close reason")]
    Utf8,
    #[error("websocket protocol error: {0}")]
    Protocol(&'static str),
}

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

/// The close code for a client whose frames cannot be read further (a
/// socket that ended or failed is not an error here: nobody is left to tell).
pub fn read_error_close(e: &ReadError) -> CloseCode {
    match e {
        ReadError::TooBig { .. } => CloseCode::TooBig,
        ReadError::Utf8 => CloseCode::InvalidPayload,
        ReadError::Protocol(_) => CloseCode::ProtocolError,
    }
}

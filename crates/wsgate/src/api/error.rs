//! Why a server API call failed, and the table that maps each cause to the
//! contract's error code, its HTTP status and its gRPC status code.
//!
//! Both doors onto the API (HTTP in [`crate::api`], gRPC in [`crate::grpc`])
//! get [`ApiError`] from the shared operations ([`crate::api::ops`]) and
//! answer with [`ApiError::mapping`], so a cause never gets two different
//! answers. A refused node operation is mapped by [`crate::errors`] (the one
//! place node errors get their codes, for sessions and the API alike); the
//! causes only the API has (key, body, arguments) are mapped here.

use http::StatusCode;

use crate::node::NodeError;

/// Why an API request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong API key (Authorization: Bearer <key>)")]
    Unauthorized,
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body over {0} bytes")]
    TooLarge(usize),
    #[error("the server API is disabled: no --api-key configured")]
    Disabled,
    /// The node could not do it (e.g. Redis down): it may or may not have
    /// happened; retry.
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// How one cause is answered on each door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorMapping {
    /// The contract's error code (`{"error": CODE}` on HTTP).
    pub code: &'static str,
    pub http: StatusCode,
    pub grpc: tonic::Code,
}

const fn map(code: &'static str, http: StatusCode, grpc: tonic::Code) -> ErrorMapping {
    ErrorMapping { code, http, grpc }
}

impl ApiError {
    /// The one place a cause becomes a code and a status.
    pub fn mapping(&self) -> ErrorMapping {
        use tonic::Code;
        match self {
            ApiError::BadRequest(_) => map(
                "bad_request",
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
            ),
            ApiError::Unauthorized => map(
                "unauthorized",
                StatusCode::UNAUTHORIZED,
                Code::Unauthenticated,
            ),
            ApiError::NotFound => map("not_found", StatusCode::NOT_FOUND, Code::NotFound),
            ApiError::MethodNotAllowed => map(
                "method_not_allowed",
                StatusCode::METHOD_NOT_ALLOWED,
                Code::Unimplemented,
            ),
            // OUT_OF_RANGE is tonic's own answer to an oversized message;
            // RESOURCE_EXHAUSTED stays `inbox_full`'s alone.
            ApiError::TooLarge(_) => map(
                "payload_too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::OutOfRange,
            ),
            ApiError::Disabled => map(
                "unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                Code::Unavailable,
            ),
            ApiError::Node(e) => {
                let (http, code) = crate::errors::node_http(e);
                map(code, http, crate::errors::node_grpc(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_the_contract_answer() {
        use tonic::Code;
        let cases = [
            (
                ApiError::BadRequest("x".into()),
                "bad_request",
                400,
                Code::InvalidArgument,
            ),
            (
                ApiError::Unauthorized,
                "unauthorized",
                401,
                Code::Unauthenticated,
            ),
            (ApiError::NotFound, "not_found", 404, Code::NotFound),
            (
                ApiError::TooLarge(1),
                "payload_too_large",
                413,
                Code::OutOfRange,
            ),
            (ApiError::Disabled, "unavailable", 503, Code::Unavailable),
            (
                NodeError::NotConnected.into(),
                "unavailable",
                503,
                Code::Unavailable,
            ),
            (
                NodeError::InboxFull(crate::inbox::Refusal::SenderShare).into(),
                "inbox_full",
                429,
                Code::ResourceExhausted,
            ),
            (
                NodeError::IdTaken.into(),
                "bad_request",
                400,
                Code::InvalidArgument,
            ),
            (
                NodeError::Forbidden("x").into(),
                "forbidden",
                403,
                Code::PermissionDenied,
            ),
        ];
        for (e, code, http, grpc) in cases {
            let m = e.mapping();
            assert_eq!(
                (m.code, m.http.as_u16(), m.grpc),
                (code, http, grpc),
                "{e:?}"
            );
        }
    }
}

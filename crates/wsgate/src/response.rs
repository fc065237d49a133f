//! HTTP responses as every listener writes them: the body type, JSON bodies,
//! the contract's error body `{"error":CODE,"message":TEXT}`, and the raw 503
//! written before any parsing when admission is full. A leaf: the server and
//! the API both use it, neither through the other.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;

/// The body type of every response.
pub type Body = Full<Bytes>;

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    respond(status, "application/json", Bytes::from(body))
}

/// An error response with the contract's body.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": code, "message": message.into() }),
    )
}

/// A response with a body and content type.
pub fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

/// The raw bytes of a 503 sent before HTTP parsing, when too many handshakes
/// are in flight (admission control).
pub fn raw_busy_response() -> &'static [u8] {
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\nretry-after: 1\r\ncontent-length: 75\r\n\r\n{\"error\":\"unavailable\",\"message\":\"too many handshakes in progress; retry\"}\n"
}

#[cfg(test)]
mod tests {
    #[test]
    fn raw_busy_response_length_is_right() {
        let raw = super::raw_busy_response();
        let text = std::str::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }
}

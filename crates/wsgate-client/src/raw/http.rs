//! The WebSocket upgrade request written byte by byte, and a reader for an
//! HTTP response head that consumes nothing after it (the bytes that follow
//! a 101 are WebSocket frames).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The `Sec-WebSocket-Key` of every hand-made upgrade (the RFC's sample).
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The bytes of a WebSocket upgrade request for `path_query` with extra
/// headers; an empty `host` leaves the `Host` header out.
pub fn upgrade_request(host: &str, path_query: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("GET {path_query} HTTP/1.1\r\n");
    if !host.is_empty() {
        req.push_str(&format!("host: {host}\r\n"));
    }
    req.push_str(&format!(
        "connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n\
         sec-websocket-key: {SAMPLE_KEY}\r\n"
    ));
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// The largest response head [`read_head`] reads.
pub const MAX_HEAD: usize = 64 * 1024;

/// Reads an HTTP head through the blank line, byte by byte, so nothing
/// after it is consumed. No timeout: callers bound it.
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(b[0]);
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response head too large",
            ));
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The status code of a response head (`HTTP/1.1 101 Switching Protocols`).
pub fn status_of(head: &str) -> Option<u16> {
    head.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn head_stops_at_the_blank_line() {
        let mut input: &[u8] =
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n\x81\x00";
        let head = read_head(&mut input).await.expect("head");
        assert_eq!(status_of(&head), Some(101));
        assert_eq!(input, b"\x81\x00", "frame bytes left unread");
        let req = String::from_utf8(upgrade_request("", "/ws", &[("origin", "x")])).expect("utf8");
        assert!(!req.contains("host:") && req.contains("origin: x\r\n"));
    }
}

//! [`Options`]: where and how one connection is opened.

use std::net::IpAddr;
use std::time::Duration;

use wsgate_protocol::Codec;

/// Timeout for connecting and for each request when none is set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to connect.
#[derive(Debug, Clone)]
pub struct Options {
    /// `ws://host:port/ws`, with any query (`?token=`, `?user=`).
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The subprotocol to offer; `None` offers none (the server uses JSON).
    pub codec: Option<Codec>,
    /// Extra request headers; each replaces a header of the same name.
    pub headers: Vec<(String, String)>,
    /// Limit for the connection and for each [`crate::Client::request`].
    pub timeout: Duration,
    /// A small socket receive buffer, so a client that does not read fills up
    /// quickly (slow-consumer tests).
    pub recv_buffer_bytes: Option<u32>,
    /// The local address to bind before connecting (the load generator
    /// spreads its sockets over 127.0.0.x to get past one address's ports).
    pub bind: Option<IpAddr>,
    /// The WebSocket library's read and write buffer size in bytes (small
    /// buffers keep tens of thousands of load-generator sockets cheap);
    /// `None` keeps the library's defaults.
    pub buffer_bytes: Option<usize>,
}

impl Options {
    /// Options for `url` with no token, no subprotocol and the default timeout.
    pub fn new(url: impl Into<String>) -> Options {
        Options {
            url: url.into(),
            token: None,
            codec: None,
            headers: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            recv_buffer_bytes: None,
            bind: None,
            buffer_bytes: None,
        }
    }

    /// Sets the bearer token.
    pub fn token(mut self, token: impl Into<String>) -> Options {
        self.token = Some(token.into());
        self
    }

    /// Offers a subprotocol.
    pub fn codec(mut self, codec: Codec) -> Options {
        self.codec = Some(codec);
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Options {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the connection and request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Options {
        self.timeout = timeout;
        self
    }

    /// Sets the socket receive buffer size.
    pub fn recv_buffer_bytes(mut self, bytes: u32) -> Options {
        self.recv_buffer_bytes = Some(bytes);
        self
    }

    /// Binds the socket to this local address before connecting.
    pub fn bind(mut self, addr: IpAddr) -> Options {
        self.bind = Some(addr);
        self
    }

    /// Sets the WebSocket read and write buffer size.
    pub fn buffer_bytes(mut self, bytes: usize) -> Options {
        self.buffer_bytes = Some(bytes);
        self
    }
}

//! [`Connection`]: one upgraded WebSocket, opened as [`Options`] say.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::{ClientError, Options};

/// The stream type under every client of this crate.
pub type Ws = WebSocketStream<TcpStream>;

/// One upgraded WebSocket connection: whole messages in and out.
pub struct Connection {
    ws: Ws,
    subprotocol: Option<String>,
}

fn header_value(text: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(text).map_err(|e| ClientError::BadRequest(e.to_string()))
}

impl Connection {
    /// Resolves the URL's host, connects and upgrades, within `opts.timeout`.
    pub async fn open(opts: &Options) -> Result<Connection, ClientError> {
        let deadline = Instant::now() + opts.timeout;
        timeout_at(deadline, async {
            let (host, port) = host_port(&opts.url)?;
            let addr = tokio::net::lookup_host((host.as_str(), port))
                .await?
                .next()
                .ok_or_else(|| ClientError::BadRequest(format!("cannot resolve {host}")))?;
            Self::upgrade(Self::tcp(addr, opts).await?, opts).await
        })
        .await
        .map_err(|_| ClientError::Timeout)?
    }

    /// Connects to `addr` (the URL's host is only used in the request) and
    /// upgrades, within `opts.timeout`.
    pub async fn open_to(addr: SocketAddr, opts: &Options) -> Result<Connection, ClientError> {
        let deadline = Instant::now() + opts.timeout;
        timeout_at(deadline, async {
            Self::upgrade(Self::tcp(addr, opts).await?, opts).await
        })
        .await
        .map_err(|_| ClientError::Timeout)?
    }

    /// A TCP connection to `addr` with the options' source address and
    /// receive buffer, `TCP_NODELAY` set. No timeout: callers bound it.
    pub async fn tcp(addr: SocketAddr, opts: &Options) -> Result<TcpStream, ClientError> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(bytes) = opts.recv_buffer_bytes {
            socket.set_recv_buffer_size(bytes)?;
        }
        if let Some(ip) = opts.bind {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// The WebSocket upgrade over `stream`: bearer token, subprotocol and
    /// extra headers from `opts`. No timeout: callers bound it.
    pub async fn upgrade(stream: TcpStream, opts: &Options) -> Result<Connection, ClientError> {
        let mut request = opts
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ClientError::BadRequest(e.to_string()))?;
        let headers = request.headers_mut();
        if let Some(token) = &opts.token {
            headers.insert(AUTHORIZATION, header_value(&format!("Bearer {token}"))?);
        }
        if let Some(codec) = opts.codec {
            headers.insert(SEC_WEBSOCKET_PROTOCOL, header_value(codec.subprotocol())?);
        }
        for (name, value) in &opts.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ClientError::BadRequest(e.to_string()))?;
            headers.insert(name, header_value(value)?);
        }
        let config = opts.buffer_bytes.map(|bytes| {
            WebSocketConfig::default()
                .read_buffer_size(bytes)
                .write_buffer_size(bytes)
        });
        let (ws, response) =
            tokio_tungstenite::client_async_with_config(request, stream, config).await?;
        let subprotocol = response
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Connection { ws, subprotocol })
    }

    /// The subprotocol the server chose, if it sent one.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// Sends one message and flushes it. No timeout: callers bound it.
    pub async fn send(&mut self, message: Message) -> Result<(), ClientError> {
        Ok(self.ws.send(message).await?)
    }

    /// Queues one message without flushing.
    pub async fn feed(&mut self, message: Message) -> Result<(), ClientError> {
        Ok(self.ws.feed(message).await?)
    }

    /// Flushes queued messages (and the library's queued control replies).
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        Ok(self.ws.flush().await?)
    }

    /// The next message, control messages included (the library answers
    /// pings while reading); `None` once the stream has ended. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<Message, ClientError>> {
        self.ws.next().await.map(|r| r.map_err(ClientError::from))
    }

    /// Starts the close handshake with `code`. No timeout: callers bound it.
    pub async fn close(&mut self, code: u16) -> Result<(), ClientError> {
        let frame = CloseFrame {
            code: code.into(),
            reason: "".into(),
        };
        Ok(self.ws.close(Some(frame)).await?)
    }

    /// The underlying stream (to split it into halves).
    pub fn into_inner(self) -> (Ws, Option<String>) {
        (self.ws, self.subprotocol)
    }
}

/// The host and port of a `ws://` URL.
fn host_port(url: &str) -> Result<(String, u16), ClientError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| ClientError::BadRequest(e.to_string()))?;
    if uri.scheme_str() != Some("ws") {
        return Err(ClientError::BadRequest(
            "only ws:// URLs are supported".into(),
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| ClientError::BadRequest("the URL has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((host, uri.port_u16().unwrap_or(80)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ws_urls_with_a_host() {
        assert_eq!(
            host_port("ws://127.0.0.1:9/ws?user=a").expect("ok"),
            ("127.0.0.1".into(), 9)
        );
        assert_eq!(host_port("ws://[::1]/ws").expect("ok"), ("::1".into(), 80));
        assert!(host_port("wss://example.com/ws").is_err());
        assert!(host_port("http://example.com/").is_err());
    }
}

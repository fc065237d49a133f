//! [`HandWs`]: a WebSocket client written frame by frame over a bare
//! `TcpStream`; it sends what a test asks for, however malformed, and reads
//! server frames one by one.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::frame::{encode_frame, read_frame, Frame};
use super::http::{read_head, status_of, upgrade_request};

/// A hand-framed WebSocket connection.
#[derive(Debug)]
pub struct HandWs {
    /// The socket, for writes no frame helper covers (partial frames, floods).
    pub stream: TcpStream,
}

/// How a hand-made upgrade went.
#[derive(Debug)]
pub enum Upgrade {
    /// 101: the connection speaks WebSocket now (and the response head).
    Upgraded(HandWs, String),
    /// Any other status, with the response head and the socket (to read
    /// the body, or to see whether it stays open).
    Refused {
        status: u16,
        head: String,
        stream: TcpStream,
    },
}

impl HandWs {
    /// Connects to `addr` and upgrades on `path_query` with extra headers,
    /// all within `timeout`.
    pub async fn connect(
        addr: SocketAddr,
        path_query: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> io::Result<Upgrade> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        HandWs::upgrade(stream, &addr.to_string(), path_query, headers, timeout).await
    }

    /// Upgrades an already connected stream (e.g. one with a tiny receive
    /// buffer) with `Host: host`, within `timeout`.
    pub async fn upgrade(
        mut stream: TcpStream,
        host: &str,
        path_query: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> io::Result<Upgrade> {
        let req = upgrade_request(host, path_query, headers);
        let head = tokio::time::timeout(timeout, async {
            stream.write_all(&req).await?;
            read_head(&mut stream).await
        })
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        Ok(match status_of(&head) {
            Some(101) => Upgrade::Upgraded(HandWs { stream }, head),
            status => Upgrade::Refused {
                status: status.unwrap_or(0),
                head,
                stream,
            },
        })
    }

    /// Writes one masked frame.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8], fin: bool) -> io::Result<()> {
        self.stream
            .write_all(&encode_frame(opcode, payload, fin))
            .await
    }

    /// Reads one server frame within `timeout`; a timeout is
    /// [`io::ErrorKind::TimedOut`].
    pub async fn read_frame(&mut self, timeout: Duration) -> io::Result<Frame> {
        tokio::time::timeout(timeout, read_frame(&mut self.stream))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }
}

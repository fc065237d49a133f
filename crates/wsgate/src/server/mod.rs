//! Listeners and HTTP routing.
//!
//! Public listener: `GET /ws` (upgrade), `/healthz`, `/readyz`, and the demo
//! page. Admin listener: `/metrics`, `/api/v1/*`, `/healthz`, `/readyz`.
//! Both run hyper 1.x HTTP/1.1 connections with a header read timeout
//! (`handshake-timeout`), and the public listener admits at most
//! `max-pending-handshakes` connections that have not upgraded yet: past that,
//! a raw 503 is written without parsing anything (admission control).

pub mod demo;
pub mod upgrade;

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::metrics::RejectReason;
use crate::node::Node;
use crate::response::{error, json, respond, Body};

/// Pending connections the kernel may queue per listener (capped by
/// `net.core.somaxconn`). The std default of 128 overflows in a connect
/// storm, and each overflowed client waits a 1 s SYN retransmit.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener with [`LISTEN_BACKLOG`] and `SO_REUSEADDR` (a restarted
/// node can bind while old connections linger in TIME_WAIT).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Public,
    Admin,
}

/// Accepts connections until the node shuts down.
pub async fn serve(node: Arc<Node>, listener: TcpListener, kind: Listener) {
    loop {
        let accepted = tokio::select! {
            () = node.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                warn!(error = %e, "Accept failed.");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            // Only latency suffers; the connection still works.
            debug!(peer = %peer, error = %e, "Could not set TCP_NODELAY.");
        }
        let node = node.clone();
        tokio::spawn(connection(node, stream, peer, kind));
    }
}

async fn connection(node: Arc<Node>, mut stream: TcpStream, peer: SocketAddr, kind: Listener) {
    let _permit = match kind {
        Listener::Admin => None,
        Listener::Public => match node.handshakes.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                node.metrics.rejected(RejectReason::HandshakeLimit);
                // Bounded: a peer that never reads is dropped after 1 s.
                if tokio::time::timeout(std::time::Duration::from_secs(1), busy_close(&mut stream))
                    .await
                    .is_err()
                {
                    debug!(peer = %peer, "Busy answer not taken within 1 s.");
                }
                return;
            }
        },
    };
    let service = {
        let node = node.clone();
        service_fn(move |req| {
            let node = node.clone();
            async move { Ok::<_, std::convert::Infallible>(route(node, req, peer, kind).await) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(node.config.handshake_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let conn = std::pin::pin!(conn);
    if let Err(e) = conn.await {
        debug!(peer = %peer, error = %e, "HTTP connection ended with an error.");
    }
}

/// Writes the raw 503 and closes gracefully: the unread request is drained
/// (a little, until the client closes) so the close is a FIN, not a reset
/// that would discard the response before the client reads it.
async fn busy_close(stream: &mut TcpStream) {
    if stream
        .write_all(crate::response::raw_busy_response())
        .await
        .is_err()
    {
        return;
    }
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 1024];
    let mut left: usize = 16 * 1024;
    while left > 0 {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

async fn route(
    node: Arc<Node>,
    req: Request<Incoming>,
    peer: SocketAddr,
    kind: Listener,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match (kind, path.as_str()) {
        (_, "/healthz") => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        (_, "/readyz") => readyz(&node),
        (Listener::Public, "/ws") => upgrade::upgrade(&node, req, peer),
        (Listener::Admin, "/metrics") => {
            node.metrics
                .ready
                .set(i64::from(node.not_ready_reason().is_none()));
            node.metrics.broker_up.set(i64::from(node.broker.is_up()));
            respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                node.metrics.render().into(),
            )
        }
        (Listener::Admin, p) if p.starts_with("/api/") => crate::api::handle(&node, req).await,
        (Listener::Public, p) if req.method() == Method::GET || req.method() == Method::HEAD => {
            match demo::asset(p) {
                Some((content_type, body)) => respond(StatusCode::OK, content_type, body.into()),
                None => error(StatusCode::NOT_FOUND, "not_found", "no such path"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such path"),
    }
}

fn readyz(node: &Node) -> Response<Body> {
    match node.not_ready_reason() {
        None => {
            node.metrics.ready.set(1);
            json(StatusCode::OK, &serde_json::json!({"status": "ready"}))
        }
        Some(reason) => {
            node.metrics.ready.set(0);
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "not_ready", "reason": reason}),
            )
        }
    }
}

//! The server: listeners, admission, HTTP routing, the `/ws` upgrade,
//! sessions and the drain.
//!
//! - this file: [`Server`] (what the listeners serve, built once by
//!   [`crate::start`]), binding, the accept loop and each HTTP connection;
//! - [`routes`]: which path answers what, `/readyz` and `/metrics`;
//! - [`upgrade`]: the `/ws` upgrade and the hand-over to a session;
//! - [`drain`]: the session tracker and the drain (contract section 7);
//! - [`admission`], [`admitted_io`], [`proxy_protocol`] (and the leaf
//!   [`crate::client_addr`]):
//!   admission control and client addresses (below);
//! - [`demo`]: the demo page's assets.
//!
//! Public listener: `GET /ws` (upgrade), `/healthz`, `/readyz`, and the demo
//! page. Admin listener: `/metrics`, `/api/v1/*`, `/healthz`, `/readyz`.
//! Both run hyper 1.x HTTP/1.1 connections whose header read timeout
//! (`handshake-timeout`) also closes idle keep-alive connections.
//!
//! A public connection first reads the PROXY protocol header when
//! `--proxy-protocol` asks for one (only from a trusted peer; anything else
//! is closed before any HTTP is read, [`proxy_protocol`]). Its requests then
//! go through admission ([`admission`], [`admitted_io`]): each request holds
//! a handshake slot from its first byte until it is answered, and an upgrade
//! past the node's or the client address's limit gets a 503 at once. Each
//! request's client address ([`crate::client_addr`]) is the peer's, or what trusted
//! proxies forwarded; per-IP limits and logs use it.

pub mod admission;
pub mod admitted_io;
pub mod demo;
pub mod drain;
pub mod proxy_protocol;
mod routes;
pub mod upgrade;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use self::admission::{Admission, HandshakeSlots};
use self::admitted_io::{AdmittedIo, ConnAdmission};
use self::drain::Drain;
use crate::auth::Authenticator;
use crate::client_addr::{self, ClientAddr};
use crate::config::{Config, ProxyProtocol};
use crate::hub::Hub;
use crate::metrics::{Metrics, RejectReason};
use crate::node::Node;
use crate::session;

/// What the listeners serve: the node's operations and what the server
/// itself owns (sessions, drain). Built once by [`crate::start`]; its parts
/// are handed over explicitly and stay private to `server/`.
pub struct Server {
    node: Arc<Node>,
    hub: Arc<Hub>,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    auth: Arc<Authenticator>,
    sessions: Arc<session::Shared>,
    drain: Drain,
}

impl Server {
    pub fn new(
        node: Arc<Node>,
        hub: Arc<Hub>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        auth: Arc<Authenticator>,
    ) -> Arc<Server> {
        let sessions =
            session::Shared::new(node.clone(), config.clone(), metrics.clone(), auth.clone());
        Arc::new(Server {
            node,
            hub,
            config,
            metrics,
            auth,
            sessions,
            drain: Drain::new(),
        })
    }

    /// This node's instance ID.
    pub fn id(&self) -> &str {
        self.node.id()
    }

    /// The local registry of connections (read by tests and the drain).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Why the node is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.drain.is_draining() {
            Some("draining")
        } else if !self.node.cluster_up() {
            Some("broker (Redis) not connected or not subscribed")
        } else {
            None
        }
    }

    /// Resolves once the server has stopped (after the drain): listeners
    /// outside `server/` (the gRPC API) stop with it.
    pub fn stopped(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.drain.stopped()
    }

    /// Keeps the readiness, broker and cluster-size gauges current until
    /// the server stops.
    pub async fn refresh_gauges(self: Arc<Server>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.drain.stopped() => return,
                _ = tick.tick() => {}
            }
            self.node.refresh_gauges().await;
            self.metrics
                .ready
                .set(i64::from(self.not_ready_reason().is_none()));
        }
    }
}

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
pub async fn serve(server: Arc<Server>, listener: TcpListener, kind: Listener) {
    // One admission state per node: only the public listener has a listener
    // task that builds it.
    let admission =
        (kind == Listener::Public).then(|| Admission::new(&server.config, server.metrics.clone()));
    loop {
        let accepted = tokio::select! {
            () = server.drain.stopped() => return,
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
        let server = server.clone();
        match &admission {
            None => {
                tokio::spawn(serve_http(server, TokioIo::new(stream), peer, kind, None));
            }
            Some(admission) => {
                tokio::spawn(public_connection(server, admission.clone(), stream, peer));
            }
        }
    }
}

/// A public connection: the PROXY header when required, then HTTP through
/// admission.
async fn public_connection(
    server: Arc<Server>,
    admission: Arc<Admission>,
    mut stream: TcpStream,
    peer: SocketAddr,
) {
    let (hop, prefix) = match server.config.proxy_protocol {
        ProxyProtocol::Off => (peer.ip(), Bytes::new()),
        mode => match proxy_header(&server, &mut stream, peer, mode).await {
            Some(found) => found,
            // Closed (dropped) before any HTTP is read.
            None => return,
        },
    };
    let hop = hop.to_canonical();
    // An untrusted hop is the client: its per-IP slot is taken at the first
    // byte. A trusted one forwards others, known once the head is read.
    let direct = (!server.config.trusted_proxies.contains(hop)).then_some(hop);
    let conn = ConnAdmission::new(admission, direct);
    let io = AdmittedIo::new(stream, prefix, conn.clone());
    let hop = Hop { peer, ip: hop };
    serve_http(
        server,
        TokioIo::new(io),
        peer,
        Listener::Public,
        Some((hop, conn)),
    )
    .await;
}

/// Reads the PROXY protocol header of a connection from `peer`; the address
/// it carries (the peer's when it carries none) and the bytes after it.
/// `None` (counted as `reason="proxy"`) when the peer is not trusted, the
/// header is bad or missing, or it does not come within the handshake timeout.
async fn proxy_header(
    server: &Server,
    stream: &mut TcpStream,
    peer: SocketAddr,
    mode: ProxyProtocol,
) -> Option<(IpAddr, Bytes)> {
    let refuse = |why: &dyn std::fmt::Display| {
        server.metrics.rejected(RejectReason::Proxy);
        debug!(peer = %peer, reason = %why, "Connection refused before HTTP.");
        None
    };
    if !server.config.trusted_proxies.contains(peer.ip()) {
        return refuse(&"PROXY protocol from a peer not in --trusted-proxies");
    }
    let read = proxy_protocol::read_header(stream, mode);
    match tokio::time::timeout(server.config.handshake_timeout, read).await {
        Ok(Ok((header, rest))) => Some((header.source.map_or(peer.ip(), |s| s.ip()), rest)),
        Ok(Err(e)) => refuse(&e),
        Err(_) => refuse(&"no PROXY protocol header within the handshake timeout"),
    }
}

/// Where a public connection came from: the TCP peer, and the address that
/// delivered it (the PROXY header's source, else the peer).
#[derive(Debug, Clone, Copy)]
struct Hop {
    peer: SocketAddr,
    ip: IpAddr,
}

/// Serves HTTP/1.1 on `io`; `public` is set on the public listener.
async fn serve_http<I>(
    server: Arc<Server>,
    io: I,
    peer: SocketAddr,
    kind: Listener,
    public: Option<(Hop, Arc<ConnAdmission>)>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = {
        let server = server.clone();
        service_fn(move |req: Request<Incoming>| {
            let server = server.clone();
            // The head is read: the request's slots go with it.
            let admit = public.as_ref().map(|(hop, conn)| {
                let ip =
                    client_addr::resolve(hop.ip, &server.config.trusted_proxies, req.headers());
                let client = ClientAddr { ip, peer: hop.peer };
                (client, conn.clone(), conn.answering())
            });
            async move {
                Ok::<_, std::convert::Infallible>(routes::route(server, req, kind, admit).await)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(server.config.handshake_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(io, service).with_upgrades();
    let conn = std::pin::pin!(conn);
    if let Err(e) = conn.await {
        debug!(peer = %peer, error = %e, "HTTP connection ended with an error.");
    }
}

/// A public request's admission: its client address, its connection's
/// state, and the handshake slots taken at its first byte.
pub type Admit = (ClientAddr, Arc<ConnAdmission>, Option<HandshakeSlots>);

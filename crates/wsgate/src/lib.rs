//! wsgate: a horizontally scalable WebSocket gateway.
//!
//! One binary, two modes: standalone (in-memory state) when no Redis URL is
//! configured, cluster over Redis pub/sub when one is. The pieces:
//!
//! - [`config`]: the typed settings (flags, env, file, defaults);
//! - [`server`]: listeners, HTTP routing, the `/ws` upgrade, sessions, drain;
//! - [`session`]: one WebSocket connection;
//! - [`hub`]: the connections, users and rooms of this node, their outboxes;
//! - [`node`]: what the node does with messages, rooms and presence;
//! - [`cluster`]: the [`cluster::Broker`] trait and its memory and Redis implementations;
//! - [`inbox`]: the [`inbox::Inbox`] trait (durable direct messages);
//! - [`history`]: the [`history::History`] trait (room offsets, history, recovery);
//! - [`redis`]: connections, key names and scripts (a leaf used by the
//!   Redis broker and the Redis inbox);
//! - [`errors`]: the one place an error becomes a protocol code, an HTTP
//!   status or a close code;
//! - [`client_addr`]: the client's address behind trusted proxies;
//! - [`api`]: the server API's shared operations and its HTTP door;
//!   [`grpc`]: its gRPC door;
//! - [`webhooks`]: cluster-wide events POSTed to `--webhook-url`;
//! - [`auth`], [`metrics`], [`response`], [`clock`], [`telemetry`].
//!
//! [`run`] is the whole server; `main` only parses settings and calls it, and
//! tests call it with listeners bound to port 0. [`start`] is where every
//! part is built and handed what it needs; nothing reaches through another.

#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use,
    clippy::allow_attributes_without_reason
)]

pub mod api;
pub mod auth;
pub mod client_addr;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod deflate;
pub mod errors;
pub mod grpc;
pub mod history;
pub mod hub;
pub mod inbox;
pub mod metrics;
pub mod node;
pub mod redis;
pub mod response;
pub mod server;
pub mod session;
pub mod telemetry;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::info;

use crate::auth::Authenticator;
use crate::cluster::memory::MemoryBus;
use crate::cluster::Broker;
use crate::config::{Config, ConfigError};
use crate::history::History;
use crate::hub::Hub;
use crate::inbox::memory::MemoryInbox;
use crate::inbox::Inbox;
use crate::metrics::Metrics;
use crate::node::Node;
use crate::server::{Listener, Server};
use crate::webhooks::Webhooks;

/// The bound listeners of a node.
pub struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
    /// The gRPC server API, when `--grpc-listen` is set.
    pub grpc: Option<TcpListener>,
}

impl Listeners {
    /// Binds every listener the config names.
    pub fn bind(config: &Config) -> Result<Listeners, BindError> {
        let bind = |addr: std::net::SocketAddr| {
            server::bind(addr).map_err(|source| BindError { addr, source })
        };
        Ok(Listeners {
            public: bind(config.listen)?,
            admin: bind(config.admin_listen)?,
            grpc: config.grpc_listen.map(bind).transpose()?,
        })
    }
}

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: std::net::SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Where cluster state lives.
pub enum Backend {
    /// Redis when `redis_url` is set, else standalone memory.
    FromConfig,
    /// A shared in-memory bus (several nodes in one process, for tests).
    Memory(MemoryBus),
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot register the metrics")]
    Metrics(#[source] prometheus::Error),
}

/// Runs a node until `shutdown` resolves, then drains it and returns.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with(config, listeners, Backend::FromConfig, shutdown).await
}

/// [`run`] with an explicit backend.
pub async fn run_with(
    config: Config,
    listeners: Listeners,
    backend: Backend,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let server = start(config, listeners, backend)?;
    shutdown.await;
    drain(&server).await;
    Ok(())
}

/// What a backend gives the node.
type Parts = (
    Arc<dyn Broker>,
    Arc<dyn Inbox>,
    Arc<dyn History>,
    Option<Webhooks>,
);

/// Builds the node and starts its listeners and background loops.
pub fn start(
    config: Config,
    listeners: Listeners,
    backend: Backend,
) -> Result<Arc<Server>, RunError> {
    config.check_auth()?;
    let metrics = Arc::new(Metrics::new().map_err(RunError::Metrics)?);
    let auth = Arc::new(Authenticator::from_config(&config)?);
    let memory_history = |bus: &MemoryBus| -> Arc<dyn History> {
        bus.history(
            config.history_size,
            config.history_ttl,
            history::memory::DEFAULT_BUDGET,
        )
    };
    let hub = Arc::new(Hub::new());
    let hooks = config.webhooks().map(Arc::new);
    let memory_webhooks = |bus: &MemoryBus| {
        hooks.clone().map(|h| {
            let events = bus.events(h.events, h.offline_delay, metrics.clone());
            Webhooks::start_memory(h, events, metrics.clone())
        })
    };
    let (broker, inbox, history, webhooks): Parts = match backend {
        Backend::Memory(bus) => (
            Arc::new(bus.broker(&config.node_id)),
            bus.inbox(inbox::InboxLimits::from_config(&config), metrics.clone()),
            memory_history(&bus),
            memory_webhooks(&bus),
        ),
        Backend::FromConfig => match &config.redis_url {
            None => {
                let bus = MemoryBus::new();
                (
                    Arc::new(bus.broker(&config.node_id)),
                    Arc::new(MemoryInbox::new(
                        inbox::InboxLimits::from_config(&config),
                        metrics.clone(),
                    )),
                    memory_history(&bus),
                    memory_webhooks(&bus),
                )
            }
            Some(_) => {
                let redis = crate::redis::Redis::new(&config)?;
                let stop = tokio_util::sync::CancellationToken::new();
                let outboxes = hooks.as_ref().map(|h| {
                    webhooks::outbox::Outboxes::start(
                        redis.clone(),
                        h.events,
                        h.offline_delay,
                        metrics.clone(),
                        stop.clone(),
                    )
                });
                let webhooks = hooks.clone().zip(outboxes.clone()).map(|(h, o)| {
                    Webhooks::start_redis(
                        h,
                        o,
                        stop,
                        redis.clone(),
                        &config.node_id,
                        config.node_ttl,
                        metrics.clone(),
                    )
                });
                (
                    Arc::new(cluster::redis::RedisBroker::new(
                        redis.clone(),
                        &config,
                        metrics.clone(),
                        Arc::new(node::HubView(hub.clone())),
                        outboxes,
                    )),
                    Arc::new(inbox::redis::ListInbox::new(
                        redis.clone(),
                        metrics.clone(),
                        &config,
                    )),
                    Arc::new(history::redis::StreamHistory::new(
                        redis,
                        metrics.clone(),
                        &config,
                    )),
                    webhooks,
                )
            }
        },
    };
    let mode = if config.redis_url.is_some() {
        "cluster"
    } else {
        "standalone"
    };
    let public_addr = listeners.public.local_addr().ok();
    let admin_addr = listeners.admin.local_addr().ok();
    let config = Arc::new(config);
    let node = Node::new(
        config.clone(),
        metrics.clone(),
        hub.clone(),
        broker,
        inbox,
        history,
        webhooks,
    );
    let grpc_api = grpc::Api {
        node: node.clone(),
        config: config.clone(),
        metrics: metrics.clone(),
    };
    let server = Server::new(node, hub, config, metrics, auth);
    info!(
        node = %server.id(),
        mode,
        public = %public_addr.map(|a| a.to_string()).unwrap_or_default(),
        admin = %admin_addr.map(|a| a.to_string()).unwrap_or_default(),
        "Listening."
    );
    tokio::spawn(server::serve(
        server.clone(),
        listeners.public,
        Listener::Public,
    ));
    tokio::spawn(server::serve(
        server.clone(),
        listeners.admin,
        Listener::Admin,
    ));
    if let Some(listener) = listeners.grpc {
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = grpc::serve(grpc_api, server, listener).await {
                tracing::error!(error = %e, "The gRPC API could not start.");
            }
        });
    }
    tokio::spawn(server.clone().refresh_gauges());
    Ok(server)
}

/// Drains the server (contract section 7; see [`server::drain`]) and
/// returns once it has stopped.
pub async fn drain(server: &Arc<Server>) {
    server::drain::drain(server).await;
}

//! wsgate: a horizontally scalable WebSocket gateway.
//!
//! One binary, two modes: standalone (in-memory state) when no Redis URL is
//! configured, cluster over Redis pub/sub when one is. The pieces:
//!
//! - [`config`]: the typed settings (flags, env, file, defaults);
//! - [`server`]: listeners, HTTP routing, the `/ws` upgrade, the demo page;
//! - [`session`]: one WebSocket connection;
//! - [`hub`]: the connections, users and rooms of this node;
//! - [`node`]: what the node does with messages, rooms and presence;
//! - [`cluster`]: the [`cluster::Broker`] trait and its memory and Redis implementations;
//! - [`inbox`]: the [`inbox::Inbox`] trait (durable direct messages);
//! - [`auth`], [`api`], [`metrics`], [`telemetry`].
//!
//! [`run`] is the whole server; `main` only parses settings and calls it, and
//! tests call it with listeners bound to port 0.

#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use,
    clippy::allow_attributes_without_reason
)]

pub mod api;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod hub;
pub mod inbox;
pub mod metrics;
pub mod node;
pub mod redis;
pub mod response;
pub mod server;
pub mod session;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::info;
use wsgate_protocol::CloseCode;

use crate::auth::Authenticator;
use crate::cluster::memory::{MemoryBroker, MemoryBus};
use crate::cluster::Broker;
use crate::config::{Config, ConfigError};
use crate::inbox::memory::MemoryInbox;
use crate::inbox::Inbox;
use crate::metrics::Metrics;
use crate::node::Node;
use crate::server::Listener;

/// The two bound listeners of a node.
pub struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
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
    let node = start(config, listeners, backend)?;
    shutdown.await;
    drain(&node).await;
    Ok(())
}

/// Builds the node and starts its listeners and background loops.
pub fn start(
    config: Config,
    listeners: Listeners,
    backend: Backend,
) -> Result<Arc<Node>, RunError> {
    let metrics = Arc::new(Metrics::new().map_err(RunError::Metrics)?);
    let auth = Authenticator::from_config(&config)?;
    let (broker, inbox): (Arc<dyn Broker>, Arc<dyn Inbox>) = match backend {
        Backend::Memory(bus) => (
            Arc::new(bus.broker(&config.node_id)),
            bus.inbox(config.inbox_max, config.inbox_ttl, metrics.clone()),
        ),
        Backend::FromConfig => match &config.redis_url {
            None => (
                Arc::new(MemoryBroker::standalone(&config.node_id)),
                Arc::new(MemoryInbox::new(
                    config.inbox_max,
                    config.inbox_ttl,
                    metrics.clone(),
                )),
            ),
            Some(_) => {
                let redis = crate::redis::Redis::new(&config)?;
                (
                    Arc::new(cluster::redis::RedisBroker::new(
                        redis.clone(),
                        &config,
                        metrics.clone(),
                    )),
                    Arc::new(inbox::redis::ListInbox::new(
                        redis,
                        metrics.clone(),
                        &config,
                    )),
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
    let node = Node::new(config, metrics, broker, inbox, auth);
    info!(
        node = %node.id(),
        mode,
        public = %public_addr.map(|a| a.to_string()).unwrap_or_default(),
        admin = %admin_addr.map(|a| a.to_string()).unwrap_or_default(),
        "Listening."
    );
    tokio::spawn(server::serve(
        node.clone(),
        listeners.public,
        Listener::Public,
    ));
    tokio::spawn(server::serve(
        node.clone(),
        listeners.admin,
        Listener::Admin,
    ));
    tokio::spawn(refresh_gauges(node.clone()));
    Ok(node)
}

/// Keeps the readiness, broker and cluster-size gauges current.
async fn refresh_gauges(node: Arc<Node>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = node.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        node.metrics.broker_up.set(i64::from(node.broker.is_up()));
        node.metrics
            .ready
            .set(i64::from(node.not_ready_reason().is_none()));
        // Refreshes the node list and `wsgate_cluster_nodes`; a failure is
        // counted by the broker and the next tick tries again.
        if let Err(e) = node.nodes().await {
            tracing::debug!(error = %e, "Node list refresh failed.");
        }
    }
}

/// The drain (contract section 7): not ready at once, new upgrades refused,
/// connections closed with 1012 paced evenly over `drain-timeout`, then the
/// sessions are awaited with a deadline and the node leaves the cluster.
pub async fn drain(node: &Arc<Node>) {
    node.start_draining();
    node.metrics.ready.set(0);
    let conns = node.hub.all();
    let total = conns.len();
    info!(
        connections = total,
        timeout_ms = node.config.drain_timeout.as_millis() as u64,
        "Draining."
    );
    if total > 0 {
        let drain = node.config.drain_timeout;
        let tick = (drain / total as u32).max(Duration::from_millis(10));
        let per_tick = ((total as f64) * tick.as_secs_f64() / drain.as_secs_f64().max(0.001))
            .ceil()
            .max(1.0) as usize;
        let mut interval = tokio::time::interval(tick);
        for batch in conns.chunks(per_tick) {
            interval.tick().await;
            for conn in batch {
                conn.kick(CloseCode::Restart);
            }
        }
    }
    node.sessions.close();
    let grace = Duration::from_secs(5);
    if tokio::time::timeout(grace, node.sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = node.sessions.len(),
            "Sessions still open after the drain; exiting anyway."
        );
    }
    node.broker.shutdown().await;
    node.shutdown.cancel();
    info!("Drained.");
}

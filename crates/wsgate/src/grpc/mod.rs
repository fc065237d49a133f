//! The gRPC door onto the server API (contract section 8.1).
//!
//! With `--grpc-listen` the node serves, with tonic over HTTP/2:
//! - `wsgate.v1.Gateway` ([`service`], from `proto/wsgate/v1/gateway.proto`):
//!   the same operations as the HTTP API, through the same shared layer
//!   ([`crate::api::ops`]), with the API key in the `authorization` metadata;
//! - `grpc.health.v1.Health` (tonic-health), no key: `SERVING` for `""` and
//!   `wsgate.v1.Gateway` while the node is ready (what `/readyz` answers),
//!   `NOT_SERVING` otherwise; a watcher task follows readiness every
//!   [`HEALTH_PERIOD`];
//! - server reflection, v1 and v1alpha (tonic-reflection), no key, so
//!   grpcurl and friends need no copy of the proto file.
//!
//! A request message over `api-max-body-bytes` is refused by tonic
//! (`OUT_OF_RANGE`) before it is decoded, as the HTTP door refuses such a
//! body. The listener stops when the server stops (after the drain),
//! letting calls in flight finish. docs/api.md is the user's guide.

pub mod content;
pub mod proto;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tracing::{info, warn};

use self::proto::gateway_server::GatewayServer;
use self::service::GatewayService;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::node::Node;
use crate::server::Server;

/// What the Gateway service calls: the node's operations, the settings (API
/// key, size limit) and the metrics.
#[derive(Clone)]
pub struct Api {
    pub node: Arc<Node>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
}

/// How often the health service re-reads the node's readiness.
pub const HEALTH_PERIOD: Duration = Duration::from_millis(250);

/// The full name of the Gateway service.
pub const GATEWAY: &str = <GatewayServer<GatewayService> as NamedService>::NAME;

/// Why the gRPC listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[source] tonic_reflection::server::Error),
}

/// Serves the gRPC listener until `server` stops; health follows its
/// readiness.
pub async fn serve(api: Api, server: Arc<Server>, listener: TcpListener) -> Result<(), GrpcError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let reflection_v1 = reflection().build_v1().map_err(GrpcError::Reflection)?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(GrpcError::Reflection)?;
    let limit = api.config.api_max_body_bytes;
    let tracked = server.clone();
    let gateway = GatewayServer::new(GatewayService::new(api)).max_decoding_message_size(limit);
    // The first status is set before the listener answers: a probe never
    // sees "service not registered".
    let mut last = report(&server, &reporter, None).await;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEALTH_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = tracked.stopped() => return,
                _ = tick.tick() => {}
            }
            last = report(&tracked, &reporter, Some(last)).await;
        }
    });
    let addr = listener.local_addr().ok();
    info!(grpc = %addr.map(|a| a.to_string()).unwrap_or_default(), "gRPC API listening.");
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let served = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(gateway)
        .serve_with_incoming_shutdown(incoming, server.stopped())
        .await;
    if let Err(e) = served {
        warn!(error = %e, "gRPC listener stopped with an error.");
    }
    Ok(())
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// Sets the health service's answer to `/readyz`'s when it changed.
async fn report(
    server: &Server,
    reporter: &HealthReporter,
    last: Option<ServingStatus>,
) -> ServingStatus {
    let status = if server.not_ready_reason().is_none() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    if last != Some(status) {
        reporter.set_service_status("", status).await;
        reporter.set_service_status(GATEWAY, status).await;
    }
    status
}

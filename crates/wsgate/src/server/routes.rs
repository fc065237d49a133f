//! HTTP routing: which path answers what on each listener, `/readyz` and
//! `/metrics`.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{demo, upgrade, Admit, Listener, Server};
use crate::response::{error, json, respond, Body};

pub(super) async fn route(
    server: Arc<Server>,
    req: Request<Incoming>,
    kind: Listener,
    admit: Option<Admit>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    // Only an upgrade keeps its handshake slots until it is answered.
    let admit = match admit {
        Some((client, conn, slots)) if path == "/ws" => Some((client, conn, slots)),
        _ => None,
    };
    match (kind, path.as_str()) {
        (_, "/healthz") => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        (_, "/readyz") => readyz(&server),
        (Listener::Public, "/ws") => match admit {
            Some(admit) => upgrade::upgrade(&server, req, admit),
            None => error(StatusCode::NOT_FOUND, "not_found", "no such path"),
        },
        (Listener::Admin, "/metrics") => {
            let metrics = &server.metrics;
            metrics
                .ready
                .set(i64::from(server.not_ready_reason().is_none()));
            metrics.broker_up.set(i64::from(server.node.cluster_up()));
            respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.render().into(),
            )
        }
        (Listener::Admin, p) if p.starts_with("/api/") => {
            crate::api::handle(&server.node, &server.config, &server.metrics, req).await
        }
        (Listener::Public, p) if req.method() == Method::GET || req.method() == Method::HEAD => {
            match demo::asset(p) {
                Some((content_type, body)) => respond(StatusCode::OK, content_type, body.into()),
                None => error(StatusCode::NOT_FOUND, "not_found", "no such path"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such path"),
    }
}

fn readyz(server: &Server) -> Response<Body> {
    match server.not_ready_reason() {
        None => {
            server.metrics.ready.set(1);
            json(StatusCode::OK, &serde_json::json!({"status": "ready"}))
        }
        Some(reason) => {
            server.metrics.ready.set(0);
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "not_ready", "reason": reason}),
            )
        }
    }
}

//! The `/ws` upgrade: checks in the contract's order, then the hand-over of the
//! upgraded socket to a session.
//!
//! Refusals, each with a JSON body and counted by reason: 503 too many
//! handshakes in progress (node or client address, when not refused at the
//! first byte already, see [`super::admitted_io`]) · 400 bad upgrade request
//! · 503 draining, not ready or node full · 403 origin not allowed · 401
//! missing, invalid or expired token · 429 too many connections from this
//! client address ([`crate::client_addr`]). Not ready (cluster mode, Redis unreachable or subscriptions not live):
//! the node could neither replay the inbox nor register the connection, so it
//! could not keep contract 5.1 (replay before live); `/readyz` says the same.
//!
//! The WebSocket runs on the hyper connection's upgraded IO, read and written
//! by the session itself (`session::reader`, `session::writer`: no buffer
//! while idle); the session task is tracked so the drain can wait for it.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::{Either, FutureExt};
use http::{header, HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::{debug, Instrument};
use wsgate_protocol::Codec;

use super::admission::Refusal;
use super::admitted_io::AdmittedIo;
use super::{Admit, Server};
use crate::client_addr::ClientAddr;
use crate::config::OriginPolicy;
use crate::metrics::RejectReason;
use crate::response::{error, Body};

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Percent-decodes a query value; `None` when it is not valid UTF-8.
fn decode_query(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Whether the request's `Origin` is allowed.
pub fn origin_allowed(policy: &OriginPolicy, headers: &HeaderMap) -> bool {
    // Non-browser clients send no Origin; the check protects browsers.
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    match policy {
        OriginPolicy::Any => true,
        OriginPolicy::List(list) => list.contains(&origin),
        OriginPolicy::SameHost => {
            let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
                return false;
            };
            let origin_host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            origin_host.is_some_and(|h| h.eq_ignore_ascii_case(host.trim()))
        }
    }
}

/// A 503 for an admission refusal (already counted), with `Retry-After`.
fn busy(refusal: Refusal, client: &ClientAddr) -> Response<Body> {
    debug!(client = %client, reason = refusal.reason().as_str(), "Upgrade refused.");
    let mut res = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        refusal.to_string(),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    res
}

/// Handles `GET /ws`. The handshake slots in `admit` are held until this
/// returns (the request is answered).
pub fn upgrade(server: &Arc<Server>, mut req: Request<Incoming>, admit: Admit) -> Response<Body> {
    let (client, conn, slots) = admit;
    let admission = conn.admission().clone();
    // A pipelined request was read without a first-byte slot: take it now.
    let mut slots = match slots {
        Some(s) => s,
        None => match admission.begin_handshake(None) {
            Ok(s) => s,
            Err(refusal) => return busy(refusal, &client),
        },
    };
    // Behind a trusted proxy the client's address is known only now.
    if let Err(refusal) = slots.claim_ip(client.ip) {
        return busy(refusal, &client);
    }
    let metrics = &server.metrics;
    let refuse = |reason: RejectReason, status: StatusCode, code: &str, message: &str| {
        metrics.rejected(reason);
        debug!(client = %client, peer = %client.peer, reason = reason.as_str(), "Upgrade refused.");
        error(status, code, message)
    };
    let headers = req.headers();
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let well_formed = req.method() == http::Method::GET
        && header_has_token(headers, header::CONNECTION, "upgrade")
        && header_has_token(headers, header::UPGRADE, "websocket")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13")
        && key.is_some();
    let Some(key) = key.filter(|_| well_formed) else {
        return refuse(
            RejectReason::BadRequest,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected a WebSocket upgrade (GET, Connection: upgrade, Upgrade: websocket, version 13)",
        );
    };
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let codec = if offered.is_empty() {
        Codec::Json
    } else if let Some(c) = offered.iter().find_map(|p| Codec::from_subprotocol(p)) {
        c
    } else {
        return refuse(
            RejectReason::BadRequest,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "no supported subprotocol: offer wsgate.v1.json or wsgate.v1.msgpack",
        );
    };
    let protocol_offered = !offered.is_empty();
    // permessage-deflate (RFC 7692) when on and offered; else no extension.
    let deflate = if server.config.compression {
        crate::deflate::negotiate(
            headers
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    } else {
        None
    };
    if server.drain.is_draining() {
        return refuse(
            RejectReason::Draining,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "node is draining; reconnect to another node",
        );
    }
    if let Some(reason) = server.not_ready_reason() {
        return refuse(
            RejectReason::NotReady,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            reason,
        );
    }
    let Ok(connection_slot) = admission.claim_connection() else {
        debug!(client = %client, reason = "node_full", "Upgrade refused.");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "node is full",
        );
    };
    if !origin_allowed(&server.config.allowed_origins, headers) {
        return refuse(
            RejectReason::Origin,
            StatusCode::FORBIDDEN,
            "forbidden",
            "origin not allowed",
        );
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_owned());
    let query = req.uri().query().unwrap_or("");
    let (query_token, query_user) = match (
        query_param(query, "token").map(decode_query),
        query_param(query, "user").map(decode_query),
    ) {
        (Some(None), _) | (_, Some(None)) => {
            return refuse(
                RejectReason::BadRequest,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "malformed query string",
            );
        }
        (t, u) => (t.flatten(), u.flatten()),
    };
    let identity = match server.auth.authenticate(
        bearer.as_deref(),
        query_token.as_deref(),
        query_user.as_deref(),
    ) {
        Ok(i) => i,
        Err(e) => {
            let (reason, status, code) = crate::errors::auth_rejection(&e);
            return refuse(reason, status, code, &e.to_string());
        }
    };
    let Ok(ip_slot) = admission.claim_ip(client.ip) else {
        debug!(client = %client, reason = "ip_limit", "Upgrade refused.");
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            "too many connections from this IP",
        );
    };

    let on_upgrade = hyper::upgrade::on(&mut req);
    let sessions = server.sessions.clone();
    let metrics = server.metrics.clone();
    let span = tracing::debug_span!("session", client = %client);
    // Combinators rather than an `async` block: a block keeps a slot for every
    // value it captures beside the session for the connection's whole life;
    // here each step's closure is consumed when the step is done, and only the
    // connection's slots stay (released when the session ends).
    let slots = (connection_slot, ip_slot);
    let session = on_upgrade.then(move |upgraded| match upgraded.map(into_socket) {
        Ok(Ok((socket, early))) => {
            metrics.connections_accepted.inc();
            Either::Left(
                crate::session::run(sessions, socket, identity, codec, deflate.is_some(), early)
                    .map(move |()| drop(slots)),
            )
        }
        Ok(Err(())) => {
            // Cannot happen: `/ws` is only routed on the public listener,
            // whose connections are all `AdmittedIo`.
            tracing::error!("The upgraded connection is not a public listener's socket; dropped.");
            Either::Right(std::future::ready(()))
        }
        Err(e) => {
            debug!(error = %e, "Upgrade failed after the 101.");
            Either::Right(std::future::ready(()))
        }
    });
    server.drain.spawn_session(session.instrument(span));
    // Its reads now belong to the WebSocket: they take no handshake slot.
    conn.upgraded();

    let mut res = Response::new(Body::default());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(answer) = deflate {
        h.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            header::HeaderValue::from_static(answer),
        );
    }
    if protocol_offered {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            header::HeaderValue::from_static(codec.subprotocol()),
        );
    }
    res
}

/// The socket under hyper's upgraded IO, and every byte read from it that no
/// one consumed yet (frames the client sent right behind its request): the
/// session reads the socket itself, so hyper's boxed IO (and its
/// allocation) is dropped here. `Err` when the IO is not a public
/// listener's [`AdmittedIo`].
fn into_socket(upgraded: hyper::upgrade::Upgraded) -> Result<(tokio::net::TcpStream, Bytes), ()> {
    let parts = upgraded.downcast::<TokioIo<AdmittedIo>>().map_err(|_| ())?;
    let (socket, unread) = parts.io.into_inner().into_socket();
    let early = match (unread.is_empty(), parts.read_buf.is_empty()) {
        (_, true) => unread,
        (true, false) => parts.read_buf,
        (false, false) => [unread, parts.read_buf].concat().into(),
    };
    Ok((socket, early))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn origin_policy() {
        let same = OriginPolicy::SameHost;
        assert!(origin_allowed(
            &same,
            &headers(&[("host", "a.example:8080")])
        ));
        assert!(origin_allowed(
            &same,
            &headers(&[
                ("host", "a.example:8080"),
                ("origin", "http://a.example:8080")
            ])
        ));
        assert!(!origin_allowed(
            &same,
            &headers(&[
                ("host", "a.example:8080"),
                ("origin", "http://evil.example")
            ])
        ));
        assert!(!origin_allowed(
            &same,
            &headers(&[
                ("host", "a.example"),
                ("origin", "http://a.example.evil.example")
            ])
        ));
        let list = OriginPolicy::List(vec!["https://app.example".into()]);
        assert!(origin_allowed(
            &list,
            &headers(&[("origin", "https://APP.example/")])
        ));
        assert!(!origin_allowed(
            &list,
            &headers(&[("origin", "https://app.example.evil")])
        ));
        assert!(origin_allowed(
            &OriginPolicy::Any,
            &headers(&[("origin", "null")])
        ));
    }

    #[test]
    fn query_decoding() {
        assert_eq!(decode_query("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(decode_query("%zz"), None);
        assert_eq!(decode_query("%e9").as_deref(), None);
        assert_eq!(decode_query("%4").as_deref(), Some("%4"));
        assert_eq!(query_param("user=bob&token=x", "token"), Some("x"));
    }
}

//! The server API on the admin listener (contract section 8).
//!
//! Every route needs `Authorization: Bearer <api key>` except
//! `GET /api/v1/openapi.json` (the description of this API, nothing secret).
//! With no key configured every route answers 503. Errors are
//! `{"error":CODE,"message":TEXT}`; [`ApiError::mapping`] maps a failure to
//! its status (a node's refusal through [`crate::errors`]). A body over
//! `api-max-body-bytes` (declared, or found while reading) is never kept: the
//! rest of it is read and dropped (bounded in bytes and time) and the answer
//! is 413, so a client that sent its whole body can read the 413 rather than
//! meet a reset. Unknown fields in a body are a 400, so typos never pass
//! silently.
//!
//! This module is the HTTP door only: it routes, reads bodies and query
//! strings, and writes JSON. The operations themselves, with their checks,
//! live in [`ops`], shared with the gRPC door ([`crate::grpc`]).

use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

pub use self::error::{ApiError, ErrorMapping};
pub use self::ops::{PublishRequest, PublishTarget, RawPublish};
use crate::config::Config;
use crate::metrics::ApiRoute;
use crate::metrics::Metrics;
use crate::node::Node;
use crate::response::{error, json as json_response, respond, Body};

mod error;
pub mod ops;

const OPENAPI: &str = include_str!("openapi.json");

impl ApiError {
    fn response(&self) -> Response<Body> {
        let m = self.mapping();
        let mut res = error(m.http, m.code, self.to_string());
        if matches!(self, ApiError::TooLarge(_)) {
            // The refused body was read and dropped, as far as it was
            // bounded: end the connection cleanly rather than reuse it.
            res.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
        }
        res
    }
}

/// Handles one `/api/...` request.
pub async fn handle(
    node: &Node,
    config: &Config,
    metrics: &Metrics,
    req: Request<Incoming>,
) -> Response<Body> {
    let (route, result) = dispatch(node, config, req).await;
    let res = result.unwrap_or_else(|e| e.response());
    metrics.api_request(route, res.status().as_u16());
    res
}

async fn dispatch(
    node: &Node,
    config: &Config,
    req: Request<Incoming>,
) -> (ApiRoute, Result<Response<Body>, ApiError>) {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    let route = match segments.as_slice() {
        ["api", "v1", "publish"] => ApiRoute::Publish,
        ["api", "v1", "rooms", _] => ApiRoute::Rooms,
        ["api", "v1", "rooms", _, "history"] => ApiRoute::History,
        ["api", "v1", "users", _] => ApiRoute::Users,
        ["api", "v1", "users", _, "disconnect"] => ApiRoute::Disconnect,
        ["api", "v1", "nodes"] => ApiRoute::Nodes,
        ["api", "v1", "openapi.json"] => ApiRoute::OpenApi,
        _ => return (ApiRoute::Unknown, Err(ApiError::NotFound)),
    };
    let expected = if matches!(route, ApiRoute::Publish | ApiRoute::Disconnect) {
        Method::POST
    } else {
        Method::GET
    };
    if method != expected {
        return (route, Err(ApiError::MethodNotAllowed));
    }
    if route == ApiRoute::OpenApi {
        return (
            route,
            Ok(respond(StatusCode::OK, "application/json", OPENAPI.into())),
        );
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(e) = ops::authorize(config, authorization) {
        return (route, Err(e));
    }
    let result = match (route, segments.as_slice()) {
        (ApiRoute::Publish, _) => publish(node, config, req).await,
        (ApiRoute::Rooms, [.., room]) => {
            room_page(node, room, req.uri().query().unwrap_or("")).await
        }
        (ApiRoute::History, [.., room, _]) => room_history(node, room, req.uri().query()).await,
        (ApiRoute::Users, [.., user]) => ops::user(node, user).await.map(|u| {
            json_response(
                StatusCode::OK,
                &json!({"user": u.user, "online": u.online, "connections": u.connections}),
            )
        }),
        (ApiRoute::Disconnect, [.., user, _]) => ops::disconnect(node, user)
            .await
            .map(|n| json_response(StatusCode::OK, &json!({"disconnected": n}))),
        (ApiRoute::Nodes, _) => ops::nodes(node)
            .await
            .map(|nodes| json_response(StatusCode::OK, &json!(nodes))),
        _ => Err(ApiError::NotFound),
    };
    (route, result)
}

/// `GET /api/v1/rooms/{room}?limit=L&cursor=C`: one page of members, with
/// the member count; `next_cursor` is absent on the last page.
async fn room_page(node: &Node, room: &str, query: &str) -> Result<Response<Body>, ApiError> {
    let mut limit = None;
    let mut cursor = None;
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match k {
            "limit" => {
                let n = v.parse::<u64>().map_err(|_| {
                    ApiError::BadRequest(format!("`limit` must be 1 to {}", ops::ROOM_PAGE_MAX))
                })?;
                limit = Some(n);
            }
            "cursor" if !v.is_empty() => cursor = Some(v.to_owned()),
            _ => {}
        }
    }
    let page = ops::room(node, room, limit, cursor.as_deref()).await?;
    let mut body = json!({
        "room": page.room,
        "member_count": page.member_count,
        "members": page.members,
    });
    if let Some(next) = page.next_cursor {
        body["next_cursor"] = Value::String(next);
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// The body of `POST /api/v1/publish`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    broadcast: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    content: Option<Value>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Most bytes of a refused (too large) body read and dropped before the 413,
/// and how long that may take: a client that sent its whole body can then
/// read the answer instead of meeting a reset (closing a socket with unread
/// bytes resets it). Larger bodies are cut off (the 413 may then be lost).
const REFUSED_BODY_DRAIN_BYTES: usize = 4 * 1024 * 1024;
const REFUSED_BODY_DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

async fn read_body(config: &Config, req: Request<Incoming>) -> Result<bytes::Bytes, ApiError> {
    let limit = config.api_max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = req.into_body();
    if declared.is_some_and(|n| n > limit as u64) {
        drain_refused(&mut body).await;
        return Err(ApiError::TooLarge(limit));
    }
    let mut collected = Vec::new();
    loop {
        match body.frame().await {
            None => return Ok(collected.into()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if collected.len() + data.len() > limit {
                        drain_refused(&mut body).await;
                        return Err(ApiError::TooLarge(limit));
                    }
                    collected.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                return Err(ApiError::BadRequest(format!(
                    "could not read the body: {e}"
                )))
            }
        }
    }
}

/// Reads and drops a refused body, up to [`REFUSED_BODY_DRAIN_BYTES`] and
/// [`REFUSED_BODY_DRAIN_TIME`].
async fn drain_refused(body: &mut Incoming) {
    let drain = async {
        let mut left = REFUSED_BODY_DRAIN_BYTES;
        while let Some(Ok(frame)) = body.frame().await {
            let n = frame.data_ref().map_or(0, |d| d.len());
            left = left.saturating_sub(n);
            if left == 0 {
                return;
            }
        }
    };
    if tokio::time::timeout(REFUSED_BODY_DRAIN_TIME, drain)
        .await
        .is_err()
    {
        tracing::debug!("Refused body not drained in time; the connection is closed.");
    }
}

/// Parses and checks a publish body: pure, no I/O (it is fuzzed).
pub fn parse_publish_body(bytes: &[u8]) -> Result<PublishRequest, ApiError> {
    let body: PublishBody = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    RawPublish {
        to: body.to,
        room: body.room,
        broadcast: body.broadcast,
        content: body.content,
        from: body.from,
        id: body.id,
    }
    .check()
}

async fn publish(
    node: &Node,
    config: &Config,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let bytes = read_body(config, req).await?;
    let published = ops::publish(node, parse_publish_body(&bytes)?).await?;
    let mut body = json!({"id": published.id});
    if let Some(online) = published.online {
        body["online"] = json!(online);
    }
    if published.duplicate {
        body["duplicate"] = json!(true);
    }
    if let Some(position) = published.position {
        body["epoch"] = json!(position.epoch);
        body["offset"] = json!(position.offset);
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// The query of `GET /api/v1/rooms/{room}/history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Messages after this offset (default 0: the oldest kept).
    pub since: u64,
    /// At most this many (default and cap [`HISTORY_LIMIT_MAX`]).
    pub limit: usize,
}

/// Most messages one history page holds.
pub const HISTORY_LIMIT_MAX: usize = crate::history::PAGE_MAX;

/// Parses `since=N&limit=L` (both optional; anything else is a 400).
pub fn parse_history_query(query: Option<&str>) -> Result<HistoryQuery, ApiError> {
    let mut q = HistoryQuery {
        since: 0,
        limit: HISTORY_LIMIT_MAX,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value.parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!("`{key}` must be a whole number, not {value:?}"))
            })
        };
        match key {
            "since" => q.since = number()?,
            "limit" => {
                q.limit = usize::try_from(number()?)
                    .unwrap_or(usize::MAX)
                    .min(HISTORY_LIMIT_MAX)
            }
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {key:?} (history takes `since` and `limit`)"
                )))
            }
        }
    }
    Ok(q)
}

async fn room_history(
    node: &Node,
    room: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let q = parse_history_query(query)?;
    let page = ops::room_history(node, room, q.since, q.limit).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "room": page.room,
            "epoch": page.position.epoch,
            "offset": page.position.offset,
            "messages": page.messages,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_body_parsing() {
        let ok = parse_publish_body(br#"{"to":"bob","content":{"a":1},"from":"svc"}"#).unwrap();
        assert_eq!(ok.target, PublishTarget::User("bob".into()));
        assert_eq!(ok.from, "svc");
        let ok = parse_publish_body(br#"{"room":"r1","content":null}"#).unwrap();
        assert_eq!(ok.target, PublishTarget::Room("r1".into()));
        assert_eq!(ok.from, "server");
        assert_eq!(ok.content, Value::Null);
        let ok = parse_publish_body(br#"{"broadcast":true,"content":"x"}"#).unwrap();
        assert_eq!(ok.target, PublishTarget::Broadcast);
        for bad in [
            &br#"{"to":"bob"}"#[..],
            br#"{"to":"bob","room":"r","content":1}"#,
            br#"{"to":"a/b","content":1}"#,
            br#"{"to":"bob","content":1,"extra":1}"#,
            br#"{"to":"bob","to":"eve","content":1}"#,
            br#"{"broadcast":false,"content":1}"#,
            br#"{"to":"bob","content":1,"from":"a\u0000b"}"#,
            b"{",
            b"",
        ] {
            let e = parse_publish_body(bad).unwrap_err();
            assert!(
                matches!(e, ApiError::BadRequest(_)),
                "{:?}: {e:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "[".repeat(100_000);
        assert!(parse_publish_body(format!(r#"{{"to":"b","content":{deep}"#).as_bytes()).is_err());
    }

    #[test]
    fn history_query_parsing() {
        let q = |s| parse_history_query(s);
        assert_eq!(
            q(None).unwrap(),
            HistoryQuery {
                since: 0,
                limit: 100
            }
        );
        assert_eq!(
            q(Some("since=7&limit=3")).unwrap(),
            HistoryQuery { since: 7, limit: 3 }
        );
        assert_eq!(q(Some("limit=100000")).unwrap().limit, 100, "capped");
        assert_eq!(q(Some("limit=0&")).unwrap().limit, 0);
        for bad in [
            "since=-1",
            "since=x",
            "limit=",
            "cursor=3",
            "since",
            "limit=1.5",
        ] {
            assert!(
                matches!(q(Some(bad)), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
    }
}

//! `wsgate.v1.Gateway`: each RPC translates its request into a call of the
//! shared operations ([`crate::api::ops`]) and the result back into protobuf.
//!
//! The API key is checked first in every call, through the same
//! [`ops::authorize`] as the HTTP door. A failure becomes a `Status` with the
//! code from [`ApiError::mapping`] and the contract's error code in the
//! `wsgate-error` metadata (e.g. `inbox_full` beside `RESOURCE_EXHAUSTED`).

use std::future::Future;

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};

use super::proto::{self, gateway_server::Gateway, publish_request::Target};
use super::{content, Api};
use crate::api::{ops, ApiError, RawPublish};

/// The gRPC methods, as labels of `wsgate_grpc_requests_total`.
pub const METHODS: [&str; 6] = [
    "Publish",
    "GetRoom",
    "GetUser",
    "DisconnectUser",
    "ListNodes",
    "RoomHistory",
];

/// The `Gateway` service of one node.
pub struct GatewayService {
    api: Api,
}

impl GatewayService {
    pub fn new(api: Api) -> Self {
        GatewayService { api }
    }

    /// Checks the key, runs `op`, counts the outcome, maps the error.
    async fn call<T, F>(
        &self,
        method: &'static str,
        metadata: &MetadataMap,
        op: impl FnOnce() -> F,
    ) -> Result<Response<T>, Status>
    where
        F: Future<Output = Result<T, ApiError>>,
    {
        let authorization = metadata.get("authorization").and_then(|v| v.to_str().ok());
        let result = match ops::authorize(&self.api.config, authorization) {
            Ok(()) => op().await,
            Err(e) => Err(e),
        };
        let result = result.map(Response::new).map_err(|e| status(&e));
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        self.api.metrics.grpc_request(method, code_name(code));
        result
    }
}

/// The gRPC status of an API error.
pub fn status(e: &ApiError) -> Status {
    let m = e.mapping();
    let mut s = Status::new(m.grpc, e.to_string());
    s.metadata_mut()
        .insert("wsgate-error", MetadataValue::from_static(m.code));
    s
}

/// The canonical name of a status code (the `code` label).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// An empty proto3 string is an absent field.
fn present(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl Gateway for GatewayService {
    async fn publish(
        &self,
        request: Request<proto::PublishRequest>,
    ) -> Result<Response<proto::PublishResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        self.call("Publish", &metadata, || async move {
            let body = req;
            let mut raw = RawPublish {
                content: content::to_json(body.content)?,
                from: present(body.from),
                id: body.id,
                ..RawPublish::default()
            };
            match body.target {
                Some(Target::To(to)) => raw.to = Some(to),
                Some(Target::Room(room)) => raw.room = Some(room),
                Some(Target::Broadcast(b)) => raw.broadcast = Some(b),
                None => {}
            }
            let published = ops::publish(&self.api.node, raw.check()?).await?;
            let (epoch, offset) = match published.position {
                Some(p) => (Some(p.epoch), Some(p.offset)),
                None => (None, None),
            };
            Ok(proto::PublishResponse {
                id: published.id,
                online: published.online,
                epoch,
                offset,
                duplicate: published.duplicate,
            })
        })
        .await
    }

    async fn get_room(
        &self,
        request: Request<proto::GetRoomRequest>,
    ) -> Result<Response<proto::GetRoomResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        self.call("GetRoom", &metadata, || async move {
            let limit = (req.limit != 0).then_some(u64::from(req.limit));
            let cursor = (!req.cursor.is_empty()).then_some(req.cursor.as_str());
            let page = ops::room(&self.api.node, &req.room, limit, cursor).await?;
            Ok(proto::GetRoomResponse {
                room: page.room,
                member_count: page.member_count,
                members: page.members,
                next_cursor: page.next_cursor,
            })
        })
        .await
    }

    async fn get_user(
        &self,
        request: Request<proto::GetUserRequest>,
    ) -> Result<Response<proto::GetUserResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        self.call("GetUser", &metadata, || async move {
            let u = ops::user(&self.api.node, &req.user).await?;
            Ok(proto::GetUserResponse {
                user: u.user,
                online: u.online,
                connections: u.connections,
            })
        })
        .await
    }

    async fn disconnect_user(
        &self,
        request: Request<proto::DisconnectUserRequest>,
    ) -> Result<Response<proto::DisconnectUserResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        self.call("DisconnectUser", &metadata, || async move {
            let disconnected = ops::disconnect(&self.api.node, &req.user).await?;
            Ok(proto::DisconnectUserResponse { disconnected })
        })
        .await
    }

    async fn list_nodes(
        &self,
        request: Request<proto::ListNodesRequest>,
    ) -> Result<Response<proto::ListNodesResponse>, Status> {
        let (metadata, _, _) = request.into_parts();
        self.call("ListNodes", &metadata, || async move {
            let nodes = ops::nodes(&self.api.node).await?;
            Ok(proto::ListNodesResponse {
                nodes: nodes
                    .into_iter()
                    .map(|n| proto::NodeInfo {
                        node: n.node,
                        connections: n.connections,
                        started_at: n.started_at,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn room_history(
        &self,
        request: Request<proto::RoomHistoryRequest>,
    ) -> Result<Response<proto::RoomHistoryResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        self.call("RoomHistory", &metadata, || async move {
            let limit = req.limit.map_or(ops::HISTORY_PAGE_MAX, |n| n as usize);
            let page = ops::room_history(&self.api.node, &req.room, req.since, limit).await?;
            Ok(proto::RoomHistoryResponse {
                room: page.room,
                epoch: page.position.epoch,
                offset: page.position.offset,
                messages: page.messages.into_iter().map(message).collect(),
            })
        })
        .await
    }
}

/// A `message` frame as protobuf.
fn message(m: wsgate_protocol::MessageFrame) -> proto::Message {
    use wsgate_protocol::Kind;
    let kind = match m.kind {
        Kind::Direct => proto::Kind::Direct,
        Kind::Room => proto::Kind::Room,
        Kind::Broadcast => proto::Kind::Broadcast,
    };
    proto::Message {
        id: m.id,
        kind: kind.into(),
        from: m.from,
        to: m.to,
        room: m.room,
        content: Some(content::from_json(m.content)),
        time: m.time,
        offset: m.offset,
        epoch: m.epoch,
    }
}

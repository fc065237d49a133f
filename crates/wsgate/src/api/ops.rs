//! The server API's operations, shared by its two doors: HTTP
//! ([`crate::api`]) and gRPC ([`crate::grpc`]).
//!
//! A door only translates: it turns its wire request into the arguments
//! here, calls one function, and turns the result (or the [`ApiError`]) into
//! its wire answer. Everything else lives here once: the API key check, the
//! validation of user ids, room names, targets and page sizes, the calls into
//! the [`Node`], and the results' shapes.

use serde_json::Value;
use wsgate_protocol::names::is_valid_name;

use crate::api::ApiError;
use crate::cluster::NodeInfo;
use crate::config::Config;
pub use crate::history::PAGE_MAX as HISTORY_PAGE_MAX;
use crate::inbox::Sender;
use crate::node::Node;
use wsgate_protocol::Position;

/// Members per page of a room listing when the caller gives no limit.
pub const ROOM_PAGE_DEFAULT: usize = 1000;
/// The most members one page may hold.
pub const ROOM_PAGE_MAX: usize = 10_000;
/// The longest room listing cursor.
const CURSOR_MAX_BYTES: usize = 64;

/// Checks the API key. `authorization` is the raw `Authorization` header
/// (HTTP) or `authorization` metadata value (gRPC): `Bearer <key>`, compared
/// with the configured key's digest in constant time ([`crate::config::ApiKey`]).
pub fn authorize(config: &Config, authorization: Option<&str>) -> Result<(), ApiError> {
    let Some(key) = &config.api_key else {
        return Err(ApiError::Disabled);
    };
    let given = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if key.matches(g) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// Checks a user id or room name (`what` names it in the error).
pub fn name(value: &str, what: &str) -> Result<String, ApiError> {
    if is_valid_name(value) {
        Ok(value.to_owned())
    } else {
        Err(ApiError::BadRequest(format!(
            "invalid {what}: 1-128 bytes of [A-Za-z0-9_.:@-]"
        )))
    }
}

/// Where a publish goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishTarget {
    /// A direct message to every connection of this user.
    User(String),
    /// A room message.
    Room(String),
    /// A broadcast.
    Broadcast,
}

/// A checked publish request.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishRequest {
    pub target: PublishTarget,
    /// The sender shown to recipients (`"server"` when absent).
    pub from: String,
    pub content: Value,
    /// A direct message's client-chosen id (a UUID): idempotent (contract 5.2).
    pub id: Option<String>,
}

/// A publish request as a door received it, before it is checked.
#[derive(Debug, Default)]
pub struct RawPublish {
    pub to: Option<String>,
    pub room: Option<String>,
    pub broadcast: Option<bool>,
    pub content: Option<Value>,
    pub from: Option<String>,
    pub id: Option<String>,
}

impl RawPublish {
    /// Checks the target (exactly one), the names and that content is there.
    pub fn check(self) -> Result<PublishRequest, ApiError> {
        let content = self
            .content
            .ok_or_else(|| ApiError::BadRequest("missing field `content`".into()))?;
        let from = name(self.from.as_deref().unwrap_or("server"), "`from`")?;
        let target = match (self.to, self.room, self.broadcast) {
            (Some(to), None, None | Some(false)) => PublishTarget::User(name(&to, "`to`")?),
            (None, Some(room), None | Some(false)) => PublishTarget::Room(name(&room, "`room`")?),
            (None, None, Some(true)) => PublishTarget::Broadcast,
            _ => {
                return Err(ApiError::BadRequest(
                    "give exactly one of `to`, `room` or `\"broadcast\": true`".into(),
                ))
            }
        };
        let id = match (self.id, &target) {
            (None, _) => None,
            (Some(id), PublishTarget::User(_)) if wsgate_protocol::codec::is_uuid(&id) => Some(id),
            (Some(_), PublishTarget::User(_)) => {
                return Err(ApiError::BadRequest(
                    "`id` must be a UUID string (8-4-4-4-12 hex digits)".into(),
                ))
            }
            (Some(_), _) => {
                return Err(ApiError::BadRequest(
                    "`id` is only for direct messages (`to`)".into(),
                ))
            }
        };
        Ok(PublishRequest {
            target,
            from,
            content,
            id,
        })
    }
}

/// What a publish answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    /// For a direct message: whether the recipient was online anywhere.
    pub online: Option<bool>,
    /// For a room message: its place in the room's history.
    pub position: Option<Position>,
    /// For a direct message with an `id` already stored: nothing was
    /// stored or delivered again.
    pub duplicate: bool,
}

/// Publishes a direct, room or broadcast message.
pub async fn publish(node: &Node, req: PublishRequest) -> Result<Published, ApiError> {
    let PublishRequest {
        target,
        from,
        content,
        id,
    } = req;
    Ok(match target {
        PublishTarget::User(to) => {
            let sent = node
                .send_direct(Sender::Api, &from, &to, content, id)
                .await?;
            Published {
                id: sent.id,
                online: sent.online,
                position: None,
                duplicate: sent.duplicate,
            }
        }
        PublishTarget::Room(room) => {
            let (id, position) = node.publish_room(None, &from, &room, content).await?;
            Published {
                id,
                online: None,
                position: Some(position),
                duplicate: false,
            }
        }
        PublishTarget::Broadcast => Published {
            id: node.broadcast(&from, content).await?,
            online: None,
            position: None,
            duplicate: false,
        },
    })
}

/// One page of a room's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPage {
    pub room: String,
    pub member_count: u64,
    pub members: Vec<String>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of `room`'s members, cluster-wide: `limit` (default
/// [`ROOM_PAGE_DEFAULT`], 1 to [`ROOM_PAGE_MAX`]) members after `cursor`
/// (the opaque `next_cursor` of the previous page), with the member count.
pub async fn room(
    node: &Node,
    room: &str,
    limit: Option<u64>,
    cursor: Option<&str>,
) -> Result<RoomPage, ApiError> {
    let room = name(room, "room name")?;
    let limit = match limit {
        None => ROOM_PAGE_DEFAULT,
        Some(n) if (1..=ROOM_PAGE_MAX as u64).contains(&n) => n as usize,
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "`limit` must be 1 to {ROOM_PAGE_MAX}"
            )))
        }
    };
    if let Some(c) = cursor {
        let ok = c.len() <= CURSOR_MAX_BYTES
            && c.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'_' | b'.' | b'@')
            });
        if !ok {
            return Err(ApiError::BadRequest("invalid `cursor`".into()));
        }
    }
    let (member_count, members, next_cursor) = node.room_page(&room, cursor, limit).await?;
    Ok(RoomPage {
        room,
        member_count,
        members,
        next_cursor,
    })
}

/// A user's presence, cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStatus {
    pub user: String,
    pub online: bool,
    pub connections: u64,
}

/// Looks a user up.
pub async fn user(node: &Node, user: &str) -> Result<UserStatus, ApiError> {
    let user = name(user, "user id")?;
    let connections = node.user_connections(&user).await?;
    Ok(UserStatus {
        user,
        online: connections > 0,
        connections,
    })
}

/// Closes a user's connections on every node; returns how many there were.
pub async fn disconnect(node: &Node, user: &str) -> Result<u64, ApiError> {
    let user = name(user, "user id")?;
    Ok(node.disconnect_user(&user).await?)
}

/// The live nodes of the cluster.
pub async fn nodes(node: &Node) -> Result<Vec<NodeInfo>, ApiError> {
    Ok(node.nodes().await?)
}

/// A page of a room's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub room: String,
    /// The room's position now: its epoch and the offset of its last message.
    pub position: Position,
    /// Kept messages after the requested offset, oldest first.
    pub messages: Vec<wsgate_protocol::MessageFrame>,
}

/// The oldest `limit` (capped at the history page size) kept messages of
/// `room` after offset `since`.
pub async fn room_history(
    node: &Node,
    room: &str,
    since: u64,
    limit: usize,
) -> Result<HistoryPage, ApiError> {
    let room = name(room, "room name")?;
    let page = node
        .room_history(&room, since, limit.min(HISTORY_PAGE_MAX))
        .await?;
    Ok(HistoryPage {
        room,
        position: page.position,
        messages: page.messages,
    })
}

//! Who is connected to this node: connections, their users, and room membership.
//!
//! The hub is local and synchronous. It never blocks on a connection: each
//! connection has a bounded outbox, and [`Conn::push`] uses `try_send`; a full
//! outbox marks the connection a slow consumer, which its session closes with
//! 1013. Frames are shared (`Arc<Delivery>`), so a message for 10,000 sockets is
//! encoded once per codec (see [`wsgate_protocol::EncodedFrame`]).
//!
//! The hub knows nothing of Redis or other nodes: the [`crate::node::Node`]
//! decides what goes to the cluster.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use std::sync::OnceLock;

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use wsgate_protocol::{encode_server, CloseCode, Codec, Kind, ServerFrame};

/// A connection's id, unique on this node.
pub type ConnId = u64;

/// One frame on its way to one or more connections. It is encoded at most
/// once per codec, into a WebSocket message whose clones share the bytes.
#[derive(Debug)]
pub struct Delivery {
    frame: ServerFrame,
    json: OnceLock<Option<Message>>,
    msgpack: OnceLock<Option<Message>>,
    /// For messages: the kind and when a node accepted it (ms since epoch),
    /// for the delivery metrics.
    pub message: Option<(Kind, u64)>,
}

impl Delivery {
    fn new(frame: ServerFrame, message: Option<(Kind, u64)>) -> Arc<Delivery> {
        Arc::new(Delivery {
            frame,
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
            message,
        })
    }

    /// A frame that is not a message (reply, presence, typing, ...).
    pub fn control(frame: ServerFrame) -> Arc<Delivery> {
        Delivery::new(frame, None)
    }

    /// A message accepted at `accepted_ms`.
    pub fn message(frame: ServerFrame, kind: Kind, accepted_ms: u64) -> Arc<Delivery> {
        Delivery::new(frame, Some((kind, accepted_ms)))
    }

    /// The frame.
    pub fn frame(&self) -> &ServerFrame {
        &self.frame
    }

    /// The WebSocket message for `codec`, encoded on first use. `None` only if
    /// the frame cannot be encoded (content MessagePack cannot carry).
    pub fn ws_message(&self, codec: Codec) -> Option<Message> {
        let cell = match codec {
            Codec::Json => &self.json,
            Codec::Msgpack => &self.msgpack,
        };
        cell.get_or_init(|| to_ws_message(codec, &self.frame))
            .clone()
    }
}

/// Encodes one frame for one connection.
pub fn to_ws_message(codec: Codec, frame: &ServerFrame) -> Option<Message> {
    let bytes = match encode_server(codec, frame) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "Frame encoding failed.");
            return None;
        }
    };
    match codec {
        // serde_json output is UTF-8; the check runs once per frame, not per socket.
        Codec::Json => Utf8Bytes::try_from(bytes).ok().map(Message::Text),
        Codec::Msgpack => Some(Message::Binary(bytes)),
    }
}

/// What a push into an outbox did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The outbox was full: the connection is now being closed with 1013.
    SlowConsumer,
    /// The connection is gone or closing.
    Closed,
}

/// The shared half of a connection: what the hub and other tasks hold.
///
/// Its outbox is a bounded queue of shared frames. It is a locked `VecDeque`
/// rather than a channel because an idle connection must cost little: the
/// queue allocates nothing until a frame is queued and gives its buffer back
/// when it drains (a tokio channel allocates a cache-padded channel and a
/// 32-slot block up front, about 800 bytes per connection).
#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    pub user: Arc<str>,
    outbox: Mutex<VecDeque<Arc<Delivery>>>,
    capacity: usize,
    close: AtomicU16,
    /// Wakes the session when frames are queued.
    queued: Notify,
    /// Wakes the session when a close is requested.
    kicked: Notify,
}

/// Queue capacity kept when an outbox drains; larger buffers are released.
const OUTBOX_KEEP: usize = 16;

impl Conn {
    /// Creates a connection whose outbox holds at most `capacity` frames.
    pub fn new(id: ConnId, user: Arc<str>, capacity: usize) -> Arc<Conn> {
        Arc::new(Conn {
            id,
            user,
            outbox: Mutex::new(VecDeque::new()),
            capacity,
            close: AtomicU16::new(0),
            queued: Notify::new(),
            kicked: Notify::new(),
        })
    }

    fn lock_outbox(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Delivery>>> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame without waiting. A full outbox closes the connection with 1013.
    pub fn push(&self, delivery: &Arc<Delivery>) -> Pushed {
        if self.close.load(Ordering::Relaxed) != 0 {
            return Pushed::Closed;
        }
        {
            let mut queue = self.lock_outbox();
            if queue.len() >= self.capacity {
                drop(queue);
                return if self.kick(CloseCode::TryAgainLater) {
                    Pushed::SlowConsumer
                } else {
                    Pushed::Closed
                };
            }
            queue.push_back(delivery.clone());
        }
        self.queued.notify_one();
        Pushed::Queued
    }

    /// Moves up to `max` queued frames into `out`; returns true when more remain.
    pub fn take(&self, out: &mut Vec<Arc<Delivery>>, max: usize) -> bool {
        let mut queue = self.lock_outbox();
        let n = queue.len().min(max);
        out.extend(queue.drain(..n));
        if queue.is_empty() && queue.capacity() > OUTBOX_KEEP {
            *queue = VecDeque::new();
        }
        !queue.is_empty()
    }

    /// Resolves when frames may have been queued since the last call.
    pub async fn wait_queued(&self) {
        self.queued.notified().await;
    }

    /// Re-arms [`Conn::wait_queued`] when frames were left in the queue.
    pub fn rearm(&self) {
        self.queued.notify_one();
    }

    /// Asks the session to close with `code`. Returns false when a close was
    /// already requested (the first code wins).
    pub fn kick(&self, code: CloseCode) -> bool {
        let first = self
            .close
            .compare_exchange(0, code.as_u16(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.kicked.notify_one();
        }
        first
    }

    /// The close requested by [`Conn::kick`], if any.
    pub fn kicked(&self) -> Option<CloseCode> {
        let code = self.close.load(Ordering::Acquire);
        CloseCode::ALL.iter().copied().find(|c| c.as_u16() == code)
    }

    /// Resolves once a close is requested.
    pub async fn wait_kicked(&self) -> CloseCode {
        loop {
            if let Some(code) = self.kicked() {
                return code;
            }
            self.kicked.notified().await;
        }
    }
}

#[derive(Default)]
struct RoomLocal {
    conns: HashMap<ConnId, Arc<Conn>>,
    users: HashMap<Arc<str>, u32>,
}

/// What a local join changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinLocal {
    /// The connection was not in the room before.
    pub new: bool,
    /// The user had no connection in the room on this node before.
    pub user_first: bool,
    /// The room had no member on this node before.
    pub room_first: bool,
}

/// What a local leave changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaveLocal {
    /// The connection was in the room.
    pub was_member: bool,
    /// The user has no connection left in the room on this node.
    pub user_last: bool,
    /// The room has no member left on this node.
    pub room_last: bool,
}

/// The local registry of connections, users and rooms.
#[derive(Default)]
pub struct Hub {
    conns: RwLock<HashMap<ConnId, Arc<Conn>>>,
    users: RwLock<HashMap<Arc<str>, Vec<Arc<Conn>>>>,
    rooms: RwLock<HashMap<Arc<str>, RoomLocal>>,
    next_id: AtomicU64,
}

// A poisoned lock only means another thread panicked mid-update of a map of
// handles; the maps stay structurally valid, so keep serving.
macro_rules! read {
    ($l:expr) => {
        $l.read().unwrap_or_else(|e| e.into_inner())
    };
}
macro_rules! write {
    ($l:expr) => {
        $l.write().unwrap_or_else(|e| e.into_inner())
    };
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    /// A fresh connection id.
    pub fn next_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        read!(self.conns).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rooms with a member here.
    pub fn room_count(&self) -> usize {
        read!(self.rooms).len()
    }

    /// Registers a connection; true when it is the user's first here.
    pub fn add(&self, conn: &Arc<Conn>) -> bool {
        write!(self.conns).insert(conn.id, conn.clone());
        let mut users = write!(self.users);
        let list = users.entry(conn.user.clone()).or_default();
        list.push(conn.clone());
        list.len() == 1
    }

    /// Unregisters a connection (after it left its rooms); true when it was the
    /// user's last here.
    pub fn remove(&self, conn: &Conn) -> bool {
        write!(self.conns).remove(&conn.id);
        let mut users = write!(self.users);
        let Some(list) = users.get_mut(&conn.user) else {
            return false;
        };
        list.retain(|c| c.id != conn.id);
        if list.is_empty() {
            users.remove(&conn.user);
            true
        } else {
            false
        }
    }

    /// Adds a connection to a room.
    pub fn join(&self, conn: &Arc<Conn>, room: &str) -> JoinLocal {
        let mut rooms = write!(self.rooms);
        let room_first = !rooms.contains_key(room);
        let entry = rooms.entry(Arc::from(room)).or_default();
        if entry.conns.insert(conn.id, conn.clone()).is_some() {
            return JoinLocal {
                new: false,
                user_first: false,
                room_first: false,
            };
        }
        let n = entry.users.entry(conn.user.clone()).or_insert(0);
        *n += 1;
        JoinLocal {
            new: true,
            user_first: *n == 1,
            room_first,
        }
    }

    /// Removes a connection from a room.
    pub fn leave(&self, conn: &Conn, room: &str) -> LeaveLocal {
        let mut rooms = write!(self.rooms);
        let none = LeaveLocal {
            was_member: false,
            user_last: false,
            room_last: false,
        };
        let Some(entry) = rooms.get_mut(room) else {
            return none;
        };
        if entry.conns.remove(&conn.id).is_none() {
            return none;
        }
        let mut user_last = false;
        if let Some(n) = entry.users.get_mut(&conn.user) {
            *n -= 1;
            if *n == 0 {
                entry.users.remove(&conn.user);
                user_last = true;
            }
        }
        let room_last = entry.conns.is_empty();
        if room_last {
            rooms.remove(room);
        }
        LeaveLocal {
            was_member: true,
            user_last,
            room_last,
        }
    }

    /// Whether the connection is in the room.
    pub fn is_member(&self, conn: ConnId, room: &str) -> bool {
        read!(self.rooms)
            .get(room)
            .is_some_and(|r| r.conns.contains_key(&conn))
    }

    /// Users with a connection in the room on this node.
    pub fn room_users(&self, room: &str) -> Vec<String> {
        read!(self.rooms)
            .get(room)
            .map(|r| r.users.keys().map(|u| u.to_string()).collect())
            .unwrap_or_default()
    }

    /// Rooms with a member on this node.
    pub fn room_names(&self) -> Vec<String> {
        read!(self.rooms).keys().map(|r| r.to_string()).collect()
    }

    /// Connections of a user on this node.
    pub fn user_connections(&self, user: &str) -> usize {
        read!(self.users).get(user).map_or(0, Vec::len)
    }

    /// Users with a connection here and their connection counts.
    pub fn users(&self) -> Vec<(String, usize)> {
        read!(self.users)
            .iter()
            .map(|(u, c)| (u.to_string(), c.len()))
            .collect()
    }

    /// Pushes to every connection of a user; returns how many were queued.
    pub fn to_user(&self, user: &str, delivery: &Arc<Delivery>) -> usize {
        let conns = read!(self.users).get(user).cloned().unwrap_or_default();
        conns
            .iter()
            .filter(|c| c.push(delivery) == Pushed::Queued)
            .count()
    }

    /// Pushes to every connection in a room except `except`; returns how many were queued.
    pub fn to_room(&self, room: &str, delivery: &Arc<Delivery>, except: Option<ConnId>) -> usize {
        let rooms = read!(self.rooms);
        let Some(entry) = rooms.get(room) else {
            return 0;
        };
        entry
            .conns
            .values()
            .filter(|c| Some(c.id) != except && c.push(delivery) == Pushed::Queued)
            .count()
    }

    /// Pushes to every connection; returns how many were queued.
    pub fn to_all(&self, delivery: &Arc<Delivery>) -> usize {
        read!(self.conns)
            .values()
            .filter(|c| c.push(delivery) == Pushed::Queued)
            .count()
    }

    /// Asks every connection of a user to close; returns how many.
    pub fn kick_user(&self, user: &str, code: CloseCode) -> usize {
        let conns = read!(self.users).get(user).cloned().unwrap_or_default();
        conns.iter().filter(|c| c.kick(code)).count()
    }

    /// Every connection, for the drain.
    pub fn all(&self) -> Vec<Arc<Conn>> {
        read!(self.conns).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_leave_track_users_and_rooms() {
        let hub = Hub::new();
        let a1 = Conn::new(1, "a".into(), 4);
        let a2 = Conn::new(2, "a".into(), 4);
        assert!(hub.add(&a1));
        assert!(!hub.add(&a2));
        let j = hub.join(&a1, "r");
        assert!(j.new && j.user_first && j.room_first);
        let j = hub.join(&a2, "r");
        assert!(j.new && !j.user_first && !j.room_first);
        assert!(!hub.join(&a2, "r").new);
        assert_eq!(hub.room_users("r"), vec!["a".to_string()]);
        let l = hub.leave(&a1, "r");
        assert!(l.was_member && !l.user_last && !l.room_last);
        let l = hub.leave(&a2, "r");
        assert!(l.was_member && l.user_last && l.room_last);
        assert_eq!(hub.room_count(), 0);
        assert!(!hub.remove(&a1));
        assert!(hub.remove(&a2));
        assert!(hub.is_empty());
    }

    #[test]
    fn a_full_outbox_kicks_with_1013_once() {
        let c = Conn::new(1, "u".into(), 2);
        let d = Delivery::control(ServerFrame::Pong { r#ref: None });
        assert_eq!(c.push(&d), Pushed::Queued);
        assert_eq!(c.push(&d), Pushed::Queued);
        assert_eq!(c.push(&d), Pushed::SlowConsumer);
        assert_eq!(c.kicked(), Some(CloseCode::TryAgainLater));
        assert_eq!(c.push(&d), Pushed::Closed);
        assert!(!c.kick(CloseCode::Restart), "first close code wins");
        let mut out = Vec::new();
        assert!(c.take(&mut out, 1), "one frame left");
        assert!(!c.take(&mut out, 10));
        assert_eq!(out.len(), 2);
    }
}

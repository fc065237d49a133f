//! Who is connected to this node: connections, their users, and room
//! membership (the registry), plus each connection's outbox and the encoding
//! of what goes into it.
//!
//! - this file: [`Hub`], the local registry; fan-out to a user, a room or
//!   everyone pushes one shared [`Outgoing`] into each connection's outbox;
//! - [`outbox`]: [`Conn`], a connection's bounded outbox and close request
//!   (full outbox: the connection is closed with 1013, nothing waits);
//! - [`encoding`]: [`Outgoing`], a frame encoded at most once per codec
//!   (the protocol crate's [`wsgate_protocol::EncodedFrame`]) and shared as
//!   bytes by every socket.
//!
//! The hub is local and synchronous and knows nothing of Redis or other
//! nodes: the [`crate::node::Node`] decides what goes to the cluster.
//!
//! Each room remembers the position of the last room message it fanned out
//! on this node: a message at or below it (same epoch) is a repeat and is
//! dropped, and after a bus outage the node catches the room up from there
//! ([`Hub::room_positions`]).

pub mod encoding;
pub mod outbox;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use wsgate_protocol::{CloseCode, Position, ServerFrame};

pub use encoding::{encode, Outgoing};
pub use outbox::{Conn, ConnId, Pushed, Wake};

#[derive(Default)]
struct RoomLocal {
    conns: HashMap<ConnId, Arc<Conn>>,
    users: HashMap<Arc<str>, u32>,
    /// The last room message fanned out here (or the position a join
    /// started from): repeats at or below it are dropped.
    last: Mutex<Option<Position>>,
}

impl RoomLocal {
    fn lock_last(&self) -> std::sync::MutexGuard<'_, Option<Position>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// For a room message with a position: false when it is a repeat on
    /// this node, else true (and it becomes the room's last).
    fn advance(&self, frame: &Outgoing) -> bool {
        let ServerFrame::Message(m) = frame.frame() else {
            return true;
        };
        let (Some(offset), Some(epoch)) = (m.offset, &m.epoch) else {
            return true;
        };
        let mut last = self.lock_last();
        if let Some(p) = &*last {
            if p.epoch == *epoch && offset <= p.offset {
                return false;
            }
        }
        *last = Some(Position {
            epoch: epoch.clone(),
            offset,
        });
        true
    }
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
        // Most users have one connection: room for exactly one (a `Vec`'s
        // first push would take four), grown as usual from there.
        let list = users
            .entry(conn.user.clone())
            .or_insert_with(|| Vec::with_capacity(1));
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

    /// Sets a room's position when it has none yet (a join read it).
    pub fn seed_room_position(&self, room: &str, position: &Position) {
        if let Some(entry) = read!(self.rooms).get(room) {
            let mut last = entry.lock_last();
            if last.is_none() {
                *last = Some(position.clone());
            }
        }
    }

    /// Rooms with a member here, with the position of their last message
    /// fanned out here (when known).
    pub fn room_positions(&self) -> Vec<(String, Position)> {
        read!(self.rooms)
            .iter()
            .filter_map(|(r, e)| e.lock_last().clone().map(|p| (r.to_string(), p)))
            .collect()
    }

    /// Whether a room has a member connection on this node.
    pub fn has_room(&self, room: &str) -> bool {
        read!(self.rooms).contains_key(room)
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
    pub fn to_user(&self, user: &str, frame: &Arc<Outgoing>) -> usize {
        let conns = read!(self.users).get(user).cloned().unwrap_or_default();
        conns
            .iter()
            .filter(|c| c.push(frame) == Pushed::Queued)
            .count()
    }

    /// Pushes to every connection in a room except `except`; returns how many were queued.
    /// A room message at or below the room's last position here is a
    /// repeat: it goes to nobody.
    pub fn to_room(&self, room: &str, frame: &Arc<Outgoing>, except: Option<ConnId>) -> usize {
        let rooms = read!(self.rooms);
        let Some(entry) = rooms.get(room) else {
            return 0;
        };
        if !entry.advance(frame) {
            return 0;
        }
        entry
            .conns
            .values()
            .filter(|c| Some(c.id) != except && c.push_room(room, frame) == Pushed::Queued)
            .count()
    }

    /// Pushes to every connection; returns how many were queued.
    pub fn to_all(&self, frame: &Arc<Outgoing>) -> usize {
        read!(self.conns)
            .values()
            .filter(|c| c.push(frame) == Pushed::Queued)
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
    use wsgate_protocol::ServerFrame;

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

    fn room_message(offset: u64, epoch: &str) -> Arc<Outgoing> {
        Outgoing::message(
            ServerFrame::Message(wsgate_protocol::MessageFrame {
                id: format!("m{offset}"),
                kind: wsgate_protocol::Kind::Room,
                from: "a".into(),
                to: None,
                room: Some("r".into()),
                content: serde_json::Value::Null,
                time: 0,
                replay: false,
                offset: Some(offset),
                epoch: Some(epoch.into()),
            }),
            wsgate_protocol::Kind::Room,
            0,
        )
    }

    fn offsets(c: &Conn) -> Vec<Option<u64>> {
        let mut out = Vec::new();
        c.take(&mut out, 100);
        out.iter()
            .map(|d| match d.frame() {
                ServerFrame::Message(m) => m.offset,
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_gate_holds_room_frames_and_drops_the_replayed_ones() {
        let hub = Hub::new();
        let c = Conn::new(1, "u".into(), 8);
        hub.add(&c);
        c.hold_room("r");
        hub.join(&c, "r");
        hub.join(&c, "other");
        let presence = Outgoing::control(ServerFrame::Pong { r#ref: None });
        for d in [
            room_message(4, "e"),
            room_message(5, "e"),
            presence,
            room_message(6, "e"),
        ] {
            hub.to_room("r", &d, None);
        }
        hub.to_room("other", &room_message(9, "e"), None);
        assert_eq!(
            offsets(&c),
            [Some(9)],
            "only the other room's frame is queued"
        );
        let upto = wsgate_protocol::Position {
            epoch: "e".into(),
            offset: 5,
        };
        assert_eq!(c.release_room("r", Some(&upto)), Pushed::Queued);
        assert_eq!(offsets(&c), [None, Some(6)], "4 and 5 were replayed");
        hub.to_room("r", &room_message(7, "e"), None);
        assert_eq!(offsets(&c), [Some(7)], "released: live again");

        // Another epoch's messages are never taken for replayed ones.
        c.hold_room("r");
        hub.to_room("r", &room_message(1, "new"), None);
        c.release_room("r", Some(&upto));
        assert_eq!(offsets(&c), [Some(1)]);
        // A failed join drops what was held.
        c.hold_room("r");
        hub.to_room("r", &room_message(2, "new"), None);
        c.release_room("r", None);
        assert!(offsets(&c).is_empty());
    }
}

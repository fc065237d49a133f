//! [`RoomPositions`]: where a client is in each room's history, so it can
//! re-join with `since` after a reconnect and drop repeats by offset
//! (contract 5.4; `docs/protocol.md`, "Room history and recovery").

use std::collections::HashMap;

use serde_json::{json, Value};
use wsgate_protocol::{Kind, MessageFrame, Position, Reply};

/// The `{epoch, offset}` of the last room message handled, per room.
///
/// Feed it every `join` reply ([`RoomPositions::joined`]) and every room
/// message ([`RoomPositions::observe`], which also says whether the message
/// is new); after a reconnect, send [`RoomPositions::rejoin_frames`]. It
/// holds one entry per joined room (at most the server's `--max-rooms`).
#[derive(Debug, Default, Clone)]
pub struct RoomPositions {
    rooms: HashMap<String, Position>,
}

impl RoomPositions {
    pub fn new() -> RoomPositions {
        RoomPositions::default()
    }

    /// A `join` reply for `room`. After `recovered: true` the position stays
    /// where it was: the replay that follows moves it, message by message,
    /// so a connection lost mid-replay re-joins from what it really got.
    /// Otherwise (a first join, or `recovered: false`) the room's position
    /// in the reply is where the client now is.
    pub fn joined(&mut self, room: &str, reply: &Reply) {
        let (Some(epoch), Some(offset)) = (&reply.epoch, reply.offset) else {
            return;
        };
        if reply.recovered == Some(true) && self.rooms.contains_key(room) {
            return;
        }
        self.rooms.insert(
            room.to_owned(),
            Position {
                epoch: epoch.clone(),
                offset,
            },
        );
    }

    /// A room message: true when it is new (and the position moves to it),
    /// false for a repeat (same epoch, offset not above the position), which
    /// the caller drops. A message of another epoch means the room's history
    /// was reset: its position is taken as is. Other messages are always new.
    pub fn observe(&mut self, m: &MessageFrame) -> bool {
        let (Kind::Room, Some(room), Some(offset), Some(epoch)) =
            (m.kind, &m.room, m.offset, &m.epoch)
        else {
            return true;
        };
        match self.rooms.get_mut(room) {
            Some(p) if p.epoch == *epoch && offset <= p.offset => false,
            Some(p) => {
                p.epoch.clone_from(epoch);
                p.offset = offset;
                true
            }
            None => {
                self.rooms.insert(
                    room.clone(),
                    Position {
                        epoch: epoch.clone(),
                        offset,
                    },
                );
                true
            }
        }
    }

    /// The position in `room`, if known.
    pub fn get(&self, room: &str) -> Option<&Position> {
        self.rooms.get(room)
    }

    /// Forgets a room the client left.
    pub fn left(&mut self, room: &str) {
        self.rooms.remove(room);
    }

    /// A `join` with `since` for every known room, to send after a reconnect.
    pub fn rejoin_frames(&self) -> Vec<Value> {
        let mut rooms: Vec<_> = self.rooms.iter().collect();
        rooms.sort_by(|a, b| a.0.cmp(b.0));
        rooms
            .into_iter()
            .map(|(room, p)| {
                json!({"type": "join", "room": room, "since": {"epoch": p.epoch, "offset": p.offset}})
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(room: &str, epoch: &str, offset: u64) -> MessageFrame {
        MessageFrame {
            id: format!("{room}-{offset}"),
            kind: Kind::Room,
            from: "a".into(),
            to: None,
            room: Some(room.into()),
            content: Value::Null,
            time: 0,
            replay: false,
            offset: Some(offset),
            epoch: Some(epoch.into()),
        }
    }

    fn reply(epoch: &str, offset: u64, recovered: Option<bool>) -> Reply {
        Reply {
            epoch: Some(epoch.into()),
            offset: Some(offset),
            recovered,
            ..Reply::ok(None)
        }
    }

    #[test]
    fn tracks_positions_drops_repeats_and_rejoins() {
        let mut p = RoomPositions::new();
        p.joined("lobby", &reply("e", 0, None));
        assert!(p.observe(&message("lobby", "e", 1)));
        assert!(p.observe(&message("lobby", "e", 2)));
        assert!(!p.observe(&message("lobby", "e", 2)), "a repeat");
        assert!(!p.observe(&message("lobby", "e", 1)));
        assert_eq!(p.get("lobby").map(|x| x.offset), Some(2));
        // A recovered join keeps the position until the replay moves it.
        p.joined("lobby", &reply("e", 9, Some(true)));
        assert_eq!(p.get("lobby").map(|x| x.offset), Some(2));
        assert!(p.observe(&message("lobby", "e", 3)));
        // Not recovered: the reply's position is where the client is.
        p.joined("lobby", &reply("e", 9, Some(false)));
        assert_eq!(p.get("lobby").map(|x| x.offset), Some(9));
        // A reset history: the new epoch is taken, offsets start again.
        assert!(p.observe(&message("lobby", "f", 1)));
        assert_eq!(p.get("lobby").map(|x| x.epoch.as_str()), Some("f"));
        p.joined("other", &reply("o", 4, None));
        assert_eq!(
            p.rejoin_frames(),
            [
                json!({"type":"join","room":"lobby","since":{"epoch":"f","offset":1}}),
                json!({"type":"join","room":"other","since":{"epoch":"o","offset":4}}),
            ]
        );
        p.left("other");
        assert_eq!(p.rejoin_frames().len(), 1);
        let mut direct = message("x", "e", 1);
        direct.kind = Kind::Direct;
        assert!(
            p.observe(&direct) && p.observe(&direct),
            "not a room message"
        );
    }
}

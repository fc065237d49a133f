//! Event types, the event JSON, and the batch body.
//!
//! An event is encoded once, when it is queued (by a Redis script, or by
//! [`Event::encode`] here), and travels as that JSON text: the stream entry,
//! the delivery worker and the POST body all carry the same bytes. The
//! worker only parses the [`Head`] it needs (id, type, time, user).

use serde::{Deserialize, Serialize};
use wsgate_protocol::{MessageFrame, ServerFrame};

pub use crate::config::webhooks::{EventSet, EventType};

/// What an event is about.
pub enum Subject<'a> {
    User(&'a str),
    Room(&'a str),
    Member { room: &'a str, user: &'a str },
    Message(&'a MessageFrame),
}

#[derive(Serialize)]
struct Body<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<ServerFrame>,
}

/// Builds event JSON in Rust (standalone mode, and message events in both
/// modes; the Redis scripts build the transition events the same way).
pub struct Event;

impl Event {
    /// The event's JSON text.
    pub fn encode(id: &str, kind: EventType, time: u64, subject: Subject<'_>) -> String {
        let (user, room, message) = match subject {
            Subject::User(u) => (Some(u), None, None),
            Subject::Room(r) => (None, Some(r), None),
            Subject::Member { room, user } => (Some(user), Some(room), None),
            Subject::Message(m) => (None, None, Some(ServerFrame::Message(m.clone()))),
        };
        let body = Body {
            id,
            kind: kind.as_str(),
            time,
            user,
            room,
            message,
        };
        // A struct of strings, numbers and a frame that is sent to clients
        // as JSON every day: encoding cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// The part of an event the delivery worker reads.
#[derive(Debug, Deserialize)]
pub struct Head {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub time: u64,
    #[serde(default)]
    pub user: Option<String>,
}

impl Head {
    pub fn parse(json: &str) -> Option<Head> {
        serde_json::from_str(json).ok()
    }
}

/// The POST body: `{"id":BATCH_ID,"time":MS,"events":[...]}`, the events
/// pasted in as they were encoded.
pub fn batch_body<'a>(id: &str, time: u64, events: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"id\":\"");
    out.push_str(id);
    out.push_str("\",\"time\":");
    out.push_str(&time.to_string());
    out.push_str(",\"events\":[");
    for (i, e) in events.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e);
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_valid_json_around_the_events() {
        let e = Event::encode("e1", EventType::UserOnline, 5, Subject::User("alice"));
        let body = batch_body("b1", 7, [e.as_str(), e.as_str()].into_iter());
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["id"], "b1");
        assert_eq!(v["events"][1]["user"], "alice");
        assert_eq!(v["events"][0]["type"], "user.online");
        let head = Head::parse(&e).unwrap();
        assert_eq!((head.id.as_str(), head.time), ("e1", 5));
    }
}

use std::sync::Mutex;

use serde_json::json;
use wsgate_protocol::bus::Route;
use wsgate_protocol::Kind;

use super::*;

/// Records what the history fans out.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Envelope)>>);

impl RoomFanout for Recorder {
    fn fan_out(&self, room: &str, envelope: &Envelope) {
        self.0
            .lock()
            .unwrap()
            .push((room.to_owned(), envelope.clone()));
    }
}

impl Recorder {
    fn offsets(&self) -> Vec<(String, u64)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(room, env)| match &env.event {
                BusEvent::Frame {
                    frame: ServerFrame::Message(message),
                    ..
                } => {
                    assert_eq!(message.room.as_deref(), Some(room.as_str()));
                    assert_eq!(env.route, Route::Room(room.clone()));
                    (room.clone(), message.offset.unwrap())
                }
                other => panic!("fanned out {other:?}"),
            })
            .collect()
    }
}

const TTL: Duration = Duration::from_secs(300);

/// Time for the history's `*_at` methods: tests move it by hand.
struct Clock(std::cell::Cell<Instant>);

impl Clock {
    fn new() -> Clock {
        Clock(std::cell::Cell::new(Instant::now()))
    }

    fn now(&self) -> Instant {
        self.0.get()
    }

    fn advance(&self, by: Duration) {
        self.0.set(self.0.get() + by);
    }
}

fn history(size: usize, budget: usize) -> (MemoryHistory, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    (MemoryHistory::new(size, TTL, budget, rec.clone()), rec)
}

fn envelope(room: &str, text: &str) -> Envelope {
    Envelope {
        origin: "n1".into(),
        route: Route::Room(room.into()),
        event: BusEvent::Frame {
            frame: ServerFrame::Message(MessageFrame {
                id: format!("id-{text}"),
                kind: Kind::Room,
                from: "alice".into(),
                to: None,
                room: Some(room.into()),
                content: json!({ "text": text }),
                time: 1,
                replay: false,
                offset: None,
                epoch: None,
            }),
            accepted_ms: Some(1),
        },
        sent_ms: None,
    }
}

fn offsets(page: &Page) -> Vec<u64> {
    page.messages.iter().map(|m| m.offset.unwrap()).collect()
}

#[test]
fn offsets_are_contiguous_and_pages_read_after_an_offset() {
    let t = Clock::new();
    let (h, rec) = history(100, usize::MAX);
    let before = h.read_at("r", 0, 10, t.now());
    assert_eq!(before.position.offset, 0);
    assert!(before.messages.is_empty());
    for i in 1..=5u64 {
        let pos = h
            .publish_at("r", &envelope("r", &i.to_string()), t.now())
            .unwrap();
        assert_eq!(pos.offset, i);
        assert_eq!(
            pos.epoch, before.position.epoch,
            "the epoch the first read started"
        );
    }
    h.publish_at("other", &envelope("other", "x"), t.now())
        .unwrap();
    assert_eq!(
        rec.offsets(),
        [1, 2, 3, 4, 5]
            .map(|o| ("r".to_string(), o))
            .into_iter()
            .chain([("other".to_string(), 1)])
            .collect::<Vec<_>>()
    );
    let page = h.read_at("r", 1, 2, t.now());
    assert_eq!(page.position.offset, 5);
    assert_eq!(offsets(&page), [2, 3]);
    let m = &page.messages[0];
    assert_eq!(m.epoch.as_deref(), Some(before.position.epoch.as_str()));
    assert_eq!(
        (m.id.as_str(), m.content.clone()),
        ("id-2", json!({"text": "2"}))
    );
    assert!(!m.replay);
    assert_eq!(offsets(&h.read_at("r", 3, 100, t.now())), [4, 5]);
    assert!(h.read_at("r", 5, 100, t.now()).messages.is_empty());
    assert!(h.read_at("r", 99, 100, t.now()).messages.is_empty());
}

#[test]
fn keeps_the_last_history_size_messages_and_caps_a_page() {
    let t = Clock::new();
    let (h, _) = history(3, usize::MAX);
    for i in 0..7 {
        h.publish_at("r", &envelope("r", &i.to_string()), t.now())
            .unwrap();
    }
    let page = h.read_at("r", 0, 100, t.now());
    assert_eq!(page.position.offset, 7);
    assert_eq!(offsets(&page), [5, 6, 7]);

    let (big, _) = history(500, usize::MAX);
    for i in 0..(PAGE_MAX + 20) {
        big.publish_at("r", &envelope("r", &i.to_string()), t.now())
            .unwrap();
    }
    let page = big.read_at("r", 0, usize::MAX, t.now());
    assert_eq!(page.messages.len(), PAGE_MAX);
    assert_eq!(page.messages[0].offset, Some(1));
}

#[test]
fn history_size_zero_still_assigns_offsets() {
    let t = Clock::new();
    let (h, rec) = history(0, usize::MAX);
    for _ in 0..3 {
        h.publish_at("r", &envelope("r", "x"), t.now()).unwrap();
    }
    let page = h.read_at("r", 0, 100, t.now());
    assert_eq!(page.position.offset, 3);
    assert!(page.messages.is_empty());
    assert_eq!(rec.offsets().len(), 3);
}

#[test]
fn expires_history_ttl_after_the_last_message() {
    let t = Clock::new();
    let (h, _) = history(10, usize::MAX);
    let first = h.publish_at("r", &envelope("r", "a"), t.now()).unwrap();
    t.advance(TTL - Duration::from_secs(1));
    let second = h.publish_at("r", &envelope("r", "b"), t.now()).unwrap();
    assert_eq!(
        (second.epoch.as_str(), second.offset),
        (first.epoch.as_str(), 2)
    );
    t.advance(TTL - Duration::from_secs(1));
    let page = h.read_at("r", 0, 10, t.now());
    assert_eq!(
        page.position, second,
        "a read does not renew, and is within the ttl"
    );
    t.advance(Duration::from_secs(2));
    let page = h.read_at("r", 0, 10, t.now());
    assert_ne!(page.position.epoch, first.epoch, "expired: a new epoch");
    assert_eq!(page.position.offset, 0);
    assert!(page.messages.is_empty());
    let next = h.publish_at("r", &envelope("r", "c"), t.now()).unwrap();
    assert_eq!(
        (next.epoch.as_str(), next.offset),
        (page.position.epoch.as_str(), 1)
    );
}

#[test]
fn the_sweeper_frees_expired_rooms() {
    let t = Clock::new();
    let (h, _) = history(10, usize::MAX);
    for room in ["a", "b", "c"] {
        h.publish_at(room, &envelope(room, "x"), t.now()).unwrap();
    }
    assert!(h.bytes() > 0);
    t.advance(TTL / 2);
    h.publish_at("c", &envelope("c", "y"), t.now()).unwrap();
    let c_bytes = {
        let rooms = h.lock();
        let c = &rooms.map["c"];
        ROOM_OVERHEAD + 1 + c.kept.iter().map(|(_, b)| b).sum::<usize>()
    };
    t.advance(TTL / 2 + Duration::from_secs(31));
    h.sweep_at(t.now());
    assert_eq!(h.bytes(), c_bytes, "a and b swept, c kept");
    t.advance(TTL);
    h.sweep_at(t.now());
    assert_eq!(h.bytes(), 0);
}

#[test]
fn the_budget_evicts_the_coldest_room_first() {
    let t = Clock::new();
    let one = message_bytes(match &envelope("a", "0").event {
        BusEvent::Frame {
            frame: ServerFrame::Message(message),
            ..
        } => message,
        _ => unreachable!(),
    });
    let budget = 2 * (ROOM_OVERHEAD + 1) + 6 * one;
    let (h, _) = history(100, budget);
    for i in 0..4 {
        h.publish_at("a", &envelope("a", &i.to_string()), t.now())
            .unwrap();
    }
    let a_epoch = h.read_at("a", 0, 1, t.now()).position.epoch;
    for i in 0..4 {
        h.publish_at("b", &envelope("b", &i.to_string()), t.now())
            .unwrap();
    }
    assert!(h.bytes() <= budget);
    let a = h.read_at("a", 0, 100, t.now());
    assert_eq!(offsets(&a), [3, 4], "a lost its oldest two");
    assert_eq!(a.position.epoch, a_epoch, "and kept its epoch");
    assert_eq!(offsets(&h.read_at("b", 0, 100, t.now())), [1, 2, 3, 4]);
    for i in 4..8 {
        h.publish_at("b", &envelope("b", &i.to_string()), t.now())
            .unwrap();
    }
    assert!(h.bytes() <= budget);
    let a = h.read_at("a", 0, 100, t.now());
    assert_ne!(a.position.epoch, a_epoch, "a was forgotten");
    assert_eq!(a.position.offset, 0);
    // One room alone over the budget keeps its newest message.
    let (tiny, _) = history(100, 1);
    for i in 0..3 {
        tiny.publish_at("r", &envelope("r", &i.to_string()), t.now())
            .unwrap();
    }
    assert_eq!(offsets(&tiny.read_at("r", 0, 100, t.now())), [3]);
}

/// On tokio's paused clock (#10): the sweeper task (every ttl / 4) forgets a
/// room `history-ttl` after its last message, and a publish renews it.
#[tokio::test(start_paused = true)]
async fn the_sweeper_forgets_a_room_ttl_after_its_last_message() {
    let (h, _) = history(10, usize::MAX);
    h.start();
    h.publish("r", &envelope("r", "1")).await.unwrap();
    tokio::time::sleep(TTL / 2).await;
    h.publish("r", &envelope("r", "2")).await.unwrap();
    let epoch = h.read("r", 0, 10).await.unwrap().position.epoch;
    // 0.9 TTL after the last message: still kept.
    tokio::time::sleep(TTL * 9 / 10).await;
    assert_eq!(lock(&h.rooms).map.len(), 1);
    // Past TTL plus a sweep period (TTL / 4): the sweeper forgot it, no read needed.
    tokio::time::sleep(TTL * 4 / 10).await;
    assert!(
        lock(&h.rooms).map.is_empty(),
        "the sweeper dropped the room"
    );
    let after = h.read("r", 0, 10).await.unwrap();
    assert!(after.messages.is_empty());
    assert_ne!(
        after.position.epoch, epoch,
        "a forgotten history starts a new epoch"
    );
}

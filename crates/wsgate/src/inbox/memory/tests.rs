use std::sync::Arc;
use std::time::Duration;

use wsgate_protocol::{Kind, MessageFrame};

use super::MemoryInbox;
use crate::inbox::{Inbox, InboxError, InboxLimits, Overflow, Refusal, Sender, Stored};
use crate::metrics::Metrics;

fn limits(max: usize, max_bytes: usize, per_sender: usize, overflow: Overflow) -> InboxLimits {
    InboxLimits {
        max,
        max_bytes,
        max_per_sender: per_sender,
        overflow,
        ttl: Duration::from_secs(60),
    }
}

fn inbox(l: InboxLimits) -> MemoryInbox {
    MemoryInbox::new(l, Arc::new(Metrics::new().unwrap()))
}

fn msg(id: &str, from: &str) -> MessageFrame {
    MessageFrame {
        id: id.into(),
        kind: Kind::Direct,
        from: from.into(),
        to: Some("u".into()),
        room: None,
        content: serde_json::json!("x"),
        time: 0,
        replay: false,
        offset: None,
        epoch: None,
    }
}

async fn ids(i: &MemoryInbox) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = i.page("u", after).await.unwrap();
        out.extend(page.messages.into_iter().map(|m| m.id));
        match page.next {
            Some(n) => after = n,
            None => return out,
        }
    }
}

#[tokio::test]
async fn quotas_refuse_and_keep_what_was_stored() {
    let i = inbox(limits(3, 1 << 20, 2, Overflow::Reject));
    let a = Sender::User("a");
    assert_eq!(
        i.store("u", a, &msg("1", "a")).await.unwrap(),
        Stored::New { trimmed: 0 }
    );
    i.store("u", a, &msg("2", "a")).await.unwrap();
    assert!(matches!(
        i.store("u", a, &msg("3", "a")).await,
        Err(InboxError::Refused(Refusal::SenderShare))
    ));
    i.store("u", Sender::User("b"), &msg("3", "b"))
        .await
        .unwrap();
    assert!(matches!(
        i.store("u", Sender::Api, &msg("4", "server")).await,
        Err(InboxError::Refused(Refusal::Full))
    ));
    assert_eq!(ids(&i).await, ["1", "2", "3"]);
    // An ack frees the sender's share.
    i.ack("u", &["1".into()]).await.unwrap();
    i.store("u", a, &msg("5", "a")).await.unwrap();
    assert_eq!(ids(&i).await, ["2", "3", "5"]);
}

#[tokio::test]
async fn ids_are_idempotent_per_sender() {
    let i = inbox(limits(10, 1 << 20, 10, Overflow::Reject));
    i.store("u", Sender::User("a"), &msg("1", "a"))
        .await
        .unwrap();
    assert_eq!(
        i.store("u", Sender::User("a"), &msg("1", "a"))
            .await
            .unwrap(),
        Stored::Duplicate
    );
    assert!(matches!(
        i.store("u", Sender::User("b"), &msg("1", "b")).await,
        Err(InboxError::IdTaken)
    ));
    assert_eq!(ids(&i).await, ["1"]);
    let acked = i.ack("u", &["1".into(), "nope".into()]).await.unwrap();
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0].from, "a");
    // Acked: the id may be used again.
    i.store("u", Sender::User("b"), &msg("1", "b"))
        .await
        .unwrap();
}

#[tokio::test]
async fn bytes_and_drop_oldest() {
    let one = crate::inbox::entry(Sender::User("a"), &msg("1", "a"))
        .unwrap()
        .len();
    let i = inbox(limits(100, one * 2, 100, Overflow::Reject));
    i.store("u", Sender::User("a"), &msg("1", "a"))
        .await
        .unwrap();
    i.store("u", Sender::User("a"), &msg("2", "a"))
        .await
        .unwrap();
    assert!(matches!(
        i.store("u", Sender::User("a"), &msg("3", "a")).await,
        Err(InboxError::Refused(Refusal::Bytes))
    ));
    let i = inbox(limits(2, 1 << 20, 100, Overflow::DropOldest));
    for n in ["1", "2", "3", "4"] {
        i.store("u", Sender::User("a"), &msg(n, "a")).await.unwrap();
    }
    assert_eq!(ids(&i).await, ["3", "4"]);
}

#[tokio::test]
async fn pages_follow_the_cursor_through_acks_and_compaction() {
    let i = inbox(limits(1000, 1 << 30, 1000, Overflow::Reject));
    for n in 0..300 {
        i.store("u", Sender::User("a"), &msg(&n.to_string(), "a"))
            .await
            .unwrap();
    }
    let first = i.page("u", 0).await.unwrap();
    assert_eq!(first.messages.len(), crate::inbox::PAGE_MESSAGES);
    let cursor = first.next.unwrap();
    // Ack everything but "0" (a stuck head) and the next page's messages survive.
    let acked: Vec<String> = (1..200).map(|n| n.to_string()).collect();
    i.ack("u", &acked).await.unwrap();
    for n in 300..600 {
        i.store("u", Sender::User("a"), &msg(&n.to_string(), "a"))
            .await
            .unwrap();
    }
    let rest = {
        let mut out = Vec::new();
        let mut after = cursor;
        loop {
            let p = i.page("u", after).await.unwrap();
            out.extend(p.messages.into_iter().map(|m| m.id));
            match p.next {
                Some(n) => after = n,
                None => break out,
            }
        }
    };
    let want: Vec<String> = (200..600).map(|n| n.to_string()).collect();
    assert_eq!(rest, want);
    let all = ids(&i).await;
    assert_eq!(all.len(), 401);
    assert_eq!(all[0], "0");
    let got = i
        .get("u", &["0".into(), "5".into(), "599".into()])
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["0", "599"]
    );
}

/// On tokio's paused clock (#10): the sweeper task (every ttl / 4) drops an
/// inbox `inbox-ttl` after its last store, counted as `expired`, without a
/// read; every store renews the expiry.
#[tokio::test(start_paused = true)]
async fn the_sweeper_expires_an_inbox_ttl_after_its_last_store() {
    let metrics = Arc::new(Metrics::new().unwrap());
    let i = MemoryInbox::new(limits(10, 1 << 20, 10, Overflow::Reject), metrics.clone());
    i.start();
    let a = Sender::User("a");
    i.store("u", a, &msg("1", "a")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(40)).await;
    // Renewed: it now expires 60 s after this store, at t = 100 s.
    i.store("u", a, &msg("2", "a")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert_eq!(metrics.inbox_dropped_expired.get(), 0, "t = 90 s: kept");
    assert_eq!(ids(&i).await, ["1", "2"]);
    // Past t = 100 s plus one sweep period (15 s): the sweeper dropped it
    // (counted before any read could).
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(metrics.inbox_dropped_expired.get(), 2, "t = 115 s: swept");
    assert!(i.lock().is_empty(), "nothing is held for the user");
    assert!(ids(&i).await.is_empty());
}

//! The receipts of a multi-id ack are published together, not one bus
//! round trip after another (issue #11 item 9): a broker that counts the
//! receipt publishes in flight at once sees all of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use wsgate_protocol::bus::{BusEvent, Envelope};
use wsgate_protocol::ServerFrame;

use super::testing::memory_node_with;
use crate::cluster::{Broker, BrokerError, BusSink, NodeInfo};
use crate::config::Config;
use crate::inbox::Sender;

/// Delegates to the memory broker; a receipt's publish yields a few times
/// before it completes, and the most receipts in flight at once is kept.
struct CountingBroker {
    inner: Arc<dyn Broker>,
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

#[async_trait]
impl Broker for CountingBroker {
    fn start(&self, sink: Weak<dyn BusSink>) {
        self.inner.start(sink)
    }
    async fn publish(&self, envelope: &Envelope) -> Result<usize, BrokerError> {
        let receipt = matches!(
            envelope.event,
            BusEvent::Frame {
                frame: ServerFrame::Receipt { .. },
                ..
            }
        );
        if receipt {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            // A round trip: other publishes may start meanwhile.
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        self.inner.publish(envelope).await
    }
    async fn user_connections(&self, user: &str, delta: i64) -> Result<(), BrokerError> {
        self.inner.user_connections(user, delta).await
    }
    async fn user_status(&self, user: &str) -> Result<u64, BrokerError> {
        self.inner.user_status(user).await
    }
    async fn room_member(&self, room: &str, user: &str, joined: bool) -> Result<bool, BrokerError> {
        self.inner.room_member(room, user, joined).await
    }
    async fn room_members(&self, room: &str) -> Result<Vec<String>, BrokerError> {
        self.inner.room_members(room).await
    }
    async fn room_size(&self, room: &str) -> Result<u64, BrokerError> {
        self.inner.room_size(room).await
    }
    async fn room_members_page(
        &self,
        room: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>), BrokerError> {
        self.inner.room_members_page(room, cursor, limit).await
    }
    async fn nodes(&self) -> Result<Vec<NodeInfo>, BrokerError> {
        self.inner.nodes().await
    }
    async fn room_interest(&self, room: &str, interested: bool) -> Result<(), BrokerError> {
        self.inner.room_interest(room, interested).await
    }
    fn set_local_connections(&self, n: u64) {
        self.inner.set_local_connections(n)
    }
    fn is_up(&self) -> bool {
        self.inner.is_up()
    }
    async fn shutdown(&self) {
        self.inner.shutdown().await
    }
}

#[tokio::test]
async fn the_receipts_of_one_ack_are_published_together() {
    let mut counting = None;
    let parts = memory_node_with(
        Config {
            allow_anonymous: true,
            ..Config::default()
        },
        |inner| {
            let broker = Arc::new(CountingBroker {
                inner,
                in_flight: AtomicUsize::new(0),
                most: AtomicUsize::new(0),
            });
            counting = Some(broker.clone());
            broker
        },
    );
    let counting = counting.expect("the broker was wrapped");
    let mut ids = Vec::new();
    for (n, from) in ["alice", "carol", "dave", "erin", "frank", "gus"]
        .iter()
        .enumerate()
    {
        let sent = parts
            .node
            .send_direct(Sender::User(from), from, "bob", serde_json::json!(n), None)
            .await
            .expect("stored");
        ids.push(sent.id);
    }
    parts.node.ack("bob", &ids).await.expect("acked");
    assert_eq!(
        counting.most.load(Ordering::SeqCst),
        ids.len(),
        "every receipt of the ack was in flight at once"
    );
    assert_eq!(counting.in_flight.load(Ordering::SeqCst), 0);
}

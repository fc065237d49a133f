//! In-memory cluster: the standalone default, and a shared bus for several
//! nodes in one process (tests).
//!
//! State mirrors what the Redis broker keeps in Redis: per user, per node
//! connection counts; per room, per user, the set of nodes with a member
//! connection; per room, the nodes interested in its traffic. Nodes on one
//! bus also share one inbox ([`MemoryBus::inbox`]), as nodes sharing a Redis
//! share its inbox lists: a message stored through one node is replayed and
//! acked through any other. They also share one room history
//! ([`MemoryBus::history`]), which publishes room messages to every
//! interested node of the bus, the publishing one included, through the
//! bus's [`RoomFanout`]. With webhooks on, they share one event queue
//! ([`MemoryBus::events`]): a transition is queued under the bus's lock at
//! the moment the count crosses zero.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use wsgate_protocol::bus::Envelope;

use super::{Broker, BrokerError, BusSink, NodeInfo, Route};
use crate::history::memory::{MemoryHistory, RoomFanout};
use crate::inbox::memory::MemoryInbox;
use crate::inbox::InboxLimits;
use crate::metrics::Metrics;
use crate::webhooks::memory::MemoryEvents;
use crate::webhooks::EventSet;

#[derive(Default)]
struct State {
    nodes: HashMap<String, (Weak<dyn BusSink>, NodeInfo)>,
    /// user → (node, connections): a short list per user, since most users
    /// are on one node (this map holds an entry for every connected user).
    users: HashMap<String, Vec<(Arc<str>, u64)>>,
    members: HashMap<String, HashMap<String, HashSet<String>>>,
    interest: HashMap<String, HashSet<String>>,
}

/// A bus shared by the nodes of one process.
#[derive(Default, Clone)]
pub struct MemoryBus {
    state: Arc<Mutex<State>>,
    inbox: Arc<OnceLock<Arc<MemoryInbox>>>,
    history: Arc<OnceLock<Arc<MemoryHistory>>>,
    events: Arc<OnceLock<Arc<MemoryEvents>>>,
}

/// Delivers sequenced room messages to the bus's interested nodes.
struct BusFanout(Arc<Mutex<State>>);

impl RoomFanout for BusFanout {
    fn fan_out(&self, room: &str, envelope: &Envelope) {
        let sinks: Vec<Weak<dyn BusSink>> = {
            let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
            state
                .interest
                .get(room)
                .map(|nodes| {
                    nodes
                        .iter()
                        .filter_map(|n| state.nodes.get(n).map(|(s, _)| s.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        for sink in sinks.iter().filter_map(Weak::upgrade) {
            sink.deliver(envelope.clone());
        }
    }
}

impl MemoryBus {
    pub fn new() -> MemoryBus {
        MemoryBus::default()
    }

    /// A broker for node `node_id` on this bus.
    pub fn broker(&self, node_id: &str) -> MemoryBroker {
        let started_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let info = NodeInfo {
            node: node_id.to_owned(),
            connections: 0,
            started_at,
        };
        MemoryBroker {
            bus: self.clone(),
            node: node_id.to_owned(),
            node_key: Arc::from(node_id),
            info,
        }
    }

    /// The inbox shared by every node on this bus. The first node to ask
    /// creates it with its limits and metrics (drops for `inbox-ttl` are
    /// counted there; trims are counted by the storing node).
    pub fn inbox(&self, limits: InboxLimits, metrics: Arc<Metrics>) -> Arc<MemoryInbox> {
        self.inbox
            .get_or_init(|| Arc::new(MemoryInbox::new(limits, metrics)))
            .clone()
    }

    /// The room history shared by every node on this bus; the first node to
    /// ask creates it with its settings.
    pub fn history(&self, size: usize, ttl: Duration, budget: usize) -> Arc<MemoryHistory> {
        self.history
            .get_or_init(|| {
                let fanout = Arc::new(BusFanout(self.state.clone()));
                Arc::new(MemoryHistory::new(size, ttl, budget, fanout))
            })
            .clone()
    }

    /// The webhook event queue shared by every node on this bus; the first
    /// node to ask creates it with its event types. Only a bus that was asked
    /// queues transitions.
    pub fn events(
        &self,
        types: EventSet,
        offline_delay: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<MemoryEvents> {
        self.events
            .get_or_init(|| Arc::new(MemoryEvents::new(types, offline_delay, metrics)))
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One node's handle on a [`MemoryBus`].
pub struct MemoryBroker {
    bus: MemoryBus,
    node: String,
    /// The node id, shared by this node's registry entries.
    node_key: Arc<str>,
    info: NodeInfo,
}

impl MemoryBroker {
    /// A standalone broker on a bus of its own.
    pub fn standalone(node_id: &str) -> MemoryBroker {
        MemoryBus::new().broker(node_id)
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn start(&self, sink: Weak<dyn BusSink>) {
        self.bus
            .lock()
            .nodes
            .insert(self.node.clone(), (sink, self.info.clone()));
    }

    async fn publish(&self, envelope: &Envelope) -> Result<usize, BrokerError> {
        let route = &envelope.route;
        let targets: Vec<Weak<dyn BusSink>> = {
            let state = self.bus.lock();
            let names: Vec<&str> = match route {
                Route::User(user) => state
                    .users
                    .get(user)
                    .map(|m| m.iter().map(|(n, _)| n.as_ref()).collect())
                    .unwrap_or_default(),
                Route::Room(room) => state
                    .interest
                    .get(room)
                    .map(|s| s.iter().map(String::as_str).collect())
                    .unwrap_or_default(),
                Route::Broadcast => state.nodes.keys().map(String::as_str).collect(),
            };
            names
                .into_iter()
                .filter(|n| *n != self.node)
                .filter_map(|n| state.nodes.get(n).map(|(s, _)| s.clone()))
                .collect()
        };
        let mut reached = 0;
        for sink in targets.iter().filter_map(Weak::upgrade) {
            sink.deliver(envelope.clone());
            reached += 1;
        }
        Ok(reached)
    }

    async fn user_connections(&self, user: &str, delta: i64) -> Result<(), BrokerError> {
        let mut state = self.bus.lock();
        // Room for one node: most users are on one (a `Vec`'s first push
        // would take four entries).
        let per_node = state
            .users
            .entry(user.to_owned())
            .or_insert_with(|| Vec::with_capacity(1));
        let i = match per_node.iter().position(|(n, _)| **n == *self.node) {
            Some(i) => i,
            None => {
                per_node.push((self.node_key.clone(), 0));
                per_node.len() - 1
            }
        };
        let was_online = per_node.iter().any(|(_, n)| *n > 0);
        let n = &mut per_node[i].1;
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            per_node.swap_remove(i);
        }
        let online = !per_node.is_empty();
        if !online {
            state.users.remove(user);
        }
        if was_online != online {
            if let Some(events) = self.bus.events.get() {
                events.user(user, online);
            }
        }
        Ok(())
    }

    async fn user_status(&self, user: &str) -> Result<u64, BrokerError> {
        Ok(self
            .bus
            .lock()
            .users
            .get(user)
            .map_or(0, |m| m.iter().map(|(_, n)| n).sum()))
    }

    async fn room_member(&self, room: &str, user: &str, joined: bool) -> Result<bool, BrokerError> {
        let mut state = self.bus.lock();
        let room_map = state.members.entry(room.to_owned()).or_default();
        // Empty user entries are removed below, so an empty map is an empty room.
        let room_was_empty = room_map.is_empty();
        let nodes = room_map.entry(user.to_owned()).or_default();
        let changed = if joined {
            let was_empty = nodes.is_empty();
            nodes.insert(self.node.clone());
            was_empty
        } else {
            nodes.remove(&self.node) && nodes.is_empty()
        };
        let mut room_is_empty = false;
        if nodes.is_empty() {
            room_map.remove(user);
            if room_map.is_empty() {
                state.members.remove(room);
                room_is_empty = true;
            }
        }
        if changed {
            if let Some(events) = self.bus.events.get() {
                let room_changed = if joined {
                    room_was_empty
                } else {
                    room_is_empty
                };
                events.member(room, user, joined, room_changed);
            }
        }
        Ok(changed)
    }

    async fn room_members(&self, room: &str) -> Result<Vec<String>, BrokerError> {
        let mut members: Vec<String> = self
            .bus
            .lock()
            .members
            .get(room)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        members.sort();
        Ok(members)
    }

    async fn room_size(&self, room: &str) -> Result<u64, BrokerError> {
        Ok(self
            .bus
            .lock()
            .members
            .get(room)
            .map_or(0, |m| m.len() as u64))
    }

    async fn room_members_page(
        &self,
        room: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>), BrokerError> {
        // In memory the cursor is the last user of the previous page (users
        // sort by name): a page costs a pass over the room, which is local.
        let mut after: Vec<String> = self
            .bus
            .lock()
            .members
            .get(room)
            .map(|m| {
                m.keys()
                    .filter(|u| cursor.is_none_or(|c| u.as_str() > c))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        after.sort();
        let more = after.len() > limit;
        after.truncate(limit);
        let next = if more { after.last().cloned() } else { None };
        Ok((after, next))
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, BrokerError> {
        let mut nodes: Vec<NodeInfo> = self
            .bus
            .lock()
            .nodes
            .values()
            .filter(|(sink, _)| sink.strong_count() > 0)
            .map(|(_, info)| info.clone())
            .collect();
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(nodes)
    }

    async fn room_interest(&self, room: &str, interested: bool) -> Result<(), BrokerError> {
        let mut state = self.bus.lock();
        if interested {
            state
                .interest
                .entry(room.to_owned())
                .or_default()
                .insert(self.node.clone());
        } else if let Some(set) = state.interest.get_mut(room) {
            set.remove(&self.node);
            if set.is_empty() {
                state.interest.remove(room);
            }
        }
        Ok(())
    }

    fn set_local_connections(&self, n: u64) {
        if let Some((_, info)) = self.bus.lock().nodes.get_mut(&self.node) {
            info.connections = n;
        }
    }

    fn is_up(&self) -> bool {
        true
    }

    async fn shutdown(&self) {
        let mut state = self.bus.lock();
        state.nodes.remove(&self.node);
    }
}

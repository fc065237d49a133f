//! A node on the in-memory bus for unit tests (the session's timers, the
//! drain): the parts `lib.rs` wires in standalone mode, without listeners
//! or webhooks.

use std::sync::Arc;
use std::time::Duration;

use super::Node;
use crate::auth::Authenticator;
use crate::cluster::memory::MemoryBus;
use crate::cluster::Broker;
use crate::config::Config;
use crate::hub::Hub;
use crate::inbox::InboxLimits;
use crate::metrics::Metrics;

/// The handles a test needs beside the node.
pub(crate) struct MemoryNode {
    pub(crate) node: Arc<Node>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) config: Arc<Config>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) auth: Arc<Authenticator>,
}

/// A memory node with `config` (history: 10 messages, 60 s, 1 MiB).
pub(crate) fn memory_node(config: Config) -> MemoryNode {
    memory_node_with(config, |broker| broker)
}

/// [`memory_node`] whose broker is `wrap`ped (to observe or delay what
/// the node asks of the bus).
pub(crate) fn memory_node_with(
    config: Config,
    wrap: impl FnOnce(Arc<dyn Broker>) -> Arc<dyn Broker>,
) -> MemoryNode {
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let auth = Arc::new(Authenticator::from_config(&config).expect("auth"));
    let bus = MemoryBus::new();
    let broker = wrap(Arc::new(bus.broker(&config.node_id)));
    let inbox = bus.inbox(InboxLimits::from_config(&config), metrics.clone());
    let history = bus.history(10, Duration::from_secs(60), 1 << 20);
    let config = Arc::new(config);
    let hub = Arc::new(Hub::new());
    let node = Node::new(
        config.clone(),
        metrics.clone(),
        hub.clone(),
        broker,
        inbox,
        history,
        None,
    );
    MemoryNode {
        node,
        hub,
        config,
        metrics,
        auth,
    }
}

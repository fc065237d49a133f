//! Cluster over Redis (being written).
use std::sync::Arc;

use crate::cluster::Broker;
use crate::config::{Config, ConfigError};
use crate::inbox::Inbox;
use crate::metrics::Metrics;

pub fn connect(
    url: &str,
    _config: &Config,
    _metrics: Arc<Metrics>,
) -> Result<(Arc<dyn Broker>, Arc<dyn Inbox>), ConfigError> {
    Err(ConfigError::Invalid {
        name: "redis-url",
        value: url.into(),
        reason: "cluster mode is not built yet".into(),
    })
}

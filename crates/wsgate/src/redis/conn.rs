//! The command connection: one multiplexed connection shared by every task,
//! made by a `deadpool-redis` pool (which re-creates it after a failure),
//! every call bounded by [`OP_TIMEOUT`]; and the client that opens the
//! dedicated pub/sub connection.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use redis::aio::{MultiplexedConnection, PubSub};

use super::keys::Keys;
use super::scripts::Scripts;
use crate::config::{Config, ConfigError};

/// Longest any Redis command may take before it counts as a failure.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Pooled command connections.
const POOL_SIZE: usize = 32;

/// Why a Redis call failed. Whether a write happened is unknown for every
/// variant but [`RedisError::Pool`]: callers answer `unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("no Redis connection")]
    Pool(#[source] deadpool_redis::PoolError),
    #[error("Redis connection failed")]
    Connection(#[source] redis::RedisError),
    #[error("Redis refused the command")]
    Command(#[source] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected Redis reply: {0}")]
    Reply(&'static str),
}

/// The Redis side of a node: connections, key names, scripts.
pub struct Redis {
    pool: Pool,
    shared: Mutex<Option<MultiplexedConnection>>,
    client: redis::Client,
    keys: Keys,
    scripts: Scripts,
}

impl Redis {
    /// Prepares the connections (nothing connects yet: a node starts, not
    /// ready, even while Redis is down).
    pub fn new(url: &str, config: &Config) -> Result<Arc<Redis>, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: "redis-url",
            value: url.to_owned(),
            reason,
        };
        let client = redis::Client::open(url).map_err(|e| invalid(e.to_string()))?;
        let mut pool_config = deadpool_redis::Config::from_url(url);
        pool_config.pool = Some(PoolConfig {
            max_size: POOL_SIZE,
            timeouts: Timeouts {
                wait: Some(OP_TIMEOUT),
                create: Some(OP_TIMEOUT),
                recycle: Some(OP_TIMEOUT),
            },
            ..PoolConfig::default()
        });
        let pool = pool_config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Arc::new(Redis {
            pool,
            shared: Mutex::new(None),
            client,
            keys: Keys::new(&config.redis_prefix),
            scripts: Scripts::new(),
        }))
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// The command connection: one multiplexed connection taken from the
    /// pool and shared by every task (commands pipeline on it, in order).
    /// Checking a connection out of the pool for each command would cost a
    /// `PING` round trip each time (deadpool's recycle check); the pool
    /// (re)creates the shared connection after a failure.
    pub async fn conn(&self) -> Result<MultiplexedConnection, RedisError> {
        if let Some(conn) = self.lock_shared().clone() {
            return Ok(conn);
        }
        let fresh = self.pool.get().await.map_err(RedisError::Pool)?;
        let conn = deadpool_redis::Connection::take(fresh);
        *self.lock_shared() = Some(conn.clone());
        Ok(conn)
    }

    fn lock_shared(&self) -> MutexGuard<'_, Option<MultiplexedConnection>> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a Redis future with the operation timeout. A failure of the
    /// connection drops the shared one, so the next command starts on a
    /// fresh connection; a command error (e.g. a script error) keeps it.
    pub async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        let err = match tokio::time::timeout(OP_TIMEOUT, fut).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if !(e.is_io_error() || e.is_connection_dropped() || e.is_timeout()) => {
                return Err(RedisError::Command(e));
            }
            Ok(Err(e)) => RedisError::Connection(e),
            Err(_) => RedisError::Timeout(OP_TIMEOUT),
        };
        *self.lock_shared() = None;
        Err(err)
    }

    /// Opens a dedicated pub/sub connection.
    pub async fn pubsub(&self) -> Result<PubSub, RedisError> {
        match tokio::time::timeout(OP_TIMEOUT, self.client.get_async_pubsub()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(RedisError::Connection(e)),
            Err(_) => Err(RedisError::Timeout(OP_TIMEOUT)),
        }
    }
}

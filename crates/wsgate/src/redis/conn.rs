//! The connections to Redis: one multiplexed command connection shared by
//! every task, every call bounded by [`OP_TIMEOUT`]; a dedicated connection
//! for stores that wait for replicas (`WAIT` blocks the connection it runs
//! on, so it never shares the main one); a bulk connection for inbox pages
//! and other large reads ([`Redis::bulk_conn`]), so a large reply never
//! queues the latency-critical commands (heartbeat, registry, publish) behind
//! it on the shared one; a new connection for each blocking read
//! ([`Redis::dedicated_conn`]: the webhook stream's `XREADGROUP BLOCK`); and
//! dedicated pub/sub connections for the broker's subscriber.
//!
//! Where they go depends on `--redis-mode` ([`Target`]): `single` connects to
//! the URL; `cluster` opens redis-rs's cluster client on the seed URLs (each
//! command routed to the shard of its key, see [`super::cluster`]), and
//! the subscriber opens one pub/sub connection per shard primary
//! ([`Redis::node_client`]); `sentinel` asks the Sentinels for the primary of
//! `--redis-sentinel-master` each time it (re)connects, with the URL's
//! credentials and TLS scheme, and checks the answer really is a primary
//! (`ROLE`). A command answered `READONLY` (a primary demoted by a failover)
//! or a broken connection drops the connection, so the next command asks
//! again; either also bumps [`Redis::primary_changes`], which makes the
//! subscriber reconnect its pub/sub connection too.
//!
//! Timeouts, all set here (documented in `docs/operations.md`):
//! - [`CONNECT_TIMEOUT`] bounds opening any connection (TCP, TLS, `AUTH`,
//!   `HELLO`), command and pub/sub, in every mode, and a Sentinel round
//!   (asking the Sentinels for the primary and checking its `ROLE`);
//! - [`OP_TIMEOUT`] bounds every command (through [`Redis::timed`]), and
//!   each pub/sub round trip (`SUBSCRIBE`, `UNSUBSCRIBE`, `PING`). redis-rs's
//!   own response timeout (500 ms by default) is turned off on every command
//!   connection, so this is the one limit: a reply after 1 s still counts,
//!   one after 2 s is a failure and the caller answers `unavailable`.
//!   Replica-confirmed stores get `--redis-wait-timeout` more ([`Redis::timed_for`]).
//!
//! Inside a Sentinel round redis-rs opens its own short-lived connections
//! to the Sentinels and to the candidate primary, with its defaults (1 s
//! connect, 500 ms reply per step); the whole round stays bounded by
//! [`CONNECT_TIMEOUT`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::PubSub;
use redis::cluster::ClusterClient;
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    ProtocolVersion, ServerErrorKind, TlsMode,
};
use tokio::sync::watch;

use super::cluster::{Conn, ShardMap};
use super::keys::Keys;
use super::scripts::Scripts;
use crate::config::{split_urls, Config, ConfigError, RedisMode};

/// Longest any Redis command may take before it counts as a failure (the
/// caller answers `unavailable`).
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest opening a Redis connection may take (TCP, TLS, `AUTH`, `HELLO`;
/// in sentinel mode, also asking the Sentinels for the primary).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest the cluster client may take to open a connection to one cluster
/// node. Shorter than [`CONNECT_TIMEOUT`]: while it recovers (a node died)
/// the client reconnects to its seeds one timeout after another, and the
/// commands queued meanwhile (the heartbeat among them) must still finish
/// within [`OP_TIMEOUT`] when a seed is frozen (test `rcluster_shard_down`).
const CLUSTER_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Why a Redis call failed. Whether a write happened is unknown for every
/// variant but [`RedisError::Pool`]: callers answer `unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("no Redis connection")]
    Connect(#[source] redis::RedisError),
    #[error("no writable Redis primary known")]
    NoPrimary(#[source] redis::RedisError),
    #[error("Redis connection failed")]
    Connection(#[source] redis::RedisError),
    #[error("Redis answered READONLY: the primary was demoted")]
    ReadOnly(#[source] redis::RedisError),
    #[error("{acked} of {wanted} replicas confirmed the write in time")]
    Replicas { acked: usize, wanted: usize },
    #[error("Redis refused the command")]
    Command(#[source] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected Redis reply: {0}")]
    Reply(&'static str),
}

/// Where the connections go.
enum Target {
    Single(redis::Client),
    /// A Redis Cluster, through its seed nodes (boxed: the client is large).
    Cluster(Box<ClusterTarget>),
    Sentinel {
        sentinel: tokio::sync::Mutex<Sentinel>,
        master: String,
        node: SentinelNodeConnectionInfo,
    },
}

/// A Redis Cluster: its client, and the first seed, whose settings
/// (credentials, TLS) the per-primary pub/sub connections take.
struct ClusterTarget {
    client: ClusterClient,
    seed: ConnectionInfo,
}

/// The Redis side of a node: connections, key names, scripts.
pub struct Redis {
    target: Target,
    /// The shared command connection and the one for replica-confirmed stores.
    shared: Mutex<Option<Conn>>,
    durable: Mutex<Option<Conn>>,
    /// The connection for bulk reads (inbox pages).
    bulk: Mutex<Option<Conn>>,
    /// One connect at a time (the others then reuse its connection).
    connecting: tokio::sync::Mutex<()>,
    primary_changes: watch::Sender<u64>,
    /// Whether primary changes can happen (sentinel mode).
    follows_failover: bool,
    /// Replicas the primary reported at the last [`Redis::poll_replicas`];
    /// -1 before the first answer.
    replicas: AtomicI64,
    keys: Keys,
    scripts: Scripts,
}

/// The settings of every command connection: redis-rs's connect timeout
/// set to ours, its response timeout (500 ms by default, which fired before
/// [`OP_TIMEOUT`]) off, because every call is bounded by [`Redis::timed`]
/// instead: one place, one limit per call (a `WAIT` needs a longer one).
fn connection_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None)
}

impl Redis {
    /// Prepares the connections (nothing connects yet: a node starts, not
    /// ready, even while Redis is down).
    pub fn new(config: &Config) -> Result<Arc<Redis>, ConfigError> {
        let url = config.redis_url.clone().unwrap_or_default();
        let invalid = |reason: String| ConfigError::Invalid {
            name: "redis-url",
            value: url.clone(),
            reason,
        };
        let urls = split_urls(&url);
        let first = urls.first().ok_or_else(|| invalid("no Redis URL".into()))?;
        let target = match config.redis_mode {
            RedisMode::Single => Target::Single(
                redis::Client::open(first.as_str()).map_err(|e| invalid(e.to_string()))?,
            ),
            RedisMode::Sentinel => {
                let infos = urls
                    .iter()
                    .map(|u| u.as_str().into_connection_info())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid(e.to_string()))?;
                // The URLs' credentials and scheme apply to the primary too.
                let mut node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(infos[0].redis_settings().clone());
                if let ConnectionAddr::TcpTls { insecure, .. } = infos[0].addr() {
                    node = node.set_tls_mode(if *insecure {
                        TlsMode::Insecure
                    } else {
                        TlsMode::Secure
                    });
                }
                let sentinel = Sentinel::build(infos).map_err(|e| invalid(e.to_string()))?;
                Target::Sentinel {
                    sentinel: tokio::sync::Mutex::new(sentinel),
                    master: config.redis_sentinel_master.clone(),
                    node,
                }
            }
            RedisMode::Cluster => {
                let infos = urls
                    .iter()
                    .map(|u| u.as_str().into_connection_info())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid(e.to_string()))?;
                let seed = infos[0].clone();
                // Retries stay few: every call is bounded by OP_TIMEOUT
                // anyway, and a caller that gets `unavailable` retries.
                let client = ClusterClient::builder(infos)
                    .connection_timeout(CLUSTER_CONNECT_TIMEOUT)
                    .retries(3)
                    .min_retry_wait(50)
                    .max_retry_wait(500)
                    .build()
                    .map_err(|e| invalid(e.to_string()))?;
                Target::Cluster(Box::new(ClusterTarget { client, seed }))
            }
        };
        Ok(Arc::new(Redis {
            target,
            shared: Mutex::new(None),
            durable: Mutex::new(None),
            bulk: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            primary_changes: watch::Sender::new(0),
            follows_failover: config.redis_mode == RedisMode::Sentinel,
            replicas: AtomicI64::new(-1),
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

    /// Bumped whenever a connection failure or `READONLY` suggests the
    /// primary moved: the subscriber reconnects on a change.
    pub fn primary_changes(&self) -> watch::Receiver<u64> {
        self.primary_changes.subscribe()
    }

    /// Whether this is `--redis-mode cluster`.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    /// The command that publishes `payload` on `channel`: `SPUBLISH` (a
    /// shard channel, routed by its slot) in cluster mode, else `PUBLISH`.
    pub fn publish_cmd(&self, channel: &str, payload: &[u8]) -> Cmd {
        let mut cmd = redis::cmd(if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        });
        cmd.arg(channel).arg(payload);
        cmd
    }

    /// Cluster mode: which primary serves which slots (`CLUSTER SLOTS`).
    pub async fn shard_map(&self) -> Result<ShardMap, RedisError> {
        let Target::Cluster(cluster) = &self.target else {
            return Err(RedisError::Reply("not a Redis Cluster"));
        };
        let seed = &cluster.seed;
        let Conn::Cluster(mut conn) = self.conn().await? else {
            return Err(RedisError::Reply("not a Redis Cluster"));
        };
        let host = match seed.addr() {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        self.timed(ShardMap::read(&mut conn, &host)).await
    }

    /// Cluster mode: a RESP3 client for one node (`host:port`), with the
    /// seed URL's credentials and TLS, for a shard's pub/sub connection.
    pub fn node_client(&self, host: &str, port: u16) -> Result<redis::Client, RedisError> {
        let Target::Cluster(cluster) = &self.target else {
            return Err(RedisError::Reply("not a Redis Cluster"));
        };
        let seed = &cluster.seed;
        let addr = match seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.to_owned(), port),
        };
        let info = seed.clone().set_addr(addr).set_redis_settings(
            seed.redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3),
        );
        redis::Client::open(info).map_err(RedisError::Connect)
    }

    /// A client for the current primary (in sentinel mode: asked now).
    async fn primary(&self) -> Result<redis::Client, RedisError> {
        match &self.target {
            Target::Single(client) => Ok(client.clone()),
            Target::Cluster(_) => Err(RedisError::Reply("cluster mode has no single primary")),
            Target::Sentinel {
                sentinel,
                master,
                node,
            } => {
                let mut sentinel = sentinel.lock().await;
                match tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    sentinel.async_master_for(master, Some(node)),
                )
                .await
                {
                    Ok(Ok(client)) => Ok(client),
                    Ok(Err(e)) => Err(RedisError::NoPrimary(e)),
                    Err(_) => Err(RedisError::Timeout(CONNECT_TIMEOUT)),
                }
            }
        }
    }

    /// The command connection: one multiplexed connection shared by every
    /// task (commands pipeline on it, in order), made again after a failure.
    pub async fn conn(&self) -> Result<Conn, RedisError> {
        self.connection(&self.shared).await
    }

    /// The connection for stores confirmed with `WAIT` (which blocks the
    /// connection it runs on until the replicas answer).
    pub async fn durable_conn(&self) -> Result<Conn, RedisError> {
        self.connection(&self.durable).await
    }

    /// The connection for bulk reads (inbox pages, redelivery reads): their
    /// replies never delay the commands on [`Redis::conn`].
    pub async fn bulk_conn(&self) -> Result<Conn, RedisError> {
        self.connection(&self.bulk).await
    }

    /// A new connection of its own, for a blocking read (`XREADGROUP
    /// BLOCK`) of `key` that must not hold up the shared one. Not cached:
    /// the caller keeps it and asks again after a failure. In cluster mode
    /// it goes to the primary that serves `key`'s slot now (`CLUSTER
    /// SLOTS`); after a failover or a slot move its commands fail (a lost
    /// connection, `MOVED`) and the caller's next ask finds the new one.
    pub async fn dedicated_conn(&self, key: &str) -> Result<Conn, RedisError> {
        let client = match &self.target {
            Target::Cluster(_) => {
                let map = self.shard_map().await?;
                let (host, port) = map
                    .primary_of(key)
                    .ok_or(RedisError::Reply("no primary serves the key's slot"))?;
                self.node_client(host, *port)?
            }
            _ => self.primary().await?,
        };
        match tokio::time::timeout(
            OP_TIMEOUT,
            client.get_multiplexed_async_connection_with_config(&connection_config()),
        )
        .await
        {
            Ok(Ok(conn)) => Ok(Conn::Single(conn)),
            Ok(Err(e)) => Err(RedisError::Connect(e)),
            Err(_) => Err(RedisError::Timeout(OP_TIMEOUT)),
        }
    }

    async fn connection(&self, slot: &Mutex<Option<Conn>>) -> Result<Conn, RedisError> {
        if let Some(conn) = lock(slot).clone() {
            return Ok(conn);
        }
        let _one = self.connecting.lock().await;
        if let Some(conn) = lock(slot).clone() {
            return Ok(conn);
        }
        if let Target::Cluster(cluster) = &self.target {
            let client = &cluster.client;
            // redis-rs's cluster connection follows MOVED and failovers
            // itself; it is made once and kept ([`Redis::reset`]).
            let conn =
                match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_connection()).await {
                    Ok(Ok(conn)) => Conn::Cluster(conn),
                    Ok(Err(e)) => return Err(RedisError::Connect(e)),
                    Err(_) => return Err(RedisError::Timeout(CONNECT_TIMEOUT)),
                };
            *lock(slot) = Some(conn.clone());
            return Ok(conn);
        }
        let client = self.primary().await?;
        let conn = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            client.get_multiplexed_async_connection_with_config(&connection_config()),
        )
        .await
        {
            Ok(Ok(conn)) => Conn::Single(conn),
            Ok(Err(e)) => return Err(RedisError::Connect(e)),
            Err(_) => return Err(RedisError::Timeout(CONNECT_TIMEOUT)),
        };
        *lock(slot) = Some(conn.clone());
        Ok(conn)
    }

    /// Runs a Redis future with the operation timeout. A broken connection,
    /// a timeout or `READONLY` drops the shared connections, so the next
    /// command starts on a fresh one (to the new primary, in sentinel mode);
    /// a command error (e.g. a script error) keeps them.
    pub async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        self.timed_for(OP_TIMEOUT, fut).await
    }

    /// [`Redis::timed`] with its own limit.
    pub async fn timed_for<T>(
        &self,
        limit: Duration,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        let err = match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) if e.kind() == redis::ErrorKind::Server(ServerErrorKind::ReadOnly) => {
                RedisError::ReadOnly(e)
            }
            Ok(Err(e)) if !(e.is_io_error() || e.is_connection_dropped() || e.is_timeout()) => {
                return Err(RedisError::Command(e));
            }
            Ok(Err(e)) => RedisError::Connection(e),
            Err(_) => RedisError::Timeout(limit),
        };
        self.reset();
        Err(err)
    }

    /// Drops the connections; the next command reconnects (asking the
    /// Sentinels again) and the subscriber reconnects too. In cluster mode
    /// the connection stays: one shard failing says nothing of the others,
    /// and redis-rs reconnects the node and refreshes its slot map itself.
    pub fn reset(&self) {
        if self.is_cluster() {
            return;
        }
        let had = lock(&self.shared).take().is_some()
            | lock(&self.durable).take().is_some()
            | lock(&self.bulk).take().is_some();
        if had && self.follows_failover {
            self.primary_changes.send_modify(|n| *n += 1);
        }
    }

    /// Asks the primary how many replicas it has (`ROLE`), and remembers it.
    pub async fn poll_replicas(&self) -> Result<usize, RedisError> {
        let mut conn = self.conn().await?;
        let role: redis::Value = self
            .timed(redis::cmd("ROLE").query_async(&mut conn))
            .await?;
        let redis::Value::Array(parts) = role else {
            return Err(RedisError::Reply("ROLE"));
        };
        let n = match (parts.first(), parts.get(2)) {
            (Some(redis::Value::BulkString(r)), Some(redis::Value::Array(replicas)))
                if r.as_slice() == b"master" =>
            {
                replicas.len()
            }
            _ => {
                // A replica answered: the primary moved (sentinel mode asks again).
                self.reset();
                return Err(RedisError::Reply("ROLE: not a primary"));
            }
        };
        self.replicas.store(n as i64, Ordering::Relaxed);
        Ok(n)
    }

    /// Replicas seen at the last poll, if any poll succeeded.
    pub fn known_replicas(&self) -> Option<usize> {
        usize::try_from(self.replicas.load(Ordering::Relaxed)).ok()
    }

    /// Opens a dedicated pub/sub connection (to the current primary). A
    /// pub/sub connection has no response timeout of its own in redis-rs:
    /// its users bound each round trip with [`OP_TIMEOUT`].
    pub async fn pubsub(&self) -> Result<PubSub, RedisError> {
        let client = self.primary().await?;
        match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(RedisError::Connection(e)),
            Err(_) => Err(RedisError::Timeout(CONNECT_TIMEOUT)),
        }
    }
}

fn lock(slot: &Mutex<Option<Conn>>) -> MutexGuard<'_, Option<Conn>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

//! [`RedisCluster`]: six `redis-server --cluster-enabled yes` processes
//! (three primaries, three replicas) on free ports, each in its own dir,
//! formed with `redis-cli --cluster create --cluster-replicas 1`.

use std::process::Command;
use std::time::Duration;

use super::{require, RedisServer};
use crate::support::eventually;

/// How long a primary may be silent before its replica takes over.
pub const NODE_TIMEOUT_MS: u64 = 2000;

/// A Redis Cluster owned by one test. `servers[i]` keeps its port and dir
/// (and so its cluster identity, `nodes.conf`) across [`RedisCluster::restart`].
pub struct RedisCluster {
    pub servers: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts six nodes, forms the cluster and waits until every node says
    /// `cluster_state:ok` and knows all six.
    pub async fn start() -> RedisCluster {
        require("redis-cli", "redis-tools");
        let timeout = NODE_TIMEOUT_MS.to_string();
        let flags = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &timeout,
            // A replica may always take over (a test's replicas are fresh).
            "--cluster-replica-validity-factor",
            "0",
            // The other shards keep serving while one is down.
            "--cluster-require-full-coverage",
            "no",
        ];
        let mut servers = Vec::new();
        for _ in 0..6 {
            servers.push(RedisServer::start_flags(&flags).await);
        }
        let addrs: Vec<String> = servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { servers };
        cluster.wait_ok(Duration::from_secs(30)).await;
        cluster
    }

    /// Waits until every running node reports `cluster_state:ok` and sees
    /// six nodes, and each of the three primaries has its replica.
    pub async fn wait_ok(&self, limit: Duration) {
        for (i, s) in self.servers.iter().enumerate() {
            eventually(
                &format!("redis cluster node {i} says cluster_state:ok"),
                limit,
                || async move {
                    let info = cluster_info(s).await?;
                    (info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:6"))
                        .then_some(())
                },
            )
            .await;
        }
    }

    /// The seed URLs, comma-separated (what `--redis-url` takes).
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The index of the primary that serves `key`'s slot now.
    pub async fn primary_of(&self, key: &str) -> usize {
        let slot = self.keyslot(key).await;
        eventually(
            &format!("a primary serves slot {slot}"),
            Duration::from_secs(20),
            || async move {
                for (i, s) in self.servers.iter().enumerate() {
                    let Some(mine) = own_slots(s).await else {
                        continue;
                    };
                    if mine.iter().any(|(a, b)| *a <= slot && slot <= *b) {
                        return Some(i);
                    }
                }
                None
            },
        )
        .await
    }

    /// `CLUSTER KEYSLOT key`, asked of the first node that answers.
    pub async fn keyslot(&self, key: &str) -> u16 {
        for s in &self.servers {
            let Ok(client) = redis::Client::open(s.url()) else {
                continue;
            };
            let asked = tokio::time::timeout(Duration::from_secs(1), async {
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(key)
                    .query_async::<u16>(&mut conn)
                    .await
                    .ok()
            })
            .await;
            if let Ok(Some(slot)) = asked {
                return slot;
            }
        }
        panic!("no cluster node answers CLUSTER KEYSLOT");
    }

    /// Kills node `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        self.servers[i].kill();
    }

    /// Starts node `i` again on its port and dir: it rejoins the cluster
    /// (as a replica, once its replica was promoted).
    pub async fn restart(&mut self, i: usize) {
        self.servers[i].restart().await;
    }

    /// Freezes node `i` (SIGSTOP): it answers nothing, and its peers mark
    /// it failed after the node timeout.
    pub fn pause(&self, i: usize) {
        self.servers[i].pause();
    }

    /// Thaws node `i` (SIGCONT).
    pub fn resume(&self, i: usize) {
        self.servers[i].resume();
    }

    /// The index of the replica of primary `primary` (its `myself` line of
    /// `CLUSTER NODES` names the primary's id).
    pub async fn replica_of(&self, primary: usize) -> usize {
        let id = myself(&self.servers[primary])
            .await
            .expect("the primary answers CLUSTER NODES")[0]
            .clone();
        for (i, s) in self.servers.iter().enumerate() {
            if let Some(me) = myself(s).await {
                if me[2].contains("slave") && me[3] == id {
                    return i;
                }
            }
        }
        panic!("primary {primary} has no replica");
    }

    /// Whether node `i` is a primary now (`ROLE`).
    pub async fn is_primary(&self, i: usize) -> bool {
        let Ok(client) = redis::Client::open(self.servers[i].url()) else {
            return false;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            return false;
        };
        let role: redis::RedisResult<redis::Value> =
            redis::cmd("ROLE").query_async(&mut conn).await;
        matches!(role, Ok(redis::Value::Array(parts))
            if matches!(parts.first(), Some(redis::Value::BulkString(r)) if r.as_slice() == b"master"))
    }

    /// `PUBSUB SHARDCHANNELS` and `PUBSUB CHANNELS` summed over the nodes.
    pub async fn channels(&self) -> (Vec<String>, Vec<String>) {
        let (mut shard, mut plain) = (Vec::new(), Vec::new());
        for s in &self.servers {
            let Ok(client) = redis::Client::open(s.url()) else {
                continue;
            };
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                continue;
            };
            let a: Vec<String> = redis::cmd("PUBSUB")
                .arg("SHARDCHANNELS")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            let b: Vec<String> = redis::cmd("PUBSUB")
                .arg("CHANNELS")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            shard.extend(a);
            plain.extend(b);
        }
        (shard, plain)
    }
}

async fn cluster_info(s: &RedisServer) -> Option<String> {
    let client = redis::Client::open(s.url()).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await
        .ok()
}

/// The slot ranges node `s` serves as a primary (its `myself` line of
/// `CLUSTER NODES`); `None` when it is down or a replica.
async fn own_slots(s: &RedisServer) -> Option<Vec<(u16, u16)>> {
    let fields = myself(s).await?;
    if !fields.get(2)?.contains("master") {
        return None;
    }
    Some(
        fields
            .iter()
            .skip(8)
            .filter(|f| !f.starts_with('['))
            .filter_map(|f| match f.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => f.parse().ok().map(|a| (a, a)),
            })
            .collect(),
    )
}

/// The fields of node `s`'s own line of `CLUSTER NODES` (id, address,
/// flags, primary id, ..., slots); `None` when it does not answer within
/// a second (it is down or paused).
async fn myself(s: &RedisServer) -> Option<Vec<String>> {
    let client = redis::Client::open(s.url()).ok()?;
    let nodes: String = tokio::time::timeout(Duration::from_secs(1), async {
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await
            .ok()
    })
    .await
    .ok()??;
    let me = nodes.lines().find(|l| l.contains("myself"))?;
    Some(me.split_whitespace().map(str::to_owned).collect())
}

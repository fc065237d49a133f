//! Redis Cluster (`--redis-mode cluster`): the command connection type of
//! every mode ([`Conn`]), key slots ([`slot`]), and the shard map read with
//! `CLUSTER SLOTS` ([`ShardMap`]) that the broker's subscriber uses to open
//! one pub/sub connection per shard primary.
//!
//! Commands go through redis-rs's async cluster client, which routes each
//! one by its first key (a script's `EVALSHA` by its first `KEYS` entry; all
//! of a script's keys share one slot, see [`super::scripts`]), follows
//! `MOVED`/`ASK` and refreshes its slot map by itself. `WAIT` must run on
//! the primary that took the write, so [`Conn::query_at`] routes it to the
//! primary of the stored key's slot.
//!
//! Pub/sub does not use redis-rs's cluster subscriptions: on a reconnect
//! they resubscribe every channel of a node in one `SSUBSCRIBE`, which a
//! node answers with `CROSSSLOT` as soon as two channels are in different
//! slots. The subscriber instead reads the shard map, opens a RESP3
//! connection to each primary, and sends one `SSUBSCRIBE` per channel to
//! the primary of its slot (`cluster::redis::subscriber`).

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value};

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// A command connection: to one Redis (single and sentinel modes), or to a
/// Redis Cluster (each command routed by its key). Cheap to clone; clones
/// share the connection.
#[derive(Clone)]
pub enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Runs a keyless command on the server that holds `key`: the
    /// connection itself with one Redis, the primary of `key`'s slot in a
    /// cluster (for `WAIT` after a store of `key`).
    pub async fn query_at<T: FromRedisValue>(&mut self, key: &str, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => {
                let route = Route::new(slot(key.as_bytes()), SlotAddr::Master);
                let value = c
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(T::from_redis_value(value)?)
            }
        }
    }
}

/// The hash slot of a key or shard channel: CRC16 (XMODEM) of its hash tag
/// (the part in the first non-empty `{...}`), or of the whole name, mod 16384.
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|b| *b == b'}')
                .filter(|close| *close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16(tagged) % SLOTS
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in data {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Which primary serves which slots, as `CLUSTER SLOTS` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// `(first slot, last slot, index into primaries)`.
    ranges: Vec<(u16, u16, usize)>,
    /// Each primary's host and port, once.
    primaries: Vec<(String, u16)>,
}

impl ShardMap {
    /// Asks any node for the slot map (`CLUSTER SLOTS`). A primary
    /// announced without a host is at `default_host` (the seed's).
    pub async fn read(conn: &mut ClusterConnection, default_host: &str) -> RedisResult<ShardMap> {
        let reply = conn
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        Ok(ShardMap::parse(&reply, default_host))
    }

    fn parse(reply: &Value, default_host: &str) -> ShardMap {
        let mut map = ShardMap {
            ranges: Vec::new(),
            primaries: Vec::new(),
        };
        let Value::Array(ranges) = reply else {
            return map;
        };
        for range in ranges {
            let Value::Array(parts) = range else { continue };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(node))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                continue;
            };
            let host = match node.first() {
                Some(Value::BulkString(h)) if !h.is_empty() => {
                    String::from_utf8_lossy(h).into_owned()
                }
                Some(Value::SimpleString(h)) if !h.is_empty() => h.clone(),
                _ => default_host.to_owned(),
            };
            let Some(Value::Int(port)) = node.get(1) else {
                continue;
            };
            let (Ok(first), Ok(last), Ok(port)) = (
                u16::try_from(*first),
                u16::try_from(*last),
                u16::try_from(*port),
            ) else {
                continue;
            };
            let primary = (host, port);
            let index = match map.primaries.iter().position(|p| *p == primary) {
                Some(i) => i,
                None => {
                    map.primaries.push(primary);
                    map.primaries.len() - 1
                }
            };
            map.ranges.push((first, last, index));
        }
        map.ranges.sort_unstable();
        map
    }

    /// The primaries, in the order [`ShardMap::shard_of`] indexes them.
    pub fn primaries(&self) -> &[(String, u16)] {
        &self.primaries
    }

    /// The address of the primary serving `name`'s slot; `None` while no
    /// primary serves it.
    pub fn primary_of(&self, name: &str) -> Option<&(String, u16)> {
        self.shard_of(name).map(|i| &self.primaries[i])
    }

    /// The index of the primary serving `name`'s slot; `None` while no
    /// primary serves it (a shard that is down or not yet assigned).
    pub fn shard_of(&self, name: &str) -> Option<usize> {
        let s = slot(name.as_bytes());
        let i = self.ranges.partition_point(|(first, _, _)| *first <= s);
        let (first, last, index) = *self.ranges.get(i.checked_sub(1)?)?;
        (first <= s && s <= last).then_some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // `CLUSTER KEYSLOT` of these, as Redis 7 answers.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b"wsgate:inbox:{alice}"), slot(b"alice"));
        assert_eq!(slot(b"wsgate:node:{n1}"), slot(b"wsgate:nodeinfo:{n1}"));
        // An empty tag is no tag: the whole name is hashed.
        assert_eq!(slot(b"a{}b"), crc16(b"a{}b") % SLOTS);
    }

    #[test]
    fn the_shard_map_finds_each_slots_primary() {
        let node = |port: i64| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node(7001),
                node(7004),
            ]),
            Value::Array(vec![Value::Int(0), Value::Int(5460), node(7000)]),
            Value::Array(vec![Value::Int(10923), Value::Int(16383), node(7002)]),
        ]);
        let map = ShardMap::parse(&reply, "seed");
        assert_eq!(map.primaries().len(), 3);
        let port = |name: &str| map.shard_of(name).map(|i| map.primaries()[i].1);
        assert_eq!(port("bar"), Some(7000), "slot 5061");
        assert_eq!(port("foo"), Some(7002), "slot 12182");
        let gap = ShardMap::parse(
            &Value::Array(vec![Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node(7000),
            ])]),
            "seed",
        );
        assert_eq!(gap.shard_of("foo"), None, "no primary serves slot 12182");
    }
}

//! Registry and liveness scripts: who is connected where, room membership,
//! heartbeats. Each touches the keys of one slot only (see the parent module).

/// A counter field in one hash, removed at zero. Used for both sides of the
/// user registry: `{p}:user:{user}` (field = node) and
/// `{p}:node-users:{node}` (field = user).
///
/// `KEYS[1]` = the hash. `ARGV` = field, delta. Returns the new count.
/// O(1).
pub const COUNT: &str = r#"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
"#;

/// The room side of a join: node `N` now holds a member connection of `user`.
/// Idempotent per (node, user): applying it twice counts once.
///
/// `KEYS[1]` = `{p}:members:{room}`, `KEYS[2]` = `{p}:member-nodes:{room}`.
/// `ARGV` = user, "node user". Returns 1 when the user joined the room
/// cluster-wide (this is its first node). O(1).
pub const ROOM_JOIN: &str = r#"
if redis.call('SADD', KEYS[2], ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1 then return 1 end
end
return 0
"#;

/// The room side of a leave: node `N` holds no member connection of `user`
/// any more. Idempotent per (node, user), so a reaper may repeat it.
///
/// `KEYS[1]` = `{p}:members:{room}`, `KEYS[2]` = `{p}:member-nodes:{room}`.
/// `ARGV` = user, "node user". Returns 1 when the user left the room
/// cluster-wide (that was its last node). O(1).
pub const ROOM_LEAVE: &str = r#"
if redis.call('SREM', KEYS[2], ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[1])
    return 1
  end
end
return 0
"#;

/// The node's slot of a heartbeat: its info hash, with an expiry.
///
/// `KEYS[1]` = `{p}:nodeinfo:{node}`. `ARGV` = connections, started_at,
/// info ttl ms. Returns 1 when the info was still there, 0 when it was gone
/// (the node was reaped, or silent past the info ttl: it must register again).
/// O(1).
pub const NODE_INFO: &str = r#"
local had = redis.call('EXISTS', KEYS[1])
redis.call('HSET', KEYS[1], 'connections', ARGV[1], 'started_at', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return had
"#;

/// The global part of a heartbeat.
///
/// `KEYS[1]` = `{p}:nodes`. `ARGV` = node. Returns Redis time (ms).
/// O(log N), N = nodes.
pub const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
return now
"#;

/// `KEYS[1]` = `{p}:nodes`. `ARGV` = node ttl ms. Returns the nodes silent
/// longer than that. O(log N + M), M = nodes returned.
pub const DEAD_NODES: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[1])))
"#;

/// `KEYS[1]` = `{p}:nodes`. `ARGV` = node ttl ms. Returns the nodes heard
/// from within that time (their info is read per node, in its own slot).
/// O(log N + M), M = nodes returned.
pub const LIVE_NODES: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
"#;

/// `KEYS[1]` = `{p}:nodes`. `ARGV` = node, node ttl ms. Returns 1 when the
/// node is silent longer than the ttl, or absent. O(1).
pub const IS_STALE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) >= now - tonumber(ARGV[2]) then return 0 end
return 1
"#;

/// The last step of a reap: drops the node from the node list, unless it
/// heartbeat meanwhile (it came back; it registers again by itself), or
/// `force` ("1", a node removing itself).
///
/// `KEYS[1]` = `{p}:nodes`. `ARGV` = node, node ttl ms, force.
/// Returns 1 when it was removed. O(log N).
pub const FORGET_NODE: &str = r#"
if ARGV[3] ~= '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if score and tonumber(score) >= now - tonumber(ARGV[2]) then return 0 end
end
return redis.call('ZREM', KEYS[1], ARGV[1])
"#;

//! Lua scripts: each multi-key change is atomic in Redis and costs one round
//! trip. Times come from Redis `TIME`, so node clocks never need to agree.
//!
//! Scripts touch keys they build from the prefix (`ARGV`), which a single
//! Redis (or a Sentinel-managed primary) allows; Redis Cluster is not supported.

/// `KEYS[1]` = `{p}:user:{user}`. `ARGV` = envelope, prefix, self node.
/// Publishes to every other node holding the user; returns how many.
pub const PUBLISH_USER: &str = r#"
local nodes = redis.call('HKEYS', KEYS[1])
local reached = 0
for _, n in ipairs(nodes) do
  if n ~= ARGV[3] then
    redis.call('PUBLISH', ARGV[2] .. ':node:' .. n, ARGV[1])
    reached = reached + 1
  end
end
return reached
"#;

/// `KEYS[1]` = `{p}:user:{user}`, `KEYS[2]` = `{p}:node-users:{node}`.
/// `ARGV` = node, delta, user. Keeps the per-node connection count of a user.
pub const USER_CONNECTIONS: &str = r#"
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[3])
else
  redis.call('SADD', KEYS[2], ARGV[3])
end
return n
"#;

/// `KEYS[1]` = `{p}:members:{room}`, `KEYS[2]` = `{p}:node-rooms:{node}`.
/// `ARGV` = user, "room user", "1" (joined) or "0" (left).
/// Returns 1 when the user's cluster-wide membership changed.
pub const ROOM_MEMBER: &str = r#"
if ARGV[3] == '1' then
  if redis.call('SADD', KEYS[2], ARGV[2]) == 1 then
    if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1 then return 1 end
  end
  return 0
end
if redis.call('SREM', KEYS[2], ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[1])
    return 1
  end
end
return 0
"#;

/// `KEYS[1]` = `{p}:nodes`, `KEYS[2]` = `{p}:nodeinfo:{node}`.
/// `ARGV` = node, connections, started_at, info ttl ms. Returns Redis time (ms).
pub const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], 'connections', ARGV[2], 'started_at', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return now
"#;

/// `KEYS[1]` = `{p}:nodes`. `ARGV` = prefix, node ttl ms.
/// Returns live nodes as a flat list: id, connections, started_at, ...
pub const LIVE_NODES: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[2]), '+inf')
local out = {}
for _, id in ipairs(ids) do
  local info = redis.call('HMGET', ARGV[1] .. ':nodeinfo:' .. id, 'connections', 'started_at')
  table.insert(out, id)
  table.insert(out, info[1] or '0')
  table.insert(out, info[2] or '0')
end
return out
"#;

/// `KEYS[1]` = `{p}:nodes`. `ARGV` = node ttl ms. Returns nodes silent too long.
pub const DEAD_NODES: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[1])))
"#;

/// `KEYS[1]` = `{p}:nodes`. `ARGV` = node, prefix, node ttl ms, force ("1").
/// Removes a dead node (unless it heartbeat meanwhile, or another node reaped
/// it first) and everything it registered. Returns the "room user" entries
/// whose cluster-wide membership ended, for leave events.
pub const REAP_NODE: &str = r#"
local node, p = ARGV[1], ARGV[2]
if ARGV[4] ~= '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local score = redis.call('ZSCORE', KEYS[1], node)
  if not score or tonumber(score) >= now - tonumber(ARGV[3]) then return {} end
end
redis.call('ZREM', KEYS[1], node)
for _, u in ipairs(redis.call('SMEMBERS', p .. ':node-users:' .. node)) do
  redis.call('HDEL', p .. ':user:' .. u, node)
end
local leaves = {}
for _, e in ipairs(redis.call('SMEMBERS', p .. ':node-rooms:' .. node)) do
  local sp = string.find(e, ' ', 1, true)
  if sp then
    local key = p .. ':members:' .. string.sub(e, 1, sp - 1)
    local user = string.sub(e, sp + 1)
    if redis.call('HINCRBY', key, user, -1) <= 0 then
      redis.call('HDEL', key, user)
      table.insert(leaves, e)
    end
  end
end
redis.call('DEL', p .. ':node-users:' .. node, p .. ':node-rooms:' .. node, p .. ':nodeinfo:' .. node)
return leaves
"#;

/// `KEYS[1]` = `{p}:inbox:{user}`, `KEYS[2]` = `{p}:inbox-expiry`.
/// `ARGV` = entry, inbox max, inbox ttl ms, user, safety ms.
/// Appends, trims to max, renews the expiry. Returns {trimmed, expired}.
pub const INBOX_STORE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = 0
local exp = redis.call('ZSCORE', KEYS[2], ARGV[4])
if exp and tonumber(exp) <= now then
  expired = redis.call('LLEN', KEYS[1])
  redis.call('DEL', KEYS[1])
end
local len = redis.call('RPUSH', KEYS[1], ARGV[1])
local max = tonumber(ARGV[2])
local trimmed = 0
if len > max then
  trimmed = len - max
  redis.call('LTRIM', KEYS[1], trimmed, -1)
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[5]))
return {trimmed, expired}
"#;

/// `KEYS[1]` = `{p}:inbox:{user}`, `KEYS[2]` = `{p}:inbox-expiry`. `ARGV` = user.
/// Returns {expired count, entries}: an expired inbox is deleted and counted.
pub const INBOX_PENDING: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = redis.call('ZSCORE', KEYS[2], ARGV[1])
if exp and tonumber(exp) <= now then
  local n = redis.call('LLEN', KEYS[1])
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {n, {}}
end
return {0, redis.call('LRANGE', KEYS[1], 0, -1)}
"#;

/// `KEYS[1]` = `{p}:inbox:{user}`, `KEYS[2]` = `{p}:inbox-expiry`.
/// `ARGV` = user, id, id, ... Removes entries ("id|payload") with those ids;
/// returns the removed entries.
pub const INBOX_ACK: &str = r#"
local want, left = {}, 0
for i = 2, #ARGV do
  if not want[ARGV[i]] then want[ARGV[i]] = true; left = left + 1 end
end
local removed = {}
for _, e in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local bar = string.find(e, '|', 1, true)
  if bar then
    local id = string.sub(e, 1, bar - 1)
    if want[id] then
      redis.call('LREM', KEYS[1], 1, e)
      table.insert(removed, e)
      want[id] = nil
      left = left - 1
      if left == 0 then break end
    end
  end
end
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return removed
"#;

/// `KEYS[1]` = `{p}:inbox-expiry`. `ARGV` = prefix, batch size.
/// Deletes inboxes past their expiry; returns how many messages they held.
pub const INBOX_SWEEP: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local users = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local dropped = 0
for _, u in ipairs(users) do
  local key = ARGV[1] .. ':inbox:' .. u
  dropped = dropped + redis.call('LLEN', key)
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], u)
end
return dropped
"#;

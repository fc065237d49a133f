//! Inbox scripts (contract 5.2): one user's list and its expiry, both in the
//! user's slot; the global expiry index is a separate key, touched alone.
//!
//! Entries are `id|msgpack(message)`. An inbox's expiry (ms, Redis time) is
//! the string key `{p}:inbox-expiry:{user}`; both keys also carry a Redis TTL
//! a safety margin past it, a net if no node ever sweeps. Kept in their own
//! file: the quota and idempotency work changes these and nothing else.

/// Appends an entry, trims to the max, renews the expiry. An inbox already
/// past its expiry is emptied first (its messages counted as expired).
///
/// `KEYS[1]` = `{p}:inbox:{user}`, `KEYS[2]` = `{p}:inbox-expiry:{user}`.
/// `ARGV` = entry, inbox max, inbox ttl ms, safety ms.
/// Returns {trimmed, expired, expires_at}. O(1) amortized (O(T) for T
/// trimmed entries).
pub const STORE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = 0
local exp = redis.call('GET', KEYS[2])
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
local ttl = tonumber(ARGV[3])
local expires = now + ttl
redis.call('SET', KEYS[2], expires, 'PX', ttl + tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[1], ttl + tonumber(ARGV[4]))
return {trimmed, expired, expires}
"#;

/// Reads the inbox; an expired one is deleted and counted instead.
///
/// `KEYS[1]` = `{p}:inbox:{user}`, `KEYS[2]` = `{p}:inbox-expiry:{user}`.
/// Returns {expired count, entries}. O(N), N = entries (at most inbox-max).
pub const PENDING: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = redis.call('GET', KEYS[2])
if exp and tonumber(exp) <= now then
  local n = redis.call('LLEN', KEYS[1])
  redis.call('DEL', KEYS[1], KEYS[2])
  return {n, {}}
end
return {0, redis.call('LRANGE', KEYS[1], 0, -1)}
"#;

/// Removes the entries with these ids; an emptied inbox loses its expiry key.
///
/// `KEYS[1]` = `{p}:inbox:{user}`, `KEYS[2]` = `{p}:inbox-expiry:{user}`.
/// `ARGV` = id, id, ... Returns the removed entries. O(N) in the entries
/// scanned (stops once every id is found), N at most inbox-max.
pub const ACK: &str = r#"
local want, left = {}, 0
for i = 1, #ARGV do
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
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
return removed
"#;

/// The sweeper's index: users whose inbox may have expired.
///
/// `KEYS[1]` = `{p}:inbox-expiries`. `ARGV` = batch size.
/// Returns a flat list: user, indexed expiry, ... O(log U + B), B = batch.
pub const DUE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
"#;

/// Deletes an inbox past its expiry (or without one) and counts its messages.
///
/// `KEYS[1]` = `{p}:inbox:{user}`, `KEYS[2]` = `{p}:inbox-expiry:{user}`.
/// Returns {messages dropped, 0}, or {0, expiry} when the inbox was renewed
/// and is not due yet. O(1).
pub const EXPIRE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = redis.call('GET', KEYS[2])
if exp and tonumber(exp) > now then return {0, tonumber(exp)} end
local n = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return {n, 0}
"#;

/// Moves (or removes, `new` = 0) a user's entry in the sweeper's index, only
/// if it still holds the score the sweeper read: a store that indexed a later
/// expiry meanwhile wins.
///
/// `KEYS[1]` = `{p}:inbox-expiries`. `ARGV` = user, read score, new score.
/// Returns 1 when it changed the entry. O(log U).
pub const REINDEX: &str = r#"
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
if tonumber(ARGV[3]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
"#;

//! Inbox scripts (contract 5.2): one user's inbox, four keys in the user's
//! slot; the global expiry index is a separate key, touched alone.
//!
//! Layout (`KEYS[1..4]` of every per-user script):
//! 1. `{p}:inbox:{user}` (list): `"SEQ ID"` in store order: the order of the
//!    messages. Acked ids stay until they reach the head (popped lazily) or
//!    until a store compacts the list.
//! 2. `{p}:inbox-msgs:{user}` (hash): id → `sender|msgpack(message)`: the
//!    messages themselves; its length is the inbox's message count.
//! 3. `{p}:inbox-meta:{user}` (hash): `bytes` (sum of the entries' lengths),
//!    `s:SENDER` (that sender's unacked messages), `seq` (the last sequence).
//! 4. `{p}:inbox-expiry:{user}` (string): the inbox's expiry, ms, Redis time.
//!
//! A sequence is `max(last + 1, now_ms × 1000)`: it grows within an inbox
//! and across its expiry or emptying, so a reader's cursor never skips a
//! newer message. All four keys carry a Redis TTL a safety margin past the
//! expiry, a net if no node ever sweeps.
//!
//! Costs: a store, an ack of one id and an unknown id are O(1) (amortized:
//! each list entry is popped or compacted away once); a page is O(log L)
//! `LINDEX` probes plus O(P) for P entries, L ≤ 2 × inbox-max + 64.

/// Helpers every per-user script starts with.
macro_rules! prelude {
    () => {
        r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function id_of(e) return string.sub(e, string.find(e, ' ', 1, true) + 1) end
local function seq_of(e) return tonumber(string.sub(e, 1, string.find(e, ' ', 1, true) - 1)) end
local function sender_of(v) return string.sub(v, 1, string.find(v, '|', 1, true) - 1) end
-- Removes one message and its share of the counts.
local function remove(id, v)
  redis.call('HDEL', KEYS[2], id)
  local s = 's:' .. sender_of(v)
  if redis.call('HINCRBY', KEYS[3], s, -1) <= 0 then redis.call('HDEL', KEYS[3], s) end
  if redis.call('HINCRBY', KEYS[3], 'bytes', -#v) <= 0 then redis.call('HDEL', KEYS[3], 'bytes') end
end
-- An inbox past its expiry: deleted (the sequence kept); returns its message count.
local function drop_expired(now)
  local exp = redis.call('GET', KEYS[4])
  if not exp or tonumber(exp) > now then return 0 end
  local n = redis.call('HLEN', KEYS[2])
  local seq = redis.call('HGET', KEYS[3], 'seq')
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  if seq then
    redis.call('HSET', KEYS[3], 'seq', seq)
    redis.call('PEXPIRE', KEYS[3], 3600000)
  end
  return n
end
"#
    };
}

/// Stores a message within the limits; an inbox past its expiry is emptied
/// first (its messages counted as expired).
///
/// `ARGV` = id, sender key, entry (`sender|msgpack`), inbox max, max bytes,
/// sender share (0 = exempt), overflow (`reject` or `drop-oldest`), ttl ms,
/// safety ms.
/// Returns {status, trimmed, expired}: status 0 stored, 1 duplicate (same id
/// and sender: nothing changed), 2 id taken by another sender, 3 full,
/// 4 sender share, 5 bytes (3-5: nothing stored).
/// O(1) amortized: HGET/HLEN/HSET/RPUSH; each trimmed message one pop; a
/// compaction (O(L)) only after L/2 stores added entries since the last.
pub const STORE: &str = concat!(
    prelude!(),
    r#"
local now = now_ms()
local expired = drop_expired(now)
local id, sender, value = ARGV[1], ARGV[2], ARGV[3]
local old = redis.call('HGET', KEYS[2], id)
if old then
  if sender_of(old) == sender then return {1, 0, expired} end
  return {2, 0, expired}
end
local max, max_bytes, share = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local size = #value
if size > max_bytes then return {5, 0, expired} end
local skey = 's:' .. sender
if share > 0 and tonumber(redis.call('HGET', KEYS[3], skey) or '0') >= share then
  return {4, 0, expired}
end
local count = redis.call('HLEN', KEYS[2])
local bytes = tonumber(redis.call('HGET', KEYS[3], 'bytes') or '0')
local trimmed = 0
if count + 1 > max or bytes + size > max_bytes then
  if ARGV[7] ~= 'drop-oldest' then
    if count + 1 > max then return {3, 0, expired} end
    return {5, 0, expired}
  end
  while count + 1 > max or bytes + size > max_bytes do
    local head = redis.call('LPOP', KEYS[1])
    if not head then break end
    local hid = id_of(head)
    local v = redis.call('HGET', KEYS[2], hid)
    if v then
      remove(hid, v)
      count = count - 1
      bytes = bytes - #v
      trimmed = trimmed + 1
    end
  end
end
local last = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
local seq = string.format('%.0f', math.max(last + 1, now * 1000))
redis.call('RPUSH', KEYS[1], seq .. ' ' .. id)
redis.call('HSET', KEYS[2], id, value)
redis.call('HSET', KEYS[3], 'seq', seq)
redis.call('HINCRBY', KEYS[3], 'bytes', size)
redis.call('HINCRBY', KEYS[3], skey, 1)
count = count + 1
if redis.call('LLEN', KEYS[1]) > 2 * count + 64 then
  local keep = {}
  for _, e in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    if redis.call('HEXISTS', KEYS[2], id_of(e)) == 1 then keep[#keep + 1] = e end
  end
  redis.call('DEL', KEYS[1])
  for i = 1, #keep, 1000 do
    redis.call('RPUSH', KEYS[1], unpack(keep, i, math.min(i + 999, #keep)))
  end
end
local ttl = tonumber(ARGV[8])
local px = ttl + tonumber(ARGV[9])
redis.call('SET', KEYS[4], now + ttl, 'PX', px)
redis.call('PEXPIRE', KEYS[1], px)
redis.call('PEXPIRE', KEYS[2], px)
redis.call('PEXPIRE', KEYS[3], px)
return {0, trimmed, expired}
"#
);

/// One page of the inbox after a cursor; an expired inbox is deleted and
/// counted instead.
///
/// `ARGV` = cursor (a sequence; 0 = from the start), most entries, most bytes.
/// Returns {expired, last sequence read, more (0/1), entry, entry, ...}: the
/// entries are the unacked messages among the next list entries (acked ones
/// are skipped but advance the cursor); at least one message, then only
/// while within the bytes.
/// O(log L) `LINDEX` probes to find the cursor (none from the start) plus
/// O(P) for the P entries read.
pub const PAGE: &str = concat!(
    prelude!(),
    r#"
local expired = drop_expired(now_ms())
if expired > 0 then return {expired, 0, 0} end
local len = redis.call('LLEN', KEYS[1])
local after = tonumber(ARGV[1])
local lo, hi = 0, len
if after > 0 then
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if seq_of(redis.call('LINDEX', KEYS[1], mid)) > after then hi = mid else lo = mid + 1 end
  end
end
local limit, max_bytes = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {0, 0, 0}
local last, read, bytes = after, 0, 0
if lo < len then
  for _, e in ipairs(redis.call('LRANGE', KEYS[1], lo, lo + limit - 1)) do
    local v = redis.call('HGET', KEYS[2], id_of(e))
    if v then
      if bytes > 0 and bytes + #v > max_bytes then break end
      bytes = bytes + #v
      out[#out + 1] = v
    end
    last = seq_of(e)
    read = read + 1
  end
end
out[2] = string.format('%.0f', last)
if lo + read < len then out[3] = 1 end
return out
"#
);

/// Removes the messages with these ids, then pops acked ids off the head of
/// the list; an emptied inbox loses its list and expiry (the sequence stays
/// until its TTL).
///
/// `ARGV` = id, id, ... Returns `id|sender` for each removed message.
/// O(K) for K ids (an unknown id is one HGET), plus the lazy pops: amortized
/// O(1), each list entry is popped once.
pub const ACK: &str = concat!(
    prelude!(),
    r#"
local removed = {}
for i = 1, #ARGV do
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  if v then
    remove(ARGV[i], v)
    removed[#removed + 1] = ARGV[i] .. '|' .. sender_of(v)
  end
end
if #removed == 0 then return removed end
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head or redis.call('HEXISTS', KEYS[2], id_of(head)) == 1 then break end
  redis.call('LPOP', KEYS[1])
end
if redis.call('HLEN', KEYS[2]) == 0 then redis.call('DEL', KEYS[1], KEYS[4]) end
return removed
"#
);

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
/// `KEYS` = the four inbox keys. Returns {messages dropped, 0}, or
/// {0, expiry} when the inbox was renewed and is not due yet. O(1) when not
/// due; O(N) for the N entries it deletes, once per expired inbox.
pub const EXPIRE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = redis.call('GET', KEYS[4])
if exp and tonumber(exp) > now then return {0, tonumber(exp)} end
local n = redis.call('HLEN', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
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

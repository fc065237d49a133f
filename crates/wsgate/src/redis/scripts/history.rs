//! Room history scripts (contract 5.4): a room's stream, its position hash
//! and its channel, all three in the room's slot (`{room}` hash tag), so
//! each script is single-slot in Redis Cluster too. Offsets are counted in
//! the position hash and used as the stream entry ids (`OFFSET-0`), so a
//! page after an offset is one `XRANGE` from `OFFSET+1`. Kept in their own
//! file: the history changes these and nothing else.

/// Gives a room message its offset, keeps it in the room's stream and
/// publishes it, all at once, so offsets follow publish order exactly.
///
/// `KEYS[1]` = `{p}:history-meta:{room}` (hash: epoch, offset),
/// `KEYS[2]` = `{p}:history:{room}` (stream, entry id `OFFSET-0`, field `m` =
/// the envelope), `KEYS[3]` = `{p}:room:{room}` (the room's channel).
/// `ARGV` = envelope, a fresh epoch (used when the room has none: new, or
/// lost), history size, history ttl ms, the publish command (`PUBLISH`, or
/// `SPUBLISH` in Redis Cluster). A new epoch starts from an empty stream.
/// Publishes `#EPOCH:OFFSET:ENVELOPE`; returns {epoch, offset}.
/// O(1) amortized (exact `MAXLEN` trims one entry per add once full) plus
/// the publish's O(subscribers).
pub const PUBLISH: &str = r#"
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'offset')
local epoch, offset = meta[1], tonumber(meta[2])
if not epoch or not offset then
  epoch, offset = ARGV[2], 0
  redis.call('DEL', KEYS[2])
end
offset = offset + 1
local id = string.format('%d', offset)
local size = tonumber(ARGV[3])
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, id .. '-0', 'm', ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', id)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call(ARGV[5], KEYS[3], '#' .. epoch .. ':' .. id .. ':' .. ARGV[1])
return {epoch, offset}
"#;

/// A room's position and at most `limit` kept entries after an offset. A
/// room without history gets its epoch here (offset 0, expiring after the
/// history ttl unless a message renews it).
///
/// `KEYS[1]` = `{p}:history-meta:{room}`, `KEYS[2]` = `{p}:history:{room}`.
/// `ARGV` = a fresh epoch, history ttl ms, after (an offset), limit.
/// Returns {epoch, offset, entries}. O(log N + limit), N = kept entries.
pub const READ: &str = r#"
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'offset')
local epoch, offset = meta[1], tonumber(meta[2])
if not epoch or not offset then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'offset', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {ARGV[1], 0, {}}
end
local limit = tonumber(ARGV[4])
local after = tonumber(ARGV[3])
if limit <= 0 or after >= offset then return {epoch, offset, {}} end
local from = string.format('%d', after + 1) .. '-0'
return {epoch, offset, redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', limit)}
"#;

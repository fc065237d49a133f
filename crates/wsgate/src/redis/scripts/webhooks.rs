//! Webhook scripts: the registry changes that decide a transition and queue
//! its event in the same slot, the outbox's cleanup after a move, the
//! offline check, the reader lease. Each touches one slot only.
//!
//! Flags (`ARGV` "flags"): one character per event type, "1" = queued, in
//! the order `user.online`, `user.offline`, `room.occupied`,
//! `room.vacated`, `member.joined`, `member.left`, `message.room`,
//! `message.direct` (`webhooks::EventSet::flags`). Event JSON is built with
//! `cjson` from a table: `{"id","type","time","user"?,"room"?}`, time from
//! Redis `TIME` (ms).

/// The user side of a connection count, with its webhook transition: the
/// [`super::registry::COUNT`] of `{p}:user:{user}` (field = node); with
/// "=N" the absolute count N written instead (`HSET`, or `HDEL` when 0: a
/// retry after a failed delta, so the transition is still decided here,
/// once); with "drop" the removal of the node's field (a reaper).
///
/// The offline marker `{p}:webhook-offline:{user}` is a hash: `p` = "ID
/// TIME", the user's last `user.offline` not yet decided; `s:ID` = 1 for each
/// one decided to be sent. When the user's hash goes from empty to not, a
/// pending offline is decided here: back within the offline delay, it is
/// dropped (no `s:` field) and no `user.online` is queued (a reconnect sends
/// neither); back later, it is marked sent and the `user.online` queued. So
/// the decision never depends on when the worker looks, and online and
/// offline alternate. When the hash goes empty: a `user.offline`, and `p`.
///
/// `KEYS[1]` = `{p}:user:{user}`, `KEYS[2]` = `{p}:webhook-offline:{user}`,
/// `KEYS[3]` = `{p}:webhook-user-outbox:{user}`. `ARGV` = node, delta, "=N"
/// or "drop", user, event id, flags, marker ttl ms, offline delay ms. Returns
/// the outbox's length. O(1) (HLEN is O(1); the outbox and the marker hold
/// a few entries).
pub const USER_COUNT: &str = r#"
local before = redis.call('HLEN', KEYS[1])
if ARGV[2] == 'drop' then
  redis.call('HDEL', KEYS[1], ARGV[1])
elseif string.sub(ARGV[2], 1, 1) == '=' then
  local n = tonumber(string.sub(ARGV[2], 2))
  if n > 0 then redis.call('HSET', KEYS[1], ARGV[1], n) else redis.call('HDEL', KEYS[1], ARGV[1]) end
else
  local n = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
  if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
end
local after = redis.call('HLEN', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if before == 0 and after > 0 then
  local announce = true
  local p = redis.call('HGET', KEYS[2], 'p')
  if p then
    redis.call('HDEL', KEYS[2], 'p')
    local sp = string.find(p, ' ', 1, true)
    local id = string.sub(p, 1, sp - 1)
    if now - tonumber(string.sub(p, sp + 1)) < tonumber(ARGV[7]) then
      announce = false
    else
      redis.call('HSET', KEYS[2], 's:' .. id, 1)
      redis.call('PEXPIRE', KEYS[2], ARGV[6])
    end
  end
  if announce and string.sub(ARGV[5], 1, 1) == '1' then
    redis.call('RPUSH', KEYS[3], cjson.encode({id = ARGV[4], type = 'user.online', time = now, user = ARGV[3]}))
  end
elseif before > 0 and after == 0 and string.sub(ARGV[5], 2, 2) == '1' then
  redis.call('HSET', KEYS[2], 'p', ARGV[4] .. ' ' .. now)
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
  redis.call('RPUSH', KEYS[3], cjson.encode({id = ARGV[4], type = 'user.offline', time = now, user = ARGV[3]}))
end
return redis.call('LLEN', KEYS[3])
"#;

/// [`super::registry::ROOM_JOIN`] with its transitions: `room.occupied`
/// (the room's first member) then `member.joined` (the user's first node).
///
/// `KEYS[1]` = `{p}:members:{room}`, `KEYS[2]` = `{p}:member-nodes:{room}`,
/// `KEYS[3]` = `{p}:webhook-room-outbox:{room}`. `ARGV` = user, "node user",
/// room, member event id, room event id, flags. Returns {1 when the user
/// joined cluster-wide, the outbox's length}. O(1).
pub const ROOM_JOIN: &str = r#"
local joined = 0
if redis.call('SADD', KEYS[2], ARGV[2]) == 1 then
  local before = redis.call('HLEN', KEYS[1])
  if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1 then
    joined = 1
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    if before == 0 and string.sub(ARGV[6], 3, 3) == '1' then
      redis.call('RPUSH', KEYS[3], cjson.encode({id = ARGV[5], type = 'room.occupied', time = now, room = ARGV[3]}))
    end
    if string.sub(ARGV[6], 5, 5) == '1' then
      redis.call('RPUSH', KEYS[3], cjson.encode({id = ARGV[4], type = 'member.joined', time = now, room = ARGV[3], user = ARGV[1]}))
    end
  end
end
return {joined, redis.call('LLEN', KEYS[3])}
"#;

/// [`super::registry::ROOM_LEAVE`] with its transitions: `member.left`
/// (the user's last node) then `room.vacated` (the room's last member).
/// Idempotent per (node, user), so a reaper may repeat it.
///
/// `KEYS` as [`ROOM_JOIN`]; `ARGV` = user, "node user", room, member event
/// id, room event id, flags. Returns {1 when the user left cluster-wide,
/// the outbox's length}. O(1).
pub const ROOM_LEAVE: &str = r#"
local left = 0
if redis.call('SREM', KEYS[2], ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[1])
    left = 1
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    if string.sub(ARGV[6], 6, 6) == '1' then
      redis.call('RPUSH', KEYS[3], cjson.encode({id = ARGV[4], type = 'member.left', time = now, room = ARGV[3], user = ARGV[1]}))
    end
    if redis.call('HLEN', KEYS[1]) == 0 and string.sub(ARGV[6], 4, 4) == '1' then
      redis.call('RPUSH', KEYS[3], cjson.encode({id = ARGV[5], type = 'room.vacated', time = now, room = ARGV[3]}))
    end
  end
end
return {left, redis.call('LLEN', KEYS[3])}
"#;

/// After a move to `{p}:events`: removes the moved events from the outbox
/// (by value, so two movers of one outbox never remove each other's).
///
/// `KEYS[1]` = an outbox. `ARGV` = the moved events. Returns what is left.
/// O(k × L): k moved, L the outbox's length (a few).
pub const OUTBOX_REMOVE: &str = r#"
for i = 1, #ARGV do redis.call('LREM', KEYS[1], 1, ARGV[i]) end
return redis.call('LLEN', KEYS[1])
"#;

/// Whether a held `user.offline`, its delay over, is to be sent: yes when
/// [`USER_COUNT`] marked it sent (the user came back after the delay), or
/// when it is still the pending one (the user did not come back: it is
/// marked sent now). Asking again answers the same (a redelivery after a
/// crash). A pending one whose user is registered anyway (a resync writes
/// the registry without this script) is dropped.
///
/// `KEYS[1]` = `{p}:webhook-offline:{user}`, `KEYS[2]` = `{p}:user:{user}`.
/// `ARGV` = event id, marker ttl ms. Returns 1 to send, 0 to drop. O(1).
pub const OFFLINE_DUE: &str = r#"
if redis.call('HEXISTS', KEYS[1], 's:' .. ARGV[1]) == 1 then return 1 end
local p = redis.call('HGET', KEYS[1], 'p')
if p and string.sub(p, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  redis.call('HDEL', KEYS[1], 'p')
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  redis.call('HSET', KEYS[1], 's:' .. ARGV[1], 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

/// Takes or keeps the reader lease.
///
/// `KEYS[1]` = `{p}:webhook-reader`. `ARGV` = node, lease ms. Returns 1
/// while this node holds it. O(1).
pub const READER_LEASE: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

/// Gives the reader lease up (a clean exit).
///
/// `KEYS[1]` = `{p}:webhook-reader`. `ARGV` = node. O(1).
pub const READER_RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"#;

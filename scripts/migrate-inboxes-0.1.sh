#!/usr/bin/env bash
# Moves direct-message inboxes written by wsgate 0.1 to the 0.2 key names.
#
# 0.1 kept a user's inbox at PREFIX:inbox:USER (a list of "ID|msgpack") and
# its expiry in the zset PREFIX:inbox-expiry. 0.2 hash-tags the user and
# splits the inbox (docs/architecture.md, "Key scheme"): the list
# PREFIX:inbox:{USER} keeps the order ("SEQ ID"), the hash
# PREFIX:inbox-msgs:{USER} the messages (ID -> "SENDER|msgpack"), the hash
# PREFIX:inbox-meta:{USER} the quota counts (bytes, s:SENDER, seq), and the
# expiry sits beside them (PREFIX:inbox-expiry:{USER}), indexed in
# PREFIX:inbox-expiries. The sender of a moved message is its "from" (read
# from the msgpack with Redis's cmsgpack). Everything else 0.1 kept
# (registry, presence, node list) is rebuilt by 0.2 nodes on start.
#
#   scripts/migrate-inboxes-0.1.sh [REDIS_URL] [PREFIX] [INBOX_TTL_MS]
#
# Defaults: redis://127.0.0.1:6379, wsgate, 604800000 (7 d: the expiry given
# to an inbox 0.1 had no expiry for). Run it against the 0.1 primary (single
# Redis or the Sentinel primary; 0.1 did not run on Redis Cluster) after the
# last 0.1 node stopped, before or after 0.2 nodes started: an inbox that 0.2
# already wrote to keeps its new messages after the moved ones, and each move
# is one atomic script, so running it twice is harmless. Prints how many
# inboxes and messages it moved.
set -euo pipefail

URL=${1:-redis://127.0.0.1:6379}
PREFIX=${2:-wsgate}
TTL_MS=${3:-604800000}

command -v redis-cli >/dev/null || { echo "redis-cli not found (apt-get install redis-tools)" >&2; exit 1; }

# KEYS: old inbox, new list, new messages hash, new meta hash, 0.1 expiry
# zset, new expiry key, new index. ARGV: user, ttl ms for an inbox without a
# 0.1 expiry, safety ms. Returns the number of messages moved. O(N) in the
# inbox, once.
read -r -d '' MOVE <<'LUA' || true
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local old = redis.call('LRANGE', KEYS[1], 0, -1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Moved messages go before any that 0.2 stored already: their sequences
-- end just below the first one there.
local first = redis.call('LINDEX', KEYS[2], 0)
local base = now * 1000
if first then base = tonumber(string.sub(first, 1, string.find(first, ' ', 1, true) - 1)) - #old - 1 end
local moved = 0
for i = #old, 1, -1 do
  local e = old[i]
  local bar = string.find(e, '|', 1, true)
  if bar then
    local id = string.sub(e, 1, bar - 1)
    local body = string.sub(e, bar + 1)
    local ok, m = pcall(cmsgpack.unpack, body)
    local from = (ok and type(m) == 'table' and m['from']) or 'server'
    if redis.call('HEXISTS', KEYS[3], id) == 0 then
      local v = from .. '|' .. body
      redis.call('HSET', KEYS[3], id, v)
      redis.call('LPUSH', KEYS[2], string.format('%.0f', base + i) .. ' ' .. id)
      redis.call('HINCRBY', KEYS[4], 'bytes', #v)
      redis.call('HINCRBY', KEYS[4], 's:' .. from, 1)
      moved = moved + 1
    end
  end
end
if not redis.call('HGET', KEYS[4], 'seq') then
  redis.call('HSET', KEYS[4], 'seq', string.format('%.0f', base + #old))
end
redis.call('DEL', KEYS[1])
local at = tonumber(redis.call('ZSCORE', KEYS[5], ARGV[1]) or (now + tonumber(ARGV[2])))
local cur = redis.call('GET', KEYS[6])
if cur and tonumber(cur) > at then at = tonumber(cur) end
local px = math.max(at - now, 1) + tonumber(ARGV[3])
redis.call('SET', KEYS[6], at, 'PX', px)
redis.call('PEXPIRE', KEYS[2], px)
redis.call('PEXPIRE', KEYS[3], px)
redis.call('PEXPIRE', KEYS[4], px)
redis.call('ZADD', KEYS[7], at, ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return moved
LUA

inboxes=0
messages=0
while IFS= read -r key; do
  [ -n "$key" ] || continue
  user=${key#"$PREFIX:inbox:"}
  case $user in *'{'*|*'}'*) continue ;; esac
  n=$(redis-cli -u "$URL" --no-raw EVAL "$MOVE" 7 \
        "$key" "$PREFIX:inbox:{$user}" "$PREFIX:inbox-msgs:{$user}" \
        "$PREFIX:inbox-meta:{$user}" "$PREFIX:inbox-expiry" \
        "$PREFIX:inbox-expiry:{$user}" "$PREFIX:inbox-expiries" \
        "$user" "$TTL_MS" 3600000 | tr -dc '0-9')
  inboxes=$((inboxes + 1))
  messages=$((messages + ${n:-0}))
done < <(redis-cli -u "$URL" --scan --pattern "$PREFIX:inbox:*")

echo "moved $inboxes inboxes, $messages messages"

#!/usr/bin/env bash
# Moves direct-message inboxes written by wsgate 0.1 to the 0.2 key names.
#
# 0.1 kept a user's inbox at PREFIX:inbox:USER and its expiry in the zset
# PREFIX:inbox-expiry; 0.2 hash-tags the user (PREFIX:inbox:{USER}), keeps the
# expiry beside it (PREFIX:inbox-expiry:{USER}) and indexes it in
# PREFIX:inbox-expiries (docs/architecture.md, "Key scheme"). Everything else
# 0.1 kept (registry, presence, node list) is rebuilt by 0.2 nodes on start.
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

# KEYS: old inbox, new inbox, 0.1 expiry zset, new expiry key, new index.
# ARGV: user, ttl ms for an inbox without a 0.1 expiry, safety ms.
# Returns the number of messages moved.
read -r -d '' MOVE <<'LUA' || true
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local old = redis.call('LRANGE', KEYS[1], 0, -1)
if redis.call('EXISTS', KEYS[2]) == 1 then
  for i = #old, 1, -1 do redis.call('LPUSH', KEYS[2], old[i]) end
  redis.call('DEL', KEYS[1])
else
  redis.call('RENAME', KEYS[1], KEYS[2])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = tonumber(redis.call('ZSCORE', KEYS[3], ARGV[1]) or (now + tonumber(ARGV[2])))
local cur = redis.call('GET', KEYS[4])
if cur and tonumber(cur) > at then at = tonumber(cur) end
local px = math.max(at - now, 1) + tonumber(ARGV[3])
redis.call('SET', KEYS[4], at, 'PX', px)
redis.call('PEXPIRE', KEYS[2], px)
redis.call('ZADD', KEYS[5], at, ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return #old
LUA

inboxes=0
messages=0
while IFS= read -r key; do
  [ -n "$key" ] || continue
  user=${key#"$PREFIX:inbox:"}
  case $user in *'{'*|*'}'*) continue ;; esac
  n=$(redis-cli -u "$URL" --no-raw EVAL "$MOVE" 5 \
        "$key" "$PREFIX:inbox:{$user}" "$PREFIX:inbox-expiry" \
        "$PREFIX:inbox-expiry:{$user}" "$PREFIX:inbox-expiries" \
        "$user" "$TTL_MS" 3600000 | tr -dc '0-9')
  inboxes=$((inboxes + 1))
  messages=$((messages + ${n:-0}))
done < <(redis-cli -u "$URL" --scan --pattern "$PREFIX:inbox:*")

echo "moved $inboxes inboxes, $messages messages"

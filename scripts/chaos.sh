#!/usr/bin/env bash
# Chaos: Redis with AOF (appendfsync always) + 3 nodes on 127.0.0.1; pairs of
# clients stream direct messages sender -> recipient, spread over the nodes,
# reconnecting on close (crates/wsgate/examples/chaos.rs). Meanwhile:
#   - every KILL_EVERY seconds a random node is killed with SIGKILL and
#     restarted (same id and ports) RESTART_AFTER seconds later;
#   - once, at 1/2 of the run, Redis is killed with SIGKILL and restarted (it
#     reloads its AOF);
#   - once, at 3/4 of the run, a node is drained (SIGTERM: 1012 to its
#     clients, paced over --drain-timeout), then restarted.
# Then senders stop, and the checker accounts for every direct message whose
# sender got `ok`: all delivered, in order per sender. Exit status is the
# checker's.
#
#   scripts/chaos.sh                       # 4 minutes
#   DURATION=120 KILL_EVERY=15 scripts/chaos.sh
#
# Only 127.0.0.1. Not part of CI. Logs under $OUT_DIR (default target/chaos).
set -euo pipefail

# The whole script is one function, read before it runs: editing the file
# during a long run cannot change what the running shell executes.
main() {

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${DURATION:-240}"
KILL_EVERY="${KILL_EVERY:-20}"
RESTART_AFTER="${RESTART_AFTER:-2}"
PAIRS="${PAIRS:-30}"
RATE="${RATE:-10}"
BASE_PORT="${BASE_PORT:-24080}"
OUT_DIR="${OUT_DIR:-$ROOT/target/chaos}"
SECRET="chaos-secret"
REDIS_PORT=$((BASE_PORT + 99))

command -v redis-server >/dev/null || { echo "chaos: redis-server is required" >&2; exit 1; }
command -v curl >/dev/null || { echo "chaos: curl is required" >&2; exit 1; }
rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR/redis"
cd "$ROOT"
# SKIP_BUILD=1 uses the binaries already in target/release.
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -p wsgate --bin wsgate --example chaos
BIN="$ROOT/target/release/wsgate"
CHECKER="$ROOT/target/release/examples/chaos"

start_ts=$(date +%s)
log() { echo "chaos: t=$(( $(date +%s) - start_ts ))s $*" | tee -a "$OUT_DIR/events.log"; }

redis_pid=""
start_redis() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$OUT_DIR/redis" \
        --appendonly yes --appendfsync always --save '' >>"$OUT_DIR/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 1 50); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "chaos: redis did not start" >&2
    return 1
}

declare -ga node_pid
start_node() {
    local i=$1
    "$BIN" --listen "127.0.0.1:$((BASE_PORT + i))" --admin-listen "127.0.0.1:$((BASE_PORT + 50 + i))" \
        --node-id "chaos-$i" --redis-url "redis://127.0.0.1:$REDIS_PORT" --jwt-secret "$SECRET" \
        --api-key chaos --node-ttl 3s --drain-timeout 3s --ping-interval 5s --pong-timeout 5s \
        --inbox-max 100000 --log-level info >>"$OUT_DIR/node-$i.log" 2>&1 &
    node_pid[i]=$!
}
wait_ready() {
    local i=$1
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$((BASE_PORT + 50 + i))/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "node $i not ready after 10s"
}

checker_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [ -n "$checker_pid" ]; then kill "$checker_pid" 2>/dev/null || true; fi
    for p in "${node_pid[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ -n "$redis_pid" ]; then kill -9 "$redis_pid" 2>/dev/null || true; fi
    wait 2>/dev/null || true
}
trap cleanup EXIT

start_redis
for i in 0 1 2; do start_node "$i"; done
for i in 0 1 2; do wait_ready "$i"; done
log "redis :$REDIS_PORT and nodes :$BASE_PORT-:$((BASE_PORT + 2)) ready"

"$CHECKER" --node "ws://127.0.0.1:$BASE_PORT/ws" --node "ws://127.0.0.1:$((BASE_PORT + 1))/ws" \
    --node "ws://127.0.0.1:$((BASE_PORT + 2))/ws" --secret "$SECRET" --pairs "$PAIRS" \
    --rate "$RATE" --duration "${DURATION}s" --settle 120s \
    >"$OUT_DIR/checker.out" 2>"$OUT_DIR/checker.log" &
checker_pid=$!

redis_done=0
drain_done=0
next_kill=$KILL_EVERY
while :; do
    sleep 1
    t=$(( $(date +%s) - start_ts ))
    [ "$t" -ge "$DURATION" ] && break
    if [ "$redis_done" = 0 ] && [ "$t" -ge $((DURATION / 2)) ]; then
        log "kill -9 redis"
        kill -9 "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
        sleep "$RESTART_AFTER"
        start_redis
        log "redis restarted (AOF reloaded)"
        redis_done=1
        continue
    fi
    if [ "$drain_done" = 0 ] && [ "$t" -ge $((DURATION * 3 / 4)) ]; then
        i=$((RANDOM % 3))
        log "drain node $i (SIGTERM)"
        kill -TERM "${node_pid[$i]}"
        wait "${node_pid[$i]}" 2>/dev/null || true
        log "node $i exited after its drain"
        start_node "$i"; wait_ready "$i"
        log "node $i restarted"
        drain_done=1
        continue
    fi
    if [ "$t" -ge "$next_kill" ]; then
        i=$((RANDOM % 3))
        log "kill -9 node $i"
        kill -9 "${node_pid[$i]}"; wait "${node_pid[$i]}" 2>/dev/null || true
        sleep "$RESTART_AFTER"
        start_node "$i"; wait_ready "$i"
        log "node $i restarted"
        next_kill=$((t + KILL_EVERY))
    fi
done
log "chaos over; waiting for the checker to settle"
status=0
wait "$checker_pid" || status=$?
checker_pid=""
cat "$OUT_DIR/checker.out"
log "checker exit status $status"
exit "$status"
}

main "$@"

#!/usr/bin/env bash
# Benchmark driver: the same scenarios against wsgate, the baseline peers and the
# ideal fan-out server, one system at a time, then docs/benchmarks.md + charts.
#
#   loadtest/bench.sh                 # everything, defaults below
#   QUICK=1 loadtest/bench.sh         # tiny sizes, to check the script works
#   SYSTEMS="wsgate-1 ideal" loadtest/bench.sh
#
# Systems (SYSTEMS, space separated):
#   wsgate-1 wsgate-3            wsgate standalone / 3 nodes over Redis
#   ideal                        wsgate-loadtest ideal-server
#   node-1 node-3 go-1 go-3 sio-1 sio-3   the peers in ../shared/peers (PEERS_DIR)
# Scenarios (SCENARIOS, space separated; default all): idle, connect,
# broadcast at BC_RATE, broadcast-max (flat out: 2 senders, 16 unanswered
# each), broadcast-msgpack, rooms, direct (these three wsgate only),
# large-room (LR_MEMBERS join one room, LR_SENDERS publish LR_RATE msgs/s;
# the peers have no rooms: for them it is the plain broadcast to LR_MEMBERS)
# and ramp (broadcast to RAMP_CONNS from 2 senders, offered rate RAMP_START
# x RAMP_FACTOR per step of RAMP_STEP, at most RAMP_STEPS steps, until loss,
# p99 > 250 ms or accepted < 97 % of offered).
# Knobs (environment): CONNS (idle and connect, default 10000), BC_CONNS
# (broadcast receivers, 2000), BC_RATE (broadcast msgs/s, 200), ROOMS (200),
# MEMBERS (10), ROOM_RATE (2000), PAIRS (500), DIRECT_RATE (2000), DURATION
# (10s), LR_MEMBERS (10000), LR_SENDERS (1), LR_RATE (20), RAMP_CONNS (2000),
# RAMP_START (5), RAMP_FACTOR (1.5), RAMP_STEP (3s), RAMP_STEPS (12), OUT
# (test-artifacts/bench), MD (docs/benchmarks.md: the part above its
# "end of the generated report" line is rewritten, the rest kept), CHARTS
# (docs/benchmarks), PROFILE (release; `debug` skips the release build),
# WSGATE_BIN / LOADTEST_BIN (use these binaries).
#
# Every server is bound to 127.0.0.1 on free ports; each runs with the
# open-file limit of this shell (raise `ulimit -n` for more than ~19k
# connections per server process). Only processes this script started are
# stopped, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [[ -n "${QUICK:-}" ]]; then
  : "${CONNS:=500}" "${BC_CONNS:=100}" "${BC_RATE:=50}" "${ROOMS:=10}" "${MEMBERS:=5}"
  : "${ROOM_RATE:=100}" "${PAIRS:=20}" "${DIRECT_RATE:=100}" "${DURATION:=2s}"
  : "${LR_MEMBERS:=200}" "${RAMP_CONNS:=50}" "${RAMP_START:=50}" "${RAMP_STEP:=1s}" "${RAMP_STEPS:=3}"
fi
CONNS=${CONNS:-10000}
BC_CONNS=${BC_CONNS:-2000}
BC_RATE=${BC_RATE:-200}
ROOMS=${ROOMS:-200}
MEMBERS=${MEMBERS:-10}
ROOM_RATE=${ROOM_RATE:-2000}
PAIRS=${PAIRS:-500}
DIRECT_RATE=${DIRECT_RATE:-2000}
DURATION=${DURATION:-10s}
LR_MEMBERS=${LR_MEMBERS:-10000}
LR_SENDERS=${LR_SENDERS:-1}
LR_RATE=${LR_RATE:-20}
RAMP_CONNS=${RAMP_CONNS:-2000}
RAMP_START=${RAMP_START:-5}
RAMP_FACTOR=${RAMP_FACTOR:-1.5}
RAMP_STEP=${RAMP_STEP:-3s}
RAMP_STEPS=${RAMP_STEPS:-12}
SCENARIOS=${SCENARIOS:-"idle connect broadcast broadcast-max broadcast-msgpack rooms direct large-room ramp"}
OUT=${OUT:-test-artifacts/bench}
MD=${MD:-docs/benchmarks.md}
CHARTS=${CHARTS:-docs/benchmarks}
# The peers: ../shared/peers beside the checkout (or beside its parent, for
# a git worktree under wt/).
if [[ -z "${PEERS_DIR:-}" ]]; then
  PEERS_DIR=$(cd "$repo/.." && pwd)/shared/peers
  [[ -d $PEERS_DIR ]] || PEERS_DIR=$(cd "$repo/../.." && pwd)/shared/peers
fi
SYSTEMS=${SYSTEMS:-"wsgate-1 wsgate-3 ideal node-1 node-3 go-1 go-3 sio-1 sio-3"}

PROFILE=${PROFILE:-release}
if [[ -n "${WSGATE_BIN:-}" && -n "${LOADTEST_BIN:-}" ]]; then
  bin=""
elif [[ $PROFILE == release ]]; then
  cargo build --release -q -p wsgate -p wsgate-loadtest
  bin=$repo/target/release
else
  cargo build -q -p wsgate -p wsgate-loadtest
  bin=$repo/target/debug
fi
wsgate=${WSGATE_BIN:-$bin/wsgate}
lt=${LOADTEST_BIN:-$bin/wsgate-loadtest}
mkdir -p "$OUT" "$OUT/logs"
rm -f "$OUT"/*.json
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap cleanup EXIT

# free_port: a free port below the ephemeral range (lib.sh).
# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh

# wait_http URL: until it answers (any status), at most 60 s (peers may npm install).
wait_http() {
  for _ in $(seq 1 600); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "not up: $1" >&2
  return 1
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  >"$OUT/logs/redis.log" 2>&1 &
redis_pid=$!
trap 'cleanup; kill $redis_pid 2>/dev/null || true' EXIT
redis_url="redis://127.0.0.1:$redis_port"
for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

urls=()
server_pids=()

start_wsgate() { # nodes
  local n=$1 i port admin
  for ((i = 0; i < n; i++)); do
    port=$(free_port); admin=$(free_port)
    local redis=()
    ((n > 1)) && redis=(--redis-url "$redis_url" --redis-prefix "bench$$")
    "$wsgate" --allow-anonymous --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
      --node-id "bench-$i" --rate-limit 1000000 --max-connections-per-ip 1000000 --drain-timeout 1s \
      --log-format json "${redis[@]}" >"$OUT/logs/wsgate-$n-$i.log" 2>&1 &
    pids+=($!); server_pids+=($!)
    wait_http "http://127.0.0.1:$admin/readyz"
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "wsgate exited; see $OUT/logs" >&2; exit 1; }
    urls+=("ws://127.0.0.1:$port/ws")
  done
}

start_peer() { # peer instances
  local peer=$1 n=$2 i port
  [[ -x "$PEERS_DIR/run" ]] || { echo "no peers at $PEERS_DIR" >&2; return 1; }
  for ((i = 0; i < n; i++)); do
    port=$(free_port)
    local redis=""
    ((n > 1)) && redis=$redis_url
    "$PEERS_DIR/run" "$peer" "$port" $redis >"$OUT/logs/$peer-$n-$i.log" 2>&1 &
    pids+=($!); server_pids+=($!)
    wait_http "http://127.0.0.1:$port/"
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$peer exited; see $OUT/logs" >&2; return 1; }
    urls+=("ws://127.0.0.1:$port/ws")
  done
}

start_ideal() {
  local port
  port=$(free_port)
  "$lt" ideal-server --listen "127.0.0.1:$port" >"$OUT/logs/ideal.log" 2>&1 &
  pids+=($!); server_pids+=($!)
  for _ in $(seq 1 100); do grep -q listening "$OUT/logs/ideal.log" && break; sleep 0.1; done
  urls+=("ws://127.0.0.1:$port/ws")
}

# run SYSTEM TARGET SCENARIO ARGS... (skipped unless SCENARIO is in SCENARIOS)
run() {
  local sys=$1 target=$2 name=$3; shift 3
  [[ " $SCENARIOS " == *" $name "* ]] || return 0
  local duration=$DURATION
  [[ $name == ramp ]] && duration=$RAMP_STEP
  local args=(--target "$target" --label "$sys" --duration "$duration" --quiet)
  for u in "${urls[@]}"; do args+=(--url "$u"); done
  for p in "${server_pids[@]}"; do args+=(--server-pid "$p"); done
  echo "== $sys $name" >&2
  "$lt" "$@" "${args[@]}" --out "$OUT/$sys-$name.json" || echo "   ($sys $name failed)" >&2
}

scenarios() { # SYSTEM TARGET
  local sys=$1 target=$2
  run "$sys" "$target" idle idle -n "$CONNS" --settle 3s
  run "$sys" "$target" connect connect -n "$CONNS"
  run "$sys" "$target" broadcast broadcast -n "$BC_CONNS" --senders 1 --rate "$BC_RATE" --drain 10s
  run "$sys" "$target" broadcast-max broadcast -n "$BC_CONNS" --senders 2 --rate 0 --window 16 --drain 10s
  if [[ $target == wsgate ]]; then
    run "$sys" "$target" broadcast-msgpack broadcast --codec msgpack -n "$BC_CONNS" --senders 1 \
      --rate "$BC_RATE" --drain 10s
    run "$sys" "$target" rooms rooms --rooms "$ROOMS" --members "$MEMBERS" --rate "$ROOM_RATE" --drain 10s
    run "$sys" "$target" direct direct --pairs "$PAIRS" --rate "$DIRECT_RATE" --drain 10s
  fi
  run "$sys" "$target" large-room large-room --members "$LR_MEMBERS" --senders "$LR_SENDERS" \
    --rate "$LR_RATE" --drain 10s
  run "$sys" "$target" ramp ramp -n "$RAMP_CONNS" --senders 2 --rate "$RAMP_START" \
    --factor "$RAMP_FACTOR" --max-steps "$RAMP_STEPS" --drain 3s
}

for sys in $SYSTEMS; do
  urls=(); server_pids=()
  case $sys in
    wsgate-1) start_wsgate 1; target=wsgate ;;
    wsgate-3) start_wsgate 3; target=wsgate ;;
    ideal) start_ideal; target=raw ;;
    node-1) start_peer node-ws-redis 1 || continue; target=raw ;;
    node-3) start_peer node-ws-redis 3 || continue; target=raw ;;
    go-1) start_peer go-gorilla-redis 1 || continue; target=raw ;;
    go-3) start_peer go-gorilla-redis 3 || continue; target=raw ;;
    sio-1) start_peer socketio-redis 1 || continue; target=socketio ;;
    sio-3) start_peer socketio-redis 3 || continue; target=socketio ;;
    *) echo "unknown system $sys" >&2; continue ;;
  esac
  scenarios "$sys" "$target"
  cleanup
done

note=$OUT/run-note.md
{
  echo "## This run"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB," \
    "open-file limit $(ulimit -n), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)," \
    "profile ${PROFILE}; load average (1, 5, 15 min) $load_start at the start," \
    "$(cut -d' ' -f1-3 /proc/loadavg) at the end."
  echo "Sizes: CONNS=$CONNS BC_CONNS=$BC_CONNS BC_RATE=$BC_RATE ROOMS=$ROOMS MEMBERS=$MEMBERS" \
    "ROOM_RATE=$ROOM_RATE PAIRS=$PAIRS DIRECT_RATE=$DIRECT_RATE DURATION=$DURATION" \
    "LR_MEMBERS=$LR_MEMBERS LR_SENDERS=$LR_SENDERS LR_RATE=$LR_RATE RAMP_CONNS=$RAMP_CONNS" \
    "RAMP_START=$RAMP_START RAMP_FACTOR=$RAMP_FACTOR RAMP_STEP=$RAMP_STEP RAMP_STEPS=$RAMP_STEPS."
  echo "Systems: $SYSTEMS. Scenarios: $SCENARIOS."
  echo "Raw results: \`$OUT/*.json\` (one per system and scenario)."
} >"$note"
"$lt" report "$OUT"/*.json --markdown "$MD" --charts "$CHARTS" --note "$note"
echo "wrote $MD and charts in $CHARTS" >&2

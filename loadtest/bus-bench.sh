#!/usr/bin/env bash
# The bus in numbers (issue 12): what each direct, room and broadcast message
# costs Redis (commands by name, bytes in/out, CPU), for 1, 3 and 6 wsgate
# nodes on one Redis and on a 3-shard Redis Cluster, and the highest rate each
# setup sustains with no loss. Regenerates the tables in docs/benchmarks.md
# (between the bus-bench markers).
#
#   loadtest/bus-bench.sh
#   QUICK=1 loadtest/bus-bench.sh        # two small steps each, to check the script
#   WSGATE_BIN=... LOADTEST_BIN=... loadtest/bus-bench.sh   # use these binaries
#
# Everything runs on 127.0.0.1, on free ports (never 6379): one redis-server,
# then three `--cluster-enabled yes` primaries formed with `redis-cli --cluster
# create --cluster-replicas 0` (no replicas: a replica would add the
# replication stream to every primary's output bytes and compete for the same
# cores). For each Redis setup and node count (NODES, default "1 3 6") the
# wsgate nodes start with `--redis-mode single|cluster`, the load generator
# spreads connections round-robin over their URLs (a direct pair's two sides
# on different nodes), and runs: idle (background), then a ramp per scenario.
# The load generator's --barrier-hook reads every Redis's INFO at its two
# barriers, so Redis counters cover exactly the measured window. Knobs
# (environment): PAIRS (direct pairs, 100), ROOMS (40) x MEMBERS (10),
# BC_CONNS (broadcast receivers, 400), *_STEPS (offered msgs/s per step; the
# first, moderate, step gives the per-message cost table), DURATION (send
# time per step, 4s), MAX_P99_MS (250), OUT (test-artifacts/bus-bench), MD
# (docs/benchmarks.md; empty = do not touch the docs).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [[ -n "${QUICK:-}" ]]; then
  : "${DIRECT_STEPS:=200 1000}" "${ROOM_STEPS:=100 500}" "${BC_STEPS:=10 50}"
  : "${PAIRS:=20}" "${ROOMS:=10}" "${MEMBERS:=5}" "${BC_CONNS:=50}" "${DURATION:=2s}"
  : "${NODES:=1 3}" "${MD:=}"
fi
DIRECT_STEPS=${DIRECT_STEPS:-500 1000 1500 2000 3000}
ROOM_STEPS=${ROOM_STEPS:-250 500 750 1000 1500}
BC_STEPS=${BC_STEPS:-20 40 60 100 150}
PAIRS=${PAIRS:-100}
ROOMS=${ROOMS:-40}
MEMBERS=${MEMBERS:-10}
BC_CONNS=${BC_CONNS:-400}
DURATION=${DURATION:-4s}
NODES=${NODES:-1 3 6}
REDIS_SETUPS=${REDIS_SETUPS:-single cluster}
export MAX_P99_MS=${MAX_P99_MS:-250}
OUT=${OUT:-test-artifacts/bus-bench}
MD=${MD-docs/benchmarks.md}

if [[ -n "${WSGATE_BIN:-}" && -n "${LOADTEST_BIN:-}" ]]; then
  wsgate=$WSGATE_BIN lt=$LOADTEST_BIN
else
  cargo build --release -q -p wsgate -p wsgate-loadtest
  wsgate=${WSGATE_BIN:-$repo/target/release/wsgate}
  lt=${LOADTEST_BIN:-$repo/target/release/wsgate-loadtest}
fi
helper="python3 $repo/loadtest/bus_bench.py"
mkdir -p "$OUT/logs"
rm -rf "$OUT"/*.json "$OUT"/redis-*

pids=() # wsgate nodes of the current setup
redis_pids=()
stop_nodes() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
stop_redis() {
  for p in "${redis_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${redis_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  redis_pids=()
}
trap 'stop_nodes; stop_redis' EXIT

# free_port: a free port below the ephemeral range (lib.sh).
# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh

redis_ports=()
start_redis() { # single | cluster
  local i port dir
  redis_ports=()
  local n=1 flags=()
  if [[ $1 == cluster ]]; then
    n=3
    flags=(--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000)
  fi
  for ((i = 0; i < n; i++)); do
    port=$(free_port)
    dir=$OUT/redis-$1-$i
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
      "${flags[@]}" >"$OUT/logs/redis-$1-$i.log" 2>&1 &
    redis_pids+=($!)
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis_ports+=("$port")
  done
  if [[ $1 == cluster ]]; then
    local addrs=()
    for port in "${redis_ports[@]}"; do addrs+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
      >"$OUT/logs/cluster-create.log" 2>&1
    for port in "${redis_ports[@]}"; do
      for _ in $(seq 1 100); do
        redis-cli -p "$port" cluster info | grep -q cluster_state:ok && break
        sleep 0.2
      done
    done
  fi
}

urls=()
start_nodes() { # REDIS_SETUP COUNT
  local mode=$1 n=$2 i port admin redis_url=""
  urls=()
  for port in "${redis_ports[@]}"; do redis_url+="${redis_url:+,}redis://127.0.0.1:$port"; done
  for port in "${redis_ports[@]}"; do redis-cli -p "$port" flushall >/dev/null; done
  local modeflag=() # single is the default (and binaries before #12 lack the flag)
  [[ $mode == cluster ]] && modeflag=(--redis-mode cluster)
  for ((i = 0; i < n; i++)); do
    port=$(free_port); admin=$(free_port)
    "$wsgate" --allow-anonymous --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
      --node-id "bus-$i" "${modeflag[@]}" --redis-url "$redis_url" \
      --rate-limit 1000000 --max-connections-per-ip 1000000 --drain-timeout 1s \
      --log-format json >"$OUT/logs/wsgate-$mode-$n-$i.log" 2>&1 &
    pids+=($!)
    local up=""
    for _ in $(seq 1 300); do
      curl -sf -o /dev/null "http://127.0.0.1:$admin/readyz" && { up=1; break; }
      sleep 0.1
    done
    [[ -n $up ]] || { echo "wsgate $mode $n/$i not ready; see $OUT/logs" >&2; exit 1; }
    urls+=("ws://127.0.0.1:$port/ws")
  done
}

# step NAME SCENARIO RATE ARGS...: one load-generator run, Redis INFO at its barriers.
step() {
  local name=$1 scen=$2 rate=$3; shift 3
  local base=$OUT/$name
  local args=(--label "$name" --duration "$DURATION" --quiet --workers 1
    --barrier-hook "$helper snap $base ${redis_ports[*]}" --out "$base.result.json")
  for u in "${urls[@]}"; do args+=(--url "$u"); done
  for p in "${pids[@]}"; do args+=(--server-pid "$p"); done
  echo "== $name ($(cut -d' ' -f1 /proc/loadavg))" >&2
  if [[ $scen == idle ]]; then
    "$lt" idle "$@" "${args[@]}" >>"$OUT/logs/summary.txt" 2>&1 || return 1
  else
    "$lt" "$scen" --rate "$rate" "$@" "${args[@]}" >>"$OUT/logs/summary.txt" 2>&1 || return 1
  fi
  $helper ok "$base.result.json" "$rate"
}

# ramp SETUP NODES SCENARIO "STEPS" ARGS...: up the steps until one fails.
ramp() {
  local setup=$1 n=$2 scen=$3 steps=$4 rate; shift 4
  for rate in $steps; do
    step "${setup}_${n}_${scen}_${rate}" "$scen" "$rate" "$@" || break
  done
}

{
  echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
  echo "$(free -g | awk '/Mem:/ {print $2}') GiB, load average at start $(cut -d' ' -f1-3 /proc/loadavg);"
  echo "wsgate \`$("$wsgate" --version 2>/dev/null || echo "$wsgate")\` ($wsgate), load generator $lt, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown);"
  echo "$(redis-server --version | cut -d' ' -f1-3); sizes: PAIRS=$PAIRS, ROOMS=$ROOMS x MEMBERS=$MEMBERS (1 publisher each), BC_CONNS=$BC_CONNS (2 senders), DURATION=$DURATION per step;"
  echo "steps (msgs/s): direct $DIRECT_STEPS; rooms $ROOM_STEPS; broadcast $BC_STEPS. Command: \`loadtest/bus-bench.sh\`."
} >"$OUT/meta.txt"
: >"$OUT/logs/summary.txt"

for setup in $REDIS_SETUPS; do
  start_redis "$setup"
  for n in $NODES; do
    start_nodes "$setup" "$n"
    step "${setup}_${n}_idle_0" idle 0 -n $((2 * PAIRS)) --settle 1s || true
    ramp "$setup" "$n" direct "$DIRECT_STEPS" --pairs "$PAIRS" --drain 10s
    ramp "$setup" "$n" rooms "$ROOM_STEPS" --rooms "$ROOMS" --members "$MEMBERS" --drain 10s
    ramp "$setup" "$n" broadcast "$BC_STEPS" -n "$BC_CONNS" --senders 2 --window 64 --drain 10s
    stop_nodes
  done
  stop_redis
done

if [[ -n $MD ]]; then
  $helper report "$OUT" --docs "$MD" >"$OUT/bus-bench.md"
  echo "wrote $OUT/bus-bench.md and the tables in $MD" >&2
else
  $helper report "$OUT" >"$OUT/bus-bench.md"
  echo "wrote $OUT/bus-bench.md" >&2
fi

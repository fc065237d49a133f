#!/usr/bin/env bash
# Soak: one standalone node under moderate steady
# load for a long time; samples RSS, threads, open fds, wsgate_connections and
# client-seen delivery latency every 10 s into a CSV, plots it, and checks that
# RSS and fds stay flat after warm-up.
#
#   scripts/soak.sh                         # 30 minutes, 3000 connections
#   DURATION=5m CONNS=1000 scripts/soak.sh  # a shorter run
#
# Outputs: $OUT_DIR/soak.csv (default target/soak), docs/img/soak.png, and a
# verdict line. Only 127.0.0.1 is used. Not part of CI.
set -euo pipefail

# The whole script is one function, read before it runs: editing the file
# during a long run cannot change what the running shell executes.
main() {

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${DURATION:-30m}"
CONNS="${CONNS:-3000}"
ROOMS="${ROOMS:-100}"
ROOM_RATE="${ROOM_RATE:-50}"
DIRECT_RATE="${DIRECT_RATE:-50}"
NODES=1
OUT_DIR="${OUT_DIR:-$ROOT/target/soak}"
PNG="${PNG:-$ROOT/docs/img/soak.png}"
SECRET="soak-secret"
BASE_PORT="${BASE_PORT:-23080}"

mkdir -p "$OUT_DIR" "$(dirname "$PNG")"
ulimit -n "$(ulimit -Hn)" || true

cd "$ROOT"
# SKIP_BUILD=1 uses the binaries already in target/release.
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -p wsgate --bin wsgate --example soak
BIN="$ROOT/target/release/wsgate"
LOAD="$ROOT/target/release/examples/soak"

pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

node_pids=()
admins=()
for i in $(seq 0 $((NODES - 1))); do
    "$BIN" --listen "127.0.0.1:$((BASE_PORT + i))" --admin-listen "127.0.0.1:$((BASE_PORT + 50 + i))" \
        --node-id "soak-$i" --jwt-secret "$SECRET" --api-key soak \
        --max-connections-per-ip 100000 --log-level warn \
        >"$OUT_DIR/node-$i.log" 2>&1 &
    pids+=("$!")
    node_pids+=("$!")
    admins+=("127.0.0.1:$((BASE_PORT + 50 + i))")
done
for a in "${admins[@]}"; do
    for _ in $(seq 1 100); do
        curl -fsS "http://$a/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fsS "http://$a/readyz" >/dev/null
done

load_args=(--url "ws://127.0.0.1:$BASE_PORT/ws" --secret "$SECRET" --conns "$CONNS"
    --rooms "$ROOMS" --room-rate "$ROOM_RATE" --direct-rate "$DIRECT_RATE"
    --duration "$DURATION" --out "$OUT_DIR/soak.csv")
for i in "${!node_pids[@]}"; do
    load_args+=(--pid "${node_pids[$i]}" --admin "${admins[$i]}")
done
echo "soak: $NODES node(s), $CONNS connections, $ROOM_RATE room + $DIRECT_RATE direct msgs/s, $DURATION"
echo "soak: $LOAD ${load_args[*]}"
"$LOAD" "${load_args[@]}" 2>"$OUT_DIR/load.log"

for p in "${node_pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { echo "soak: a node died during the run" >&2; exit 1; }
    curl -fsS "http://${admins[0]}/healthz" >/dev/null
done
cp "$OUT_DIR/soak.csv" "${PNG%.png}.csv"
python3 "$ROOT/scripts/soak_plot.py" "$OUT_DIR/soak.csv" "$PNG"
}

main "$@"

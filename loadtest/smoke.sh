#!/usr/bin/env bash
# One tiny run of each load-test scenario against a standalone wsgate.
#
#   loadtest/smoke.sh            # builds wsgate and wsgate-loadtest (debug) first
#   WSGATE_BIN=... LOADTEST_BIN=... loadtest/smoke.sh   # use given binaries
#
# Starts wsgate on free 127.0.0.1 ports (anonymous mode, limits raised so the
# load generator is not rate limited), runs idle, connect, broadcast (JSON and
# MessagePack), rooms, direct, large-room (one room) and a two-step ramp for
# about a second each, checks that nothing was lost (and, for large-room, that
# nobody was closed; for the ramp, that its first step passed), and stops the
# server. Results: $OUT (default test-artifacts/loadtest-smoke).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${WSGATE_BIN:-}" || -z "${LOADTEST_BIN:-}" ]]; then
  cargo build -q -p wsgate -p wsgate-loadtest
fi
wsgate=${WSGATE_BIN:-target/debug/wsgate}
lt=${LOADTEST_BIN:-target/debug/wsgate-loadtest}
out=${OUT:-test-artifacts/loadtest-smoke}
mkdir -p "$out"

# free_port: a free port below the ephemeral range (lib.sh).
# shellcheck source=loadtest/lib.sh
source loadtest/lib.sh
port=$(free_port)
admin=$(free_port)

"$wsgate" --allow-anonymous --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
  --rate-limit 100000 --max-connections-per-ip 100000 >"$out/wsgate.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 150); do
  curl -fsS "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "wsgate exited; see $out/wsgate.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$admin/readyz" >/dev/null || { echo "wsgate not ready" >&2; exit 1; }

common=(--url "ws://127.0.0.1:$port/ws" --server-pid "$pid" --quiet --label wsgate-smoke)
fail=0
run() {
  local name=$1; shift
  if ! "$lt" "$@" "${common[@]}" --out "$out/$name.json"; then
    echo "FAIL $name: wsgate-loadtest exited non-zero" >&2; fail=1; return
  fi
  local bad
  bad=$(jq -r '[(if .connections == 0 then "no connections" else empty end),
                (if (.connect_failures | length) > 0 then "connect failures \(.connect_failures)" else empty end),
                (if .lost > 0 then "lost \(.lost)" else empty end),
                (if .duplicates > 0 then "duplicates \(.duplicates)" else empty end),
                (if .scenario != "idle" and .scenario != "connect" and .accepted == 0
                 then "nothing accepted \(.rejected)" else empty end),
                (if .scenario == "large-room" and .dropped > 0 then "closed \(.closes)" else empty end),
                (if .scenario == "ramp" and ((.steps | length) == 0 or .steps[0].failed != null)
                 then "first ramp step failed: \(.steps[0].failed)" else empty end)] | join("; ")' "$out/$name.json")
  if [[ -n "$bad" ]]; then echo "FAIL $name: $bad" >&2; fail=1; fi
}

run idle idle -n 200 --settle 500ms --duration 1s
run connect connect -n 500
run broadcast-json broadcast -n 100 --senders 2 --rate 200 --duration 1s --drain 3s
run broadcast-msgpack broadcast --codec msgpack -n 100 --senders 2 --rate 200 --duration 1s --drain 3s
run rooms rooms --rooms 20 --members 5 --publishers 1 --rate 200 --duration 1s --drain 3s
run direct direct --pairs 20 --rate 200 --duration 1s --drain 3s
run large-room large-room --members 200 --senders 2 --rate 20 --duration 1s --drain 3s
run ramp ramp -n 20 --senders 2 --rate 50 --factor 2 --max-steps 2 --duration 500ms --drain 2s

if [[ $fail -ne 0 ]]; then echo "loadtest smoke: FAILED (results in $out)" >&2; exit 1; fi
echo "loadtest smoke: ok (results in $out)"

#!/usr/bin/env bash
# Issue #11 before/after figures: every hostile scenario against two wsgate
# builds, interleaved (A B A B ...) so both see the same machine load.
#
#   scripts/hostile/before-after.sh BEFORE_BIN AFTER_BIN [REPS] [SCENARIO...]
#
# SCENARIO: flood acks rss connects churn admission large proxy (default: all).
# Each run prints one line; the load average is printed beside it. About
# 12 minutes with REPS=2 on a loaded 2-core machine. Needs
# redis-server, redis-cli, nginx, haproxy and python3 (no modules). Not part
# of CI: the tests named in docs/benchmarks.md assert the behaviour.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
before="$1"; after="$2"; reps="${3:-2}"; shift 2; [ $# -gt 0 ] && shift
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(flood acks rss connects churn admission large proxy)
run() {
  local s="$1" bin="$2"
  printf 'load=%s ' "$(cut -d' ' -f1 /proc/loadavg)"
  case "$s" in
    flood|acks|rss|connects) python3 "$here/inbox.py" "$s" "$bin" ;;
    churn|large|proxy) python3 "$here/rooms.py" "$s" "$bin" ;;
    admission) python3 "$here/../keepalive-admission.py" "$bin" 20 ;;
    *) echo "unknown scenario $s" >&2; return 2 ;;
  esac
}
for s in "${scenarios[@]}"; do
  n="$reps"
  # 2,000 joins take minutes against the before binary: once per side.
  [ "$s" = large ] && n=1
  for ((i = 1; i <= n; i++)); do
    run "$s" "$before" || echo "$s $before FAILED"
    run "$s" "$after" || echo "$s $after FAILED"
  done
done

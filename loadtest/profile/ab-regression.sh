#!/usr/bin/env bash
# ab-regression.sh BEFORE_BIN AFTER_BIN [LOADTEST_BIN]: interleaved release A/B of two wsgate builds,
# driven by one load generator (issue #10, "no regression").
#
# For each of ROUNDS rounds (default 3), before then after, each on a fresh server per measurement:
#   - idle: RSS growth at each of IDLE_NS connections (default 5000 10000 19000), as the generator's
#     --server-pid reading (VmRSS before the first connection, and with all N open after --settle);
#     the slope is the least-squares fit of growth against N;
#   - broadcast: BC_N receivers (default 2000), 1 sender at BC_RATE msg/s (150) for BC_DUR s (15),
#     server CPU time (utime+stime of /proc/PID/stat over the measured phase) per delivery.
# Prints one line per run and a summary table (each round, mean, spread); raw JSON in OUT.
# Needs an open-file limit of 20,000 (19,000 connections plus the server's own files).
set -u
before=$1; after=$2; lt=${3:-$(dirname "$after")/wsgate-loadtest}
out_dir=${OUT:-/tmp/wsgate-ab}; mkdir -p "$out_dir"
rounds=${ROUNDS:-3}; idle_ns=${IDLE_NS:-5000 10000 19000}
bc_n=${BC_N:-2000}; bc_rate=${BC_RATE:-150}; bc_dur=${BC_DUR:-15}
ulimit -n 20000
results=$out_dir/results.tsv; : > "$results"

start_server() { # bin label -> sets pid port admin
  port=$((20000 + RANDOM % 10000)); admin=$((port + 1))
  "$1" --allow-anonymous --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$admin --node-id ab \
    --rate-limit 1000000 --max-connections-per-ip 1000000 --max-connections 1000000 \
    --drain-timeout 1s --log-format json > "$out_dir/server-$2.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do curl -s -o /dev/null -f http://127.0.0.1:$admin/readyz && return 0; sleep 0.1; done
  echo "server $1 did not become ready" >&2; return 1
}
stop_server() { kill -TERM "$pid"; wait "$pid" 2>/dev/null; }
load() { cut -d' ' -f1 /proc/loadavg; }

for r in $(seq 1 "$rounds"); do
  for side in before after; do
    bin=$before; [[ $side == after ]] && bin=$after
    for n in $idle_ns; do
      tag=idle-$side-r$r-$n; la=$(load)
      start_server "$bin" "$tag" || exit 1
      "$lt" idle -n "$n" --settle 3s --duration 5s --source-ips 4 --url ws://127.0.0.1:$port/ws \
        --server-pid $pid --quiet --out "$out_dir/$tag.json" > /dev/null 2>&1
      stop_server
      python3 - "$out_dir/$tag.json" "$side" "$r" "$n" "$la" >> "$results" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); s = d["server"]
print("idle", *sys.argv[2:5], d["connections"], sum(d.get("connect_failures", {}).values()), s["rss_after_kib"] - s["rss_before_kib"], sys.argv[5], sep="\t")
EOF
      tail -1 "$results"
    done
    tag=bc-$side-r$r; la=$(load)
    start_server "$bin" "$tag" || exit 1
    "$lt" broadcast -n "$bc_n" --senders 1 --rate "$bc_rate" --duration "${bc_dur}s" --drain 5s \
      --url ws://127.0.0.1:$port/ws --server-pid $pid --quiet --out "$out_dir/$tag.json" > /dev/null 2>&1
    stop_server
    python3 - "$out_dir/$tag.json" "$side" "$r" "$la" >> "$results" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); s = d["server"]
print("bc", sys.argv[2], sys.argv[3], d["delivered"], d["expected"], f'{s["cpu_s"]:.2f}', sys.argv[4], sep="\t")
EOF
    tail -1 "$results"
  done
done

python3 - "$results" <<'EOF'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
def slope(pts):  # least squares of RSS growth (KiB) against connections
    n = len(pts); mx = sum(x for x, _ in pts) / n; my = sum(y for _, y in pts) / n
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
table = {}
for side in ("before", "after"):
    rounds = sorted({int(r[2]) for r in rows if r[1] == side})
    for rd in rounds:
        idle = [(int(r[4]), int(r[6])) for r in rows if r[0] == "idle" and r[1] == side and int(r[2]) == rd]
        bc = [r for r in rows if r[0] == "bc" and r[1] == side and int(r[2]) == rd][0]
        per19 = [y / x for x, y in idle if x == max(x for x, _ in idle)][0]
        table.setdefault(side, []).append((slope(idle) if len(idle) > 1 else float("nan"), per19,
                                           float(bc[5]) / int(bc[3]) * 1e6, int(bc[3]), int(bc[4])))
print("side\tround\tidle slope KiB/conn\tKiB/conn at max N\tbroadcast CPU us/delivery\tdelivered/expected")
for side, rs in table.items():
    for i, (s, p, c, d, e) in enumerate(rs, 1):
        print(f"{side}\t{i}\t{s:.3f}\t{p:.3f}\t{c:.3f}\t{d}/{e}")
    for k, name in ((0, "slope"), (1, "at max N"), (2, "us/delivery")):
        v = [r[k] for r in rs]
        print(f"{side}\tmean {name}\t{st.mean(v):.3f}\tspread (max-min) {max(v) - min(v):.3f}")
EOF

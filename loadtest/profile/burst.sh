#!/usr/bin/env bash
# burst.sh WSGATE_BIN LOADTEST_BIN LABEL N: N idle connections, RSS before and after 40 broadcasts of 8 KiB content sent back to back
set -u
out_dir=${OUT:-/tmp/wsgate-profile}; mkdir -p "$out_dir"
ws=$1; lt=$2; label=$3; n=$4
port=$((20000 + RANDOM % 10000)); admin=$((port+1))
"$ws" --allow-anonymous --api-key k --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$admin --node-id bu \
  --rate-limit 1000000 --max-connections-per-ip 1000000 --drain-timeout 1s --log-format json >$out_dir/bu-$label.log 2>&1 &
pid=$!
for i in $(seq 1 300); do curl -s -o /dev/null http://127.0.0.1:$admin/readyz && break; sleep 0.1; done
"$lt" idle -n $n --settle 2s --duration 25s --url ws://127.0.0.1:$port/ws --quiet --out $out_dir/bu-$label.json >/dev/null 2>&1 &
lpid=$!
for i in $(seq 1 600); do c=$(curl -s http://127.0.0.1:$admin/metrics | awk '/^wsgate_connections / {print $2}'); [[ "${c:-0}" -ge $n ]] && break; sleep 0.2; done
sleep 3; r1=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
body=$(python3 -c "import json; print(json.dumps({'broadcast': True, 'content': 'x'*8000}))")
cpids=()
for i in $(seq 1 40); do curl -s -o /dev/null -H "Authorization: Bearer k" -H 'content-type: application/json' -d "$body" http://127.0.0.1:$admin/api/v1/publish & cpids+=($!); done
wait "${cpids[@]}"
sleep 6; r2=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
d=$(curl -s http://127.0.0.1:$admin/metrics | awk '/^wsgate_messages_delivered_total/ {s+=$2} END {print s}')
wait $lpid; kill -TERM $pid; wait $pid 2>/dev/null
echo "$label n=$n idle rss=$r1 KiB after burst rss=$r2 KiB (+$(( (r2-r1)*1024/n )) B/conn) delivered=$d"

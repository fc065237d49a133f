#!/usr/bin/env bash
# dhat-idle.sh WSGATE_BIN LOADTEST_BIN N OUT: heap profile of an idle server with N connections
set -eu
out_dir=${OUT:-/tmp/wsgate-profile}; mkdir -p "$out_dir"
ws=$1; lt=$2; n=$3; out=$4
port=$((20000 + RANDOM % 10000)); admin=$((port+1))
valgrind --tool=dhat --dhat-out-file=$out "$ws" --allow-anonymous --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$admin \
  --node-id dh --rate-limit 1000000 --max-connections-per-ip 1000000 --drain-timeout 1s --log-format json > $out.log 2>&1 &
pid=$!
for i in $(seq 1 600); do curl -s -o /dev/null http://127.0.0.1:$admin/readyz && break; sleep 0.2; done
"$lt" idle -n $n --settle 5s --duration 5s --url ws://127.0.0.1:$port/ws --quiet --out $out.json || true
# all connections closed now; peak is recorded in dhat
kill -TERM $pid; wait $pid || true

#!/usr/bin/env bash
# cg-bcast.sh WSGATE_BIN LOADTEST_BIN LABEL RECEIVERS RATE DURATION [CODEC]: server under callgrind during one
# broadcast run; prints total instructions (Ir) and deliveries.
set -u
out_dir=${OUT:-/tmp/wsgate-profile}; mkdir -p "$out_dir"
ws=$1; lt=$2; label=$3; n=$4; rate=$5; dur=$6; codec=${7:-json}
port=$((20000 + RANDOM % 10000)); admin=$((port+1))
out=$out_dir/cg-$label-$n-$rate-$dur-$codec
valgrind --tool=callgrind --callgrind-out-file=$out.out "$ws" --allow-anonymous --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$admin --node-id cg \
  --rate-limit 1000000 --max-connections-per-ip 1000000 --drain-timeout 1s --log-format json > $out.log 2>&1 &
pid=$!
for i in $(seq 1 600); do curl -s -o /dev/null http://127.0.0.1:$admin/readyz && break; sleep 0.2; done
"$lt" broadcast -n $n --senders 1 --rate $rate --duration ${dur}s --drain 5s --codec $codec --url ws://127.0.0.1:$port/ws --quiet --out $out.json > $out.lt 2>&1
kill -TERM $pid; wait $pid
ir=$(grep -m1 "^summary:" $out.out | awk '{print $2}')
python3 -c "import json; d=json.load(open('$out.json')); print('$label n=$n rate=$rate dur=$dur codec=$codec Ir=$ir delivered=',d['delivered'],'expected=',d['expected'],'lost=',d['lost'])"

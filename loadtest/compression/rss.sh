#!/usr/bin/env bash
# rss.sh WSGATE_BIN N on|off (docs/benchmarks.md, "Compression"): server RSS per
# connection with N idle connections joined to "lobby" (idle-conns.js; `on`
# offers permessage-deflate), the server running with --compression; then the
# RSS 3 s after 20 broadcasts of body.json to all of them, the bytes the
# server wrote meanwhile (from /proc/PID/io) and its CPU time (user + system,
# /proc/PID/stat) per delivery over the same window.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ws=$1; n=$2; ext=$3
source "$here/../lib.sh"
port=$(free_port); admin=$(free_port)
"$ws" --allow-anonymous --api-key secret --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$admin \
  --compression --max-connections-per-ip 1000000 --max-connections 1000000 --rate-limit 1000000 \
  --presence-max-members 10 --node-id rss --log-format json >/tmp/compression-rss-$ext-$n.log 2>&1 &
pid=$!
trap 'kill $pid $cpid 2>/dev/null || true' EXIT
cpid=""
for _ in $(seq 1 300); do curl -s -o /dev/null http://127.0.0.1:$admin/readyz && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
rss0=$(rss)
node "$here/idle-conns.js" $port $n $ext >/tmp/compression-rss-client-$ext-$n.log 2>&1 &
cpid=$!
c=$(wait_connections $admin $n)
sleep 4
rss_idle=$(rss)
w0=$(awk '/^wchar/ {print $2}' /proc/$pid/io)
# utime + stime in clock ticks (fields 14 and 15; the name in field 2 has no spaces).
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }
hz=$(getconf CLK_TCK)
c0=$(cpu)
for _ in $(seq 1 20); do
  curl -s -o /dev/null -H 'Authorization: Bearer secret' -d @"$here/body.json" http://127.0.0.1:$admin/api/v1/publish
done
sleep 3
rss_after=$(rss)
w1=$(awk '/^wchar/ {print $2}' /proc/$pid/io)
c1=$(cpu)
python3 -c "
n=$n; r0=$rss0; ri=$rss_idle; ra=$rss_after
print(f'deflate=$ext n={n} conns=$c idle {(ri-r0)*1024/n:.0f} B/conn, after 20 broadcasts {(ra-r0)*1024/n:.0f} B/conn, wrote {($w1-$w0)/(20*n):.0f} B per delivery, CPU {($c1-$c0)/$hz*1e6/(20*n):.2f} us per delivery')
"

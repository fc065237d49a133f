#!/usr/bin/env bash
# rss-slope.sh WSGATE_BIN LOADTEST_BIN LABEL N...: RSS of an idle server at each N (fresh server per N),
# with kernel cost (sockstat, slab) sampled while all N are open.
set -u
# shellcheck source=loadtest/lib.sh
source "$(dirname "$0")/../lib.sh"
out_dir=${OUT:-/tmp/wsgate-profile}; mkdir -p "$out_dir"
ws=$1; lt=$2; label=$3; shift 3
for n in "$@"; do
  port=$((20000 + RANDOM % 10000)); admin=$((port+1))
  "$ws" --allow-anonymous --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$admin --node-id rs \
    --rate-limit 1000000 --max-connections-per-ip 1000000 --max-connections 1000000 --drain-timeout 1s --log-format json >$out_dir/rs-$label-$n.log 2>&1 &
  pid=$!
  for i in $(seq 1 300); do curl -s -o /dev/null http://127.0.0.1:$admin/readyz && break; sleep 0.1; done
  rss0=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  tcp0=$(awk '/^TCP:/ {print $3" "$11}' /proc/net/sockstat)
  slab0=$(awk '/^(TCP|sock_inode_cache|dentry|filp|eventpoll_epi|eventpoll_pwq) / {s+=$2*$4} END {print s}' /proc/slabinfo)
  "$lt" idle -n $n --settle 3s --duration 8s --url ws://127.0.0.1:$port/ws --source-ips 4 --quiet --out $out_dir/rs-$label-$n.json >/dev/null 2>&1 &
  lpid=$!
  c=$(wait_connections $admin $n)
  sleep 4
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  tcp1=$(awk '/^TCP:/ {print $3" "$11}' /proc/net/sockstat)
  slab1=$(awk '/^(TCP|sock_inode_cache|dentry|filp|eventpoll_epi|eventpoll_pwq) / {s+=$2*$4} END {print s}' /proc/slabinfo)
  wait $lpid
  kill -TERM $pid; wait $pid 2>/dev/null
  python3 -c "
n=$n; r0=$rss0; r=$rss; t0='$tcp0'.split(); t1='$tcp1'.split(); s0=$slab0; s1=$slab1
print(f'$label n={n} conns={\"$c\"} rss0={r0} KiB rss={r} KiB per_conn={(r-r0)/n:.3f} KiB | tcp sockets +{int(t1[0])-int(t0[0])} tcp mem pages +{int(t1[1])-int(t0[1])} | slab(TCP,sock_inode,dentry,filp,epoll) +{(s1-s0)/1024:.0f} KiB = {(s1-s0)/(2*n):.0f} B/socket')
"
done

# Shell helpers shared by bench.sh, bus-bench.sh and smoke.sh (sourced).

# A free port below the ephemeral range, so no client socket of the load
# generator (127.0.0.x:ephemeral) can be sitting on it when a server binds.
free_port() {
  python3 -c '
import random, socket
while True:
    p = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()'
}

# wait_connections ADMIN_PORT N: until the server's wsgate_connections gauge
# reaches N (at most 120 s); prints the last count read.
wait_connections() {
  local c=0
  for _ in $(seq 1 600); do
    c=$(curl -s "http://127.0.0.1:$1/metrics" | awk '/^wsgate_connections / {print $2}')
    [[ "${c:-0}" -ge $2 ]] && break
    sleep 0.2
  done
  echo "${c:-0}"
}

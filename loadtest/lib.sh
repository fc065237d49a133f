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

#!/usr/bin/env python3
"""Memory of one inbox in Redis: N offline direct messages of S content bytes.

  scripts/measure-inbox-bytes.py WSGATE_BINARY N S [S ...]

Starts redis-server and one wsgate node on free loopback ports, publishes N
messages of S bytes (a JSON string of S 'x') to an offline user through the
server API (--inbox-max N, --inbox-max-bytes 64MiB so that only the count
limits), and prints the entry size and MEMORY USAGE of the user's inbox keys
(order list, message hash, counts, expiry), per message.
"""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True).stdout

binary, n, sizes = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3:]]
work = tempfile.mkdtemp()
rp = free_port(); pub = free_port(); adm = free_port()
redis = subprocess.Popen(["redis-server", "--port", str(rp), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work], stdout=subprocess.DEVNULL)
time.sleep(0.5)
node = subprocess.Popen([binary, "--redis-url", f"redis://127.0.0.1:{rp}", "--listen", f"127.0.0.1:{pub}", "--admin-listen", f"127.0.0.1:{adm}", "--allow-anonymous", "--api-key", "k", "--inbox-max", str(n), "--inbox-max-bytes", "64MiB", "--node-id", "m1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{adm}/readyz", timeout=1).status == 200: break
        except Exception: time.sleep(0.2)
    print(f"redis-server {cli(rp, '--raw', 'INFO', 'server').decode().split('redis_version:')[1].split()[0]}, "
          f"list-max-listpack-size {cli(rp, '--raw', 'CONFIG', 'GET', 'list-max-listpack-size').decode().split()[1]}")
    for size in sizes:
        user = f"u{size}"
        content = "x" * size
        for i in range(n):
            req = urllib.request.Request(f"http://127.0.0.1:{adm}/api/v1/publish", method="POST",
                data=json.dumps({"to": user, "content": content, "from": "alice"}).encode(),
                headers={"Authorization": "Bearer k", "Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=5).read()
        # Layout (crates/wsgate/src/redis/scripts/inbox.rs): the order list
        # inbox, the hash inbox-msgs (id -> entry), inbox-meta, inbox-expiry.
        msgs = f"wsgate:inbox-msgs:{{{user}}}"
        ids = [i.decode() for i in cli(rp, "--raw", "HKEYS", msgs).split()]
        raw = subprocess.run(["redis-cli", "-p", str(rp), "--raw", "HGET", msgs, ids[0]],
                             capture_output=True).stdout.rstrip(b"\n")
        keys = [k.decode() for k in cli(rp, "--raw", "KEYS", f"*{{{user}}}*").split()]
        usage = {k: int(cli(rp, "MEMORY", "USAGE", k, "SAMPLES", "0")) for k in keys}
        total = sum(usage.values())
        print(f"content {size} B: {len(ids)} messages, entry {len(raw)} B (content + {len(raw) - size - 2}); "
              f"MEMORY USAGE of the user's keys {total} B = {total / len(ids):.0f} B/message "
              f"({total / len(ids) - size:.0f} over the content): {usage}")
finally:
    node.terminate(); node.wait(); redis.terminate(); redis.wait()
    subprocess.run(["rm", "-rf", work])

#!/usr/bin/env python3
"""Issue #11 items 5, 7 and 8: rooms and proxies against one wsgate build.

    scripts/hostile/rooms.py SCENARIO BINARY      (SCENARIO: churn large proxy)

Prints one line `SCENARIO BINARY key=value ...` (figures, not assertions).
Item 6 is scripts/keepalive-admission.py.
"""
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

from common import WS, Closed, Node, Redis, Refused, free_port, knows, now_ms, pct

MESSAGES = 300


async def churn(binary):
    """Item 5: 16 join+leave/s of one-member rooms on n1 while n2 publishes
    300 room messages (20/s) to a room with a member on n1."""
    redis = Redis()
    n1, n2 = Node(binary, redis, "n1"), Node(binary, redis, "n2")
    try:
        reader = await WS.user(n1, "reader")
        await reader.request({"type": "join", "room": "main"})
        writer = await WS.user(n2, "writer")
        await writer.request({"type": "join", "room": "main"})
        churner = await WS.user(n1, "churner")
        stop = asyncio.Event()
        churned = [0]

        async def churn_loop():
            k = 0
            while not stop.is_set():
                t = time.time()
                await churner.request({"type": "join", "room": f"churn-{k}"})
                await churner.request({"type": "leave", "room": f"churn-{k}"})
                churned[0] += 1
                k += 1
                await asyncio.sleep(max(0, 1 / 16 - (time.time() - t)))

        async def publish():
            for i in range(MESSAGES):
                await writer.request({"type": "publish", "room": "main", "content": {"n": i}})
                await asyncio.sleep(1 / 20)

        task = asyncio.create_task(churn_loop())
        await asyncio.sleep(2)
        t0 = time.time()
        pub = asyncio.create_task(publish())
        delays = []
        deadline = None
        while len(delays) < MESSAGES:
            if pub.done() and deadline is None:
                deadline = time.time() + 20
            try:
                f = await reader.recv(timeout=1)
            except asyncio.TimeoutError:
                if deadline and time.time() > deadline:
                    break
                continue
            if f.get("type") == "message" and f.get("kind") == "room":
                delays.append((now_ms() - f["time"]) / 1000)
        rate = churned[0] / (time.time() - t0 + 2)
        stop.set()
        await task
        await pub
        within = sum(d <= 3 for d in delays)
        return (f"room_messages={len(delays)}/{MESSAGES} within_3s={within} "
                f"delay_s p50={pct(delays, .5):.3f} max={max(delays):.2f} "
                f"churn={rate:.1f}/s")
    finally:
        n1.stop()
        n2.stop()
        redis.stop()


async def large(binary):
    """Item 7: 2,000 users join one room on one node (8 joiners x 250), every
    member reading; then 3 API publishes to the room."""
    node = Node(binary, None, "n1")
    members, readers = [], []
    closes, got = Counter(), Counter()
    frames = [0]

    async def read(ws):
        try:
            while True:
                f = await ws.recv()
                frames[0] += 1
                if f.get("type") == "message":
                    got[f["content"]["seq"]] += 1
        except Closed as c:
            closes[c.code] += 1

    async def joiner(t):
        for i in range(250):
            try:
                ws = await WS.user(node, f"m{t}-{i}")
                f = await ws.request({"type": "join", "room": "stadium"}, timeout=60)
            except (Refused, Closed, asyncio.TimeoutError, OSError) as e:
                closes[f"join:{type(e).__name__}:{getattr(e, 'code', getattr(e, 'status', ''))}"] += 1
                continue
            if f.get("type") == "reply":
                members.append(ws)
                readers.append(asyncio.create_task(read(ws)))

    try:
        t0 = time.time()
        await asyncio.gather(*(joiner(t) for t in range(8)))
        joined_s = time.time() - t0
        last, settled = -1, time.time()
        while time.time() - settled < 3 and time.time() - t0 < 120:
            await asyncio.sleep(0.5)
            if frames[0] != last:
                last, settled = frames[0], time.time()
        cpu = node.cpu_s()
        for seq in range(3):
            node.api_post("/api/v1/publish", {"room": "stadium", "content": {"seq": seq}})
        await asyncio.sleep(10)
        return (f"joined={len(members)}/2000 in {joined_s:.1f}s closes={dict(closes)} "
                f"publishes_received={sum(got.values())}/{3 * len(members)} "
                f"frames_read={frames[0]} node_cpu_s={cpu:.1f} rss={node.rss_kib() / 1024:.0f}MiB")
    finally:
        for r in readers:
            r.cancel()
        for ws in members:
            ws.close()
        node.stop()


def start_lb(kind, upstream, pp):
    d = tempfile.mkdtemp(prefix=f"hostile-{kind}-")
    port = free_port()
    if kind == "nginx":
        os.makedirs(f"{d}/tmp")
        conf = f"""daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {d}/tmp/b; proxy_temp_path {d}/tmp/p;
  fastcgi_temp_path {d}/tmp/f; uwsgi_temp_path {d}/tmp/u; scgi_temp_path {d}/tmp/s;
  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{upstream};
    proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection upgrade; proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_read_timeout 1h; }} }} }}
"""
        open(f"{d}/nginx.conf", "w").write(conf)
        cmd = ["nginx", "-p", d, "-c", f"{d}/nginx.conf"]
    else:
        send = " send-proxy-v2" if pp else ""
        conf = (f"defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n"
                f"  timeout server 1h\nfrontend public\n  bind 127.0.0.1:{port}\n"
                f"  default_backend wsgate\nbackend wsgate\n  server n0 {upstream}{send}\n")
        open(f"{d}/haproxy.cfg", "w").write(conf)
        cmd = ["haproxy", "-db", "-f", f"{d}/haproxy.cfg"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.7)
    return proc, port, d


async def proxy(binary):
    """Item 8: --max-connections-per-ip 2 behind nginx (X-Forwarded-For) and
    HAProxy (send-proxy-v2 where the binary reads it, plain TCP before):
    client A (127.0.0.2) opens 3 connections, then client B (127.0.0.3) one."""
    out = []
    for kind in ("nginx", "haproxy"):
        pp = knows(binary, "--proxy-protocol")
        want = {"--trusted-proxies": "127.0.0.1"}
        if kind == "haproxy":
            want["--proxy-protocol"] = "v2"
        node = Node(binary, None, "n1", extra=("--max-connections-per-ip", "2"), want=want)
        lb, port, d = start_lb(kind, f"127.0.0.1:{node.public}", pp)
        held = []
        try:
            statuses = {}
            for client, n in (("127.0.0.2", 3), ("127.0.0.3", 1)):
                s = []
                for i in range(n):
                    try:
                        held.append(await WS.connect(port, f"/ws?user=u{client[-1]}{i}",
                                                     source=client))
                        s.append(101)
                    except Refused as e:
                        s.append(e.status)
                statuses["A" if client.endswith("2") else "B"] = s
            await asyncio.sleep(0.5)
            logged = open(node.log.name).read().count("127.0.0.2")
            out.append(f"{kind}: A(3 conns)={statuses['A']} B(1 conn)={statuses['B']} "
                       f"node_log_lines_with_A={logged}")
        finally:
            for ws in held:
                ws.close()
            lb.kill()
            lb.wait()
            node.stop()
            shutil.rmtree(d, ignore_errors=True)
    return " | ".join(out)


if __name__ == "__main__":
    name, binary = sys.argv[1], sys.argv[2]
    line = asyncio.run(globals()[name](binary))
    print(f"{name} {binary} {line}", flush=True)

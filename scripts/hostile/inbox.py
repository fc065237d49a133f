#!/usr/bin/env python3
"""Issue #11 items 1-4: hostile inbox traffic against one wsgate build.

    scripts/hostile/inbox.py SCENARIO BINARY      (SCENARIO: flood acks rss connects)

Prints one line `SCENARIO BINARY key=value ...`. Figures, not assertions: the
CI tests named in docs/benchmarks.md ("Bounded costs: before and after")
assert the behaviour.
"""
import asyncio
import sys
import threading
import time
import uuid
from collections import Counter

from common import WS, Closed, Node, ReadyWatch, Redis, Refused, knows, pct

BIG = {"--inbox-max-bytes": "64MiB"}
# 1000 x 20 KB: the largest inbox whose whole-list read the before binary
# (bb7b4fb) still answers within redis-rs's 500 ms on this 2-core machine
# for one connection (1000 x 40 KB: no replay at all, even alone).
REPLAY_BYTES = 20_000


def fill(nodes, user, count, size):
    pad = "y" * size
    for i in range(count):
        status = nodes[i % len(nodes)].api_post(
            "/api/v1/publish", {"to": user, "content": {"i": i, "pad": pad}})
        if status != 200:
            raise RuntimeError(f"fill {i}: {status}")


async def flood(binary):
    """Item 1: 8 senders sending 60 KB messages to 50 made-up users for 20 s,
    Redis at maxmemory 30mb noeviction, two nodes; readiness and upgrades
    watched throughout and 5 s after."""
    redis = Redis("--maxmemory", "30mb", "--maxmemory-policy", "noeviction")
    nodes = [Node(binary, redis, "n1"), Node(binary, redis, "n2")]
    try:
        watch = ReadyWatch(nodes)
        stop = asyncio.Event()
        upgrades = Counter()

        async def prober():
            while not stop.is_set():
                for n in nodes:
                    try:
                        ws = await WS.connect(n.public, "/ws?user=probe", timeout=5)
                        ws.close()
                        upgrades["ok"] += 1
                    except (Refused, OSError, asyncio.TimeoutError):
                        upgrades["refused"] += 1
                await asyncio.sleep(0.2)

        outcomes = Counter()
        pad = "x" * 60_000

        async def sender(s, until):
            ws = await WS.user(nodes[s % 2], f"flooder-{s}")
            i = 0
            while time.time() < until:
                f = await ws.request({"type": "send", "to": f"victim-{(i * 8 + s) % 50}",
                                      "content": {"n": i, "s": s, "pad": pad}})
                outcomes["ok" if f["type"] == "reply" else f.get("code")] += 1
                i += 1

        probe = asyncio.create_task(prober())
        t0 = time.time()
        # A sustained flood: the senders keep going for 20 s (960 sends fill
        # 30 MB in about a second), then 5 s more of watching.
        await asyncio.gather(*(sender(s, t0 + 20) for s in range(8)))
        await asyncio.sleep(5)
        stop.set()
        await probe
        bad = watch.stop()
        used = int(redis.info("used_memory")) / 2**20
        oom = (redis.info("errorstat_OOM") or "count=0").split(",")[0]
        return (f"sends={sum(outcomes.values())} in 20s outcomes={dict(outcomes)} "
                f"redis_used={used:.1f}MiB redis_OOM_errors:{oom} not_ready_s(n1,n2 over 25s)={bad} "
                f"upgrades_refused={upgrades['refused']}/{sum(upgrades.values())}")
    finally:
        for n in nodes:
            n.stop()
        redis.stop()


def ping_loop(port, stop, times):
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rb")
        while not stop.is_set():
            t = time.perf_counter()
            s.sendall(b"PING\r\n")
            f.readline()
            times.append((time.perf_counter() - t) * 1000)
            time.sleep(0.005)


async def acks(binary):
    """Item 2: a 1000-message inbox (8 KB each); 8 connections of the user read
    the replay, then send 125 acks of unknown ids each; Redis PING meanwhile."""
    redis = Redis()
    nodes = [Node(binary, redis, "n1", want=BIG), Node(binary, redis, "n2", want=BIG)]
    try:
        fill(nodes, "target", 1000, 8000)
        idle, stop = [], threading.Event()
        t = threading.Thread(target=ping_loop, args=(redis.port, stop, idle))
        t.start()
        await asyncio.sleep(2)
        stop.set()
        t.join()
        conns = [await WS.user(nodes[c % 2], "target") for c in range(8)]

        async def replay(ws):
            # The before binary may replay nothing (its read timed out).
            n = 0
            try:
                while n < 1000:
                    f = await ws.recv(timeout=10)
                    n += f.get("type") == "message"
            except asyncio.TimeoutError:
                pass
            return n

        replays = await asyncio.gather(*(replay(ws) for ws in conns))
        during, stop = [], threading.Event()
        t = threading.Thread(target=ping_loop, args=(redis.port, stop, during))
        t.start()
        watch = ReadyWatch(nodes)
        t0 = time.time()

        async def acker(c, ws):
            for i in range(125):
                await ws.send({"type": "ack", "id": f"0190a0b4-7c1e-7d2a-9b3f-{c * 1000 + i:012}"})
            try:
                await ws.request({"type": "ping"}, timeout=45)
                return time.time() - t0
            except asyncio.TimeoutError:
                return None

        done = await asyncio.gather(*(acker(c, ws) for c, ws in enumerate(conns)))
        stop.set()
        t.join()
        bad = watch.stop()
        finished = [d for d in done if d is not None]
        return (f"whole_replays={sum(n == 1000 for n in replays)}/8 ping_ms_idle p50/p99={pct(idle, .5):.2f}/{pct(idle, .99):.2f} "
                f"ping_ms_during_acks p50/p99={pct(during, .5):.2f}/{pct(during, .99):.2f} "
                f"acks_applied_conns={len(finished)}/8 within 45s "
                f"last_pong={max(finished) if finished else float('nan'):.2f}s "
                f"not_ready_s={bad}")
    finally:
        for n in nodes:
            n.stop()
        redis.stop()


async def rss(binary):
    """Item 3: node RSS with ten never-reading connections of a user whose
    inbox holds 1000 x 20 KB."""
    redis = Redis()
    node = Node(binary, redis, "n1", want=BIG)
    try:
        fill([node], "hoarder", 1000, REPLAY_BYTES)
        await asyncio.sleep(1)
        base = node.rss_kib()
        # One a second, so each one's replay read is not queued behind the
        # others' (the before binary would time them out and replay nothing).
        conns, peak = [], base
        for _ in range(10):
            conns.append(await WS.connect(node.public, "/ws?user=hoarder", rcvbuf=4096))
            for _ in range(5):
                await asyncio.sleep(0.2)
                peak = max(peak, node.rss_kib())
        for _ in range(25):
            await asyncio.sleep(0.2)
            peak = max(peak, node.rss_kib())
        hwm = node.rss_kib("VmHWM")
        for ws in conns:
            ws.close()
        return (f"rss_base={base / 1024:.0f}MiB rss_peak_10_nonreaders={peak / 1024:.0f}MiB "
                f"vmhwm={hwm / 1024:.0f}MiB per_conn={(peak - base) / 10 / 1024:.1f}MiB")
    finally:
        node.stop()
        redis.stop()


async def connects(binary):
    """Item 4: 4 simultaneous connects of a user whose inbox holds 1000 x 20 KB,
    while another user sends 20 messages to it; was an `unavailable` stored?"""
    redis = Redis()
    node = Node(binary, redis, "n1", want=BIG)
    try:
        fill([node], "crowd", 1000, REPLAY_BYTES)
        with_id = knows(binary, "--inbox-max-per-sender")
        sent = Counter()
        unavailable = []

        async def member():
            ws = await WS.user(node, "crowd")
            replayed, live_early = set(), 0
            while True:
                try:
                    f = await ws.recv(timeout=5)
                except asyncio.TimeoutError:
                    ws.close()
                    break
                except Closed as c:
                    return ("closed", c.code, len(replayed))
                if f.get("type") != "message":
                    continue
                if f.get("replay") and "i" in f["content"]:
                    replayed.add(f["content"]["i"])
                elif not f.get("replay") and len(replayed) < 1000:
                    live_early += 1
            if len(replayed) == 1000 and live_early == 0:
                return ("whole", None, 1000)
            return ("live_without_replay" if live_early else "partial", None, len(replayed))

        async def sender():
            ws = await WS.user(node, "bob")
            for k in range(20):
                token = uuid.uuid4().hex
                frame = {"type": "send", "to": "crowd", "content": {"tok": token}}
                if with_id:
                    frame["id"] = str(uuid.uuid4())
                f = await ws.request(frame)
                code = "ok" if f["type"] == "reply" else f.get("code")
                sent[code] += 1
                if code == "unavailable":
                    unavailable.append(token)
                await asyncio.sleep(0.05)

        results = await asyncio.gather(*(member() for _ in range(4)), sender())
        outcomes = Counter(r[0] if r[0] != "closed" else f"closed_{r[1]}" for r in results[:4])
        stored = sum(redis.holds(tok) for tok in unavailable)
        return (f"connects={dict(outcomes)} replayed={[r[2] for r in results[:4]]} "
                f"sends={dict(sent)} unavailable_but_stored={stored}/{len(unavailable)}")
    finally:
        node.stop()
        redis.stop()


if __name__ == "__main__":
    name, binary = sys.argv[1], sys.argv[2]
    line = asyncio.run(globals()[name](binary))
    print(f"{name} {binary} {line}", flush=True)

#!/usr/bin/env python3
"""Traffic for scripts/check-dashboard-live.sh: two wsgate nodes, real clients.

  live_traffic.py WS1 WS2 API1 API2 API_KEY [FEATURES]

WS1/WS2 are the public base URLs (ws://127.0.0.1:P), API1/API2 the admin base
URLs (http://127.0.0.1:A). Exercises what the dashboard shows: connections,
rooms, room/direct/broadcast messages across nodes, acks, inbox store, trim
and replay, typing, presence, pings, protocol errors, rate limiting, API
requests, and an upgrade refused for the per-IP limit (node 2 must run with
--max-connections-per-ip 8). FEATURES is a comma list of what the server
has beyond that: `inbox-overflow` (node 1 runs --inbox-overflow drop-oldest,
node 2 the default reject: a full inbox on node 2 refuses with inbox_full).
Prints what it did; exits 1 when the gateway did not behave as the contract
says.
"""

import asyncio
import itertools
import json
import sys
import urllib.error
import urllib.request

import websockets

TIMEOUT = 5.0
REFS = itertools.count(1)


class Client:
    def __init__(self, name, ws, welcome):
        self.name = name
        self.ws = ws
        self.welcome = welcome
        self.inbox = []  # frames other than replies

    @classmethod
    async def open(cls, base, user):
        ws = await websockets.connect(f"{base}/ws?user={user}", open_timeout=TIMEOUT,
                                      subprotocols=["wsgate.v1.json"], max_size=2**22)
        welcome = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert welcome.get("type") == "welcome", f"{user}: first frame {welcome}"
        return cls(user, ws, welcome)

    async def request(self, frame):
        ref = next(REFS)
        frame = dict(frame, ref=ref)
        await self.ws.send(json.dumps(frame))
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            if msg.get("ref") == ref and msg.get("type") in ("reply", "error", "pong"):
                return msg
            self.inbox.append(msg)

    async def wait_for(self, pred, what):
        for msg in self.inbox:
            if pred(msg):
                self.inbox.remove(msg)
                return msg
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"{self.name}: no {what} within {TIMEOUT}s")
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            if pred(msg):
                return msg
            self.inbox.append(msg)

    async def close(self):
        await self.ws.close(code=1000)


def api(base, key, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}{path}", data=data, method=method,
                                 headers={"Authorization": f"Bearer {key}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def slow_consumers(base):
    with urllib.request.urlopen(f"{base}/metrics", timeout=TIMEOUT) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("wsgate_slow_consumer_disconnects_total "):
                return float(line.split()[1])
    return 0.0


def ok(reply, what):
    assert reply.get("type") == "reply" and reply.get("ok") is True, f"{what}: {reply}"
    return reply


async def main(ws1, ws2, api1, api2, key, features=""):
    features = set(filter(None, features.split(",")))
    steps = []

    def step(text):
        steps.append(text)
        print(f"  - {text}", flush=True)

    alice = await Client.open(ws1, "alice")
    carol = await Client.open(ws1, "carol")
    bob = await Client.open(ws2, "bob")
    step(f"connected alice, carol to {alice.welcome.get('node')} and bob to {bob.welcome.get('node')}")

    for c in (alice, bob, carol):
        ok(await c.request({"type": "join", "room": "lobby"}), f"{c.name} join")
    step("alice, bob, carol joined room lobby")

    for i in range(5):
        ok(await alice.request({"type": "publish", "room": "lobby", "content": {"n": i}}), "publish")
    for c in (bob, carol):
        for i in range(5):
            await c.wait_for(lambda m, i=i: m.get("type") == "message" and m.get("kind") == "room"
                             and m.get("content") == {"n": i}, f"room message {i}")
    step("5 room messages from alice reached bob (other node) and carol, in order")

    ids = []
    for i in range(3):
        r = ok(await alice.request({"type": "send", "to": "bob", "content": f"dm {i}"}), "send")
        ids.append(r["id"])
    got = []
    for _ in ids:
        m = await bob.wait_for(lambda m: m.get("type") == "message" and m.get("kind") == "direct", "direct message")
        got.append(m["id"])
    assert got == ids, f"direct messages out of order: {got} != {ids}"
    await bob.ws.send(json.dumps({"type": "ack", "ids": ids}))
    await alice.wait_for(lambda m: m.get("type") == "receipt" and m.get("id") in ids, "receipt")
    step("3 direct messages alice -> bob across nodes, acked, receipt back to alice")

    r = ok(await bob.request({"type": "send", "to": "alice", "content": "hi back"}), "send back")
    m = await alice.wait_for(lambda m: m.get("type") == "message" and m.get("id") == r["id"], "reply dm")
    await alice.ws.send(json.dumps({"type": "ack", "id": m["id"]}))
    step("bob -> alice direct message acked")

    await alice.ws.send(json.dumps({"type": "typing", "room": "lobby"}))
    await bob.wait_for(lambda m: m.get("type") == "typing", "typing event")
    p = ok(await carol.request({"type": "presence", "room": "lobby"}), "presence room")
    assert {"alice", "bob", "carol"} <= set(p.get("members", [])), f"presence: {p}"
    ok(await carol.request({"type": "presence", "user": "bob"}), "presence user")
    pong = await carol.request({"type": "ping"})
    assert pong.get("type") == "pong", pong
    step("typing, presence (cluster-wide members), ping")

    err = await carol.request({"type": "no_such_frame"})
    assert err.get("type") == "error", err
    await carol.ws.send("{not json")
    await carol.wait_for(lambda m: m.get("type") == "error", "bad_request error")
    step(f"protocol errors: {err.get('code')}, bad JSON")

    spam = await Client.open(ws1, "spammer")
    for _ in range(120):
        try:
            await spam.ws.send(json.dumps({"type": "ping"}))
        except websockets.ConnectionClosed:
            break
    limited = 0
    try:
        while True:
            m = json.loads(await asyncio.wait_for(spam.ws.recv(), 2))
            if m.get("type") == "error" and m.get("code") == "rate_limited":
                limited += 1
    except (asyncio.TimeoutError, websockets.ConnectionClosed):
        pass
    assert limited > 0, "120 pings at once were not rate limited"
    step(f"rate limiting: {limited} rate_limited errors for a burst of 120 pings")
    try:
        await spam.close()
    except websockets.ConnectionClosed:
        pass

    # API (admin listener of node 1 and 2).
    status, body = api(api1, key, "POST", "/api/v1/publish", {"room": "lobby", "content": "from api"})
    assert status == 200, (status, body)
    await bob.wait_for(lambda m: m.get("type") == "message" and m.get("content") == "from api", "API room message")
    status, body = api(api2, key, "POST", "/api/v1/publish", {"broadcast": True, "content": "to all"})
    assert status == 200, (status, body)
    for c in (alice, bob, carol):
        await c.wait_for(lambda m: m.get("kind") == "broadcast", "broadcast")
    status, body = api(api1, key, "POST", "/api/v1/publish", {"to": "bob", "content": "api dm", "from": "ops"})
    assert status == 200 and body.get("online") is True, (status, body)
    m = await bob.wait_for(lambda m: m.get("kind") == "direct" and m.get("content") == "api dm", "API direct")
    await bob.ws.send(json.dumps({"type": "ack", "id": m["id"]}))
    status, nodes = api(api1, key, "GET", "/api/v1/nodes")
    expected_nodes = len({api1, api2})  # the same URL twice: one standalone node
    assert status == 200 and len(nodes) == expected_nodes, (status, nodes)
    for path in ("/api/v1/rooms/lobby", "/api/v1/users/bob", "/api/v1/openapi.json"):
        status, _ = api(api2, key, "GET", path)
        assert status == 200, (path, status)
    status, _ = api(api1, "wrong-key", "GET", "/api/v1/nodes")
    assert status == 401, status
    step(f"API: publish to room, broadcast, direct; nodes ({len(nodes)} seen), room, user, openapi; 401 for a bad key")

    # Inbox: dave is offline; node runs with --inbox-max 3.
    for i in range(6):
        status, body = api(api1, key, "POST", "/api/v1/publish", {"to": "dave", "content": f"offline {i}"})
        assert status == 200 and body.get("online") is False, (status, body)
    dave = await Client.open(ws2, "dave")
    replayed = []
    for _ in range(3):
        m = await dave.wait_for(lambda m: m.get("type") == "message" and m.get("replay") is True, "replayed message")
        replayed.append(m)
    assert [m["content"] for m in replayed] == ["offline 3", "offline 4", "offline 5"], replayed
    await dave.ws.send(json.dumps({"type": "ack", "ids": [m["id"] for m in replayed]}))
    step("inbox: 6 messages to offline dave, 3 trimmed (inbox-max 3), 3 replayed on connect and acked")

    if "inbox-overflow" in features:
        # Node 2 refuses (reject): the fourth message to offline frank is
        # inbox_full (429), and the three kept are replayed.
        for i in range(3):
            status, body = api(api2, key, "POST", "/api/v1/publish", {"to": "frank", "content": f"kept {i}"})
            assert status == 200, (status, body)
        status, body = api(api2, key, "POST", "/api/v1/publish", {"to": "frank", "content": "refused"})
        assert status == 429 and body.get("error") == "inbox_full", (status, body)
        frank = await Client.open(ws1, "frank")
        kept = [await frank.wait_for(lambda m: m.get("type") == "message" and m.get("replay") is True,
                                     "replayed message") for _ in range(3)]
        assert [m["content"] for m in kept] == ["kept 0", "kept 1", "kept 2"], kept
        await frank.ws.send(json.dumps({"type": "ack", "ids": [m["id"] for m in kept]}))
        await frank.close()
        step("inbox overflow reject (node 2): 4th message to offline frank refused with 429 inbox_full, "
             "the 3 kept replayed and acked")

    # Per-IP limit on node 2 (--max-connections-per-ip 8): bob and dave are there.
    extra, refused = [], None
    for i in range(12):
        try:
            extra.append(await Client.open(ws2, f"crowd{i}"))
        except websockets.InvalidStatus as exc:
            refused = exc.response.status_code
            break
    assert refused == 429, f"per-IP limit: expected 429, got {refused} after {len(extra)} extra connections"
    step(f"per-IP limit: upgrade refused with 429 after {len(extra)} more connections on node 2")
    for c in extra:
        await c.close()

    # Slow consumer: a client in a busy room that never reads. Once the
    # socket buffers and its outbox are full, the node closes it with 1013.
    slow = await Client.open(ws1, "slowpoke")
    ok(await slow.request({"type": "join", "room": "firehose"}), "slowpoke join")
    blob = "x" * 60000
    sent = 0
    for sent in range(1, 3001):
        status, _ = api(api1, key, "POST", "/api/v1/publish", {"room": "firehose", "content": blob})
        assert status == 200, status
        if sent % 25 == 0 and slow_consumers(api1) > 0:
            break
    code = None
    try:
        while True:
            await asyncio.wait_for(slow.ws.recv(), TIMEOUT)
    except websockets.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
    counted = slow_consumers(api1)
    # The close frame queues behind everything the client has not read; the
    # node may give up writing it and drop the TCP connection (no code).
    assert counted > 0 and code in (1013, None), \
        f"slow consumer: after {sent} large room messages: close code {code}, counter {counted}"
    how = "with 1013" if code == 1013 else "(the 1013 close frame did not get through the full socket)"
    step(f"slow consumer: a client that did not read was closed {how} after {sent} messages of 60 kB")

    await asyncio.sleep(0.5)
    for c in (alice, bob, carol, dave):
        await c.close()
    step("closed every client with 1000")
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (6, 7):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(asyncio.run(main(*sys.argv[1:])))
    except (AssertionError, OSError, asyncio.TimeoutError, websockets.WebSocketException) as exc:
        print(f"  traffic FAILED: {type(exc).__name__}: {exc}", flush=True)
        sys.exit(1)

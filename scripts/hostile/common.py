"""Shared parts of the hostile scripts (issue #11 before/after figures).

No third-party modules: a minimal asyncio WebSocket client (text frames,
masking, ping answers, close codes), process helpers for redis-server and
wsgate on free loopback ports, and RESP/HTTP helpers. These scripts measure;
the CI tests in crates/wsgate/tests assert the behaviour.

A setting the binary does not know (new since bb7b4fb) is left out, so the
old binary runs with its old defaults: that is the "before".
"""
import asyncio
import base64
import json
import os
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request

API_KEY = "hostile-key"
_HELP = {}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def knows(binary, flag):
    """Whether BINARY accepts FLAG (read from its --help)."""
    if binary not in _HELP:
        _HELP[binary] = subprocess.run([binary, "--help"], capture_output=True,
                                       text=True).stdout
    return flag in _HELP[binary]


def loadavg():
    return open("/proc/loadavg").read().split()[0]


class Redis:
    def __init__(self, *flags):
        self.dir = tempfile.mkdtemp(prefix="hostile-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir, *flags],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                if self.cmd("PING") == "PONG":
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), "--raw", *args],
                              capture_output=True).stdout.decode("latin-1")

    def cmd(self, *args):
        """One command on a fresh connection; simple replies only."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(resp(*args))
            line = s.makefile("rb").readline().decode().rstrip("\r\n")
            return line[1:]

    def info(self, field):
        for line in self.cli("INFO").splitlines():
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
        return None

    def holds(self, needle):
        """Whether any key's value contains NEEDLE (lists and hashes)."""
        for key in self.cli("KEYS", "*").split():
            kind = self.cli("TYPE", key).strip()
            if kind == "list":
                text = self.cli("LRANGE", key, "0", "-1")
            elif kind == "hash":
                text = self.cli("HGETALL", key)
            elif kind == "string":
                text = self.cli("GET", key)
            else:
                continue
            if needle in text:
                return True
        return False

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        subprocess.run(["rm", "-rf", self.dir])


def resp(*args):
    out = f"*{len(args)}\r\n"
    for a in args:
        a = str(a)
        out += f"${len(a.encode())}\r\n{a}\r\n"
    return out.encode()


class Node:
    """One wsgate process on free loopback ports (anonymous users, API key)."""

    def __init__(self, binary, redis=None, node_id="n1", extra=(), want=None):
        self.binary = binary
        self.public, self.admin = free_port(), free_port()
        args = [binary, "--allow-anonymous", "--listen", f"127.0.0.1:{self.public}",
                "--admin-listen", f"127.0.0.1:{self.admin}", "--api-key", API_KEY,
                "--node-id", node_id, *extra]
        for flag, value in (("--rate-limit", "100000"), ("--max-connections-per-ip", "100000")):
            if flag not in extra:
                args += [flag, value]
        if redis is not None:
            args += ["--redis-url", redis.url]
        # Settings new since bb7b4fb: only where the binary has them.
        for flag, value in (want or {}).items():
            if knows(binary, flag):
                args += [flag, value]
        self.args = args
        self.log = tempfile.NamedTemporaryFile(prefix="hostile-node-", suffix=".log",
                                               delete=False)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while self.ready() != 200:
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{node_id} did not get ready: {args}")
            time.sleep(0.1)

    def ready(self):
        return http_status(f"http://127.0.0.1:{self.admin}/readyz")

    def rss_kib(self, field="VmRSS"):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def cpu_s(self):
        f = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def metric(self, name):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics",
                                      timeout=5).read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def api_post(self, path, body):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.admin}{path}", method="POST",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {API_KEY}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def http_status(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


class ReadyWatch:
    """Polls nodes' /readyz every 50 ms in a thread; sums the time each was not 200."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.bad = {n.admin: 0.0 for n in nodes}
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        last = time.time()
        while not self.stop_flag.is_set():
            for n in self.nodes:
                if n.ready() != 200:
                    self.bad[n.admin] += time.time() - last
            last = time.time()
            time.sleep(0.05)

    def stop(self):
        self.stop_flag.set()
        self.thread.join()
        return [round(v, 1) for v in self.bad.values()]


class Refused(Exception):
    def __init__(self, status):
        super().__init__(f"upgrade refused with {status}")
        self.status = status


class Closed(Exception):
    def __init__(self, code, reason=""):
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


def mask(data, key):
    n = len(data)
    m = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")


class WS:
    """A WebSocket client connection: JSON text frames."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.refs = 0
        self.stash = []

    @classmethod
    async def connect(cls, port, path, host="127.0.0.1", headers="", rcvbuf=None,
                      source=None, timeout=15):
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)),
                               timeout)
        r, w = await asyncio.open_connection(sock=sock, limit=1 << 22)
        key = base64.b64encode(os.urandom(16)).decode()
        w.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 f"Sec-WebSocket-Version: 13\r\n{headers}\r\n").encode())
        try:
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
        except (asyncio.IncompleteReadError, ConnectionError):
            w.close()
            raise Refused(None)
        status = int(head.split()[1])
        if status != 101:
            w.close()
            raise Refused(status)
        return cls(r, w)

    @classmethod
    async def user(cls, node, user, **kw):
        ws = await cls.connect(node.public, f"/ws?user={user}", **kw)
        welcome = await ws.recv()
        assert welcome.get("type") == "welcome", welcome
        return ws

    def _frame(self, op, data):
        n = len(data)
        head = bytes([0x80 | op])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        key = os.urandom(4)
        self.w.write(head + key + mask(data, key))

    async def send(self, obj):
        self._frame(0x1, json.dumps(obj).encode())
        await self.w.drain()

    async def recv(self, timeout=None):
        """The next JSON frame; raises Closed on a close frame or EOF."""
        if self.stash:
            return self.stash.pop(0)
        return await asyncio.wait_for(self._recv(), timeout)

    async def _recv(self):
        payload = b""
        while True:
            try:
                b0, b1 = await self.r.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", await self.r.readexactly(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", await self.r.readexactly(8))[0]
                data = await self.r.readexactly(n)
            except (asyncio.IncompleteReadError, ConnectionError):
                raise Closed(None, "eof")
            op = b0 & 0x0F
            if op == 0x9:
                self._frame(0xA, data)
                continue
            if op == 0xA:
                continue
            if op == 0x8:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                raise Closed(code, data[2:].decode("utf-8", "replace"))
            payload += data
            if b0 & 0x80:
                return json.loads(payload)

    async def request(self, obj, timeout=30):
        """Sends OBJ with a fresh ref; returns its reply or error frame.
        Other frames read meanwhile are kept for recv()."""
        self.refs += 1
        ref = f"r{self.refs}"
        await self.send({**obj, "ref": ref})
        kept = []
        deadline = time.time() + timeout
        while True:
            f = await asyncio.wait_for(self._recv(), max(0.01, deadline - time.time()))
            if f.get("ref") == ref and f.get("type") in ("reply", "error", "pong"):
                self.stash.extend(kept)
                return f
            kept.append(f)

    def close(self):
        try:
            self.w.close()
        except Exception:
            pass


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def now_ms():
    return int(time.time() * 1000)

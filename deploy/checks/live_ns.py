"""Helpers for the live Redis deploy checks (helm_redis_live.py,
compose_redis_live.py), which run inside private network and mount
namespaces (scripts/check-redis-live.sh): "hosts" with addresses of their
own on loopback and names from a private /etc/hosts, processes started and
killed, waiting for a condition, and the wsgate admin API.
"""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request


def fail(text):
    raise AssertionError(text)


def step(text):
    print(f"  - {text}", flush=True)


def write_hosts(names):
    """names: {hostname: address}. /etc/hosts is the namespace's private copy."""
    with open("/etc/hosts", "w", encoding="utf-8") as f:
        f.write("127.0.0.1 localhost\n")
        f.writelines(f"{ip} {name}\n" for name, ip in names.items())


def until(what, fn, seconds=30):
    """Polls fn until it returns something true; fails after `seconds`."""
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
            last = exc
        time.sleep(0.2)
    fail(f"{what}: not within {seconds}s (last: {last!r})")


def redis_cli(host, port, *args):
    out = subprocess.run(["redis-cli", "-h", host, "-p", str(port), "--raw", *args],
                         capture_output=True, text=True, errors="replace", timeout=5)
    return out.stdout.strip()


def info_field(text, field):
    """A field of an INFO answer (name:value lines)."""
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


class Procs:
    """Processes by name, each in its own session (killed with its children),
    logging into WORK/NAME/log."""

    def __init__(self, work):
        self.work = work
        self.procs = {}

    def dir(self, name):
        path = os.path.join(self.work, name)
        os.makedirs(path, exist_ok=True)
        return path

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.dir(name), "log"), "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=log, env={**os.environ, **(env or {})},
                                            start_new_session=True)
        return self.procs[name]

    def kill(self, name):
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def log(self, name):
        with open(os.path.join(self.work, name, "log"), encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop_all(self):
        for name in list(self.procs):
            self.kill(name)


def http(admin, key, method, path, body=None):
    """(status, body) from a wsgate admin listener; status None when down."""
    req = urllib.request.Request(f"http://{admin}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {key}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as err:
        return None, str(err)


def metric(admin, name):
    _, body = http(admin, "", "GET", "/metrics")
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None

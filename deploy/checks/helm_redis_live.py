#!/usr/bin/env python3
"""Run the Helm chart's bundled Redis + Sentinel for real, without Kubernetes.

  helm_redis_live.py CHART WSGATE_BINARY

Run by scripts/check-redis-live.sh inside fresh network and mount
namespaces (`unshare -mn`), as root: loopback is private, so every "pod" can
use the ports the chart uses (6379, 26379) on an address of its own
(127.0.0.1x), and /etc/hosts (bind-mounted over) gives each pod the DNS
name a headless Service would give it.

What runs is what the chart renders: the ConfigMap's start-redis.sh,
start-sentinel.sh and redis.conf (only /data, /etc/redis and the bind
address are changed, as a pod's own volume and IP would make them), and
wsgate with the chart's WSGATE_* settings and its Redis URL Secret. Then:
first install (pod 0 becomes the primary, the others its replicas, the
Sentinels agree), wsgate ready in sentinel mode with WAIT 1, kill -9 of
the primary (a replica is promoted, wsgate follows, no ok'd direct message
lost), the old primary restarted (it rejoins as a replica of the new one),
and a Sentinel restarted (it monitors the new primary). Prints each step;
exits 1 on the first failure.
"""

import base64
import os
import subprocess
import sys
import tempfile

import helm_python as helm

import live_ns
import redis_modes
from live_ns import Procs, fail, step, until, write_hosts

RELEASE = "wsgate-ci"
NAMESPACE = "realtime"
DOMAIN = f"{NAMESPACE}.svc.cluster.local"
API_KEY = "live-check-key"
VALUES = {
    "auth": {"jwtSecret": "live-check-jwt", "apiKey": API_KEY},
    "replicaCount": 1,
    "redis": {"replicas": 2, "persistence": {"enabled": False},
              "sentinel": {"enabled": True, "downAfterMilliseconds": 2000, "failoverTimeout": 5000}},
}
REDIS = [f"{RELEASE}-redis-{i}" for i in range(3)]
SENTINELS = [f"{RELEASE}-redis-sentinel-{i}" for i in range(3)]
ADDR = {**{p: f"127.0.0.{11 + i}" for i, p in enumerate(REDIS)},
        **{p: f"127.0.0.{21 + i}" for i, p in enumerate(SENTINELS)}}
FQDN = {**{p: f"{p}.{RELEASE}-redis.{DOMAIN}" for p in REDIS},
        **{p: f"{p}.{RELEASE}-redis-sentinel.{DOMAIN}" for p in SENTINELS}}
WS_PUBLIC, WS_ADMIN = "127.0.0.1:18080", "127.0.0.1:19090"


def render(chart_path):
    return redis_modes.render(chart_path, VALUES)


def redis_cli(pod, *args):
    return live_ns.redis_cli(FQDN[pod], 26379 if pod in SENTINELS else 6379, *args)


class Pods(Procs):
    """The chart's Redis and Sentinel pods as processes."""

    def __init__(self, objects, work):
        super().__init__(work)
        self.data = objects[("ConfigMap", f"{RELEASE}-redis")]["data"]

    def start_pod(self, pod):
        """One pod: its own /data and /etc/redis, its own address."""
        root = self.dir(pod)
        data, etc = os.path.join(root, "data"), os.path.join(root, "etc")
        os.makedirs(data, exist_ok=True)
        os.makedirs(etc, exist_ok=True)
        ip = ADDR[pod]
        conf = self.data["redis.conf"].replace("bind * -::*", f"bind {ip}\nbind-source-addr {ip}")
        conf = conf.replace("dir /data", f"dir {data}")
        with open(os.path.join(etc, "redis.conf"), "w", encoding="utf-8") as f:
            f.write(conf)
        script = "start-sentinel.sh" if pod in SENTINELS else "start-redis.sh"
        text = self.data[script]
        if pod in SENTINELS:
            text = text.replace("port 26379\n", f"port 26379\nbind {ip}\nbind-source-addr {ip}\n")
        text = text.replace("/etc/redis/", etc + "/").replace("/data", data)
        with open(os.path.join(etc, script), "w", encoding="utf-8") as f:
            f.write(text)
        self.start(pod, ["sh", os.path.join(etc, script)], env={"POD_NAME": pod})


def http(method, path, body=None):
    return live_ns.http(WS_ADMIN, API_KEY, method, path, body)


def metric(name):
    return live_ns.metric(WS_ADMIN, name)


def sentinel_field(sentinel, field):
    """A field of `SENTINEL master mymaster` (alternating name and value lines)."""
    lines = redis_cli(sentinel, "SENTINEL", "master", "mymaster").splitlines()
    return dict(zip(lines[0::2], lines[1::2])).get(field)


def name_of(fqdn):
    return next(p for p in REDIS if FQDN[p] == fqdn)


def stable_primary(pods, old):
    """The primary the Sentinels agree on, if it is not `old` and says it is
    a primary with its replicas' links up."""
    primary = primary_of_sentinels(pods)
    if not primary or primary == old:
        return None
    info = redis_cli(name_of(primary), "INFO", "replication")
    return primary if "role:master" in info else None


def primary_of_sentinels(pods):
    """The primary every running Sentinel names, when they agree."""
    names = {redis_cli(s, "SENTINEL", "get-master-addr-by-name", "mymaster").splitlines()[0]
             for s in SENTINELS if s in pods.procs}
    return names.pop() if len(names) == 1 else None


def main():
    chart, binary = sys.argv[1], sys.argv[2]
    objects = render(chart)
    config = objects[("ConfigMap", RELEASE)]["data"]
    secret = objects[("Secret", f"{RELEASE}-redis-url")]["data"]
    redis_url = base64.b64decode(secret["redis-url"]).decode()
    write_hosts({FQDN[p]: ADDR[p] for p in ADDR})
    work = tempfile.mkdtemp(prefix="wsgate-helm-redis.")
    pods = Pods(objects, work)
    try:
        # First install: Sentinels in parallel, Redis pods one by one
        # (OrderedReady: the next starts once the previous answers).
        for s in SENTINELS:
            pods.start_pod(s)
        for p in REDIS:
            pods.start_pod(p)
            until(f"{p} answers", lambda p=p: redis_cli(p, "PING") == "PONG")
        first = FQDN[REDIS[0]]
        until("2 replicas in sync with pod 0",
              lambda: all("master_link_status:up" in redis_cli(p, "INFO", "replication") for p in REDIS[1:]))
        # Sentinels learn the replicas from the primary's INFO (every 10 s):
        # until they know one, a failover has nothing to promote.
        until("every Sentinel names pod 0 and knows the other Sentinels and both replicas",
              lambda: primary_of_sentinels(pods) == first
              and all(sentinel_field(s, "num-other-sentinels") == "2"
                      and sentinel_field(s, "num-slaves") == "2" for s in SENTINELS))
        step(f"first install: {REDIS[0]} is the primary with 2 replicas; 3 Sentinels agree and know both")

        env = {**config, "WSGATE_REDIS_URL": redis_url, "WSGATE_NODE_ID": f"{RELEASE}-0",
               "WSGATE_LISTEN": WS_PUBLIC, "WSGATE_ADMIN_LISTEN": WS_ADMIN,
               "WSGATE_JWT_SECRET": "live-check-jwt", "WSGATE_API_KEY": API_KEY, "WSGATE_LOG_FORMAT": "text"}
        if env.get("WSGATE_REDIS_MODE") != "sentinel" or env.get("WSGATE_REDIS_WAIT_REPLICAS") != "1":
            fail(f"chart settings: mode {env.get('WSGATE_REDIS_MODE')}, wait {env.get('WSGATE_REDIS_WAIT_REPLICAS')}")
        pods.start("wsgate", [binary], env=env)
        until("wsgate ready", lambda: http("GET", "/readyz")[0] == 200)
        until("wsgate sees 2 replicas", lambda: metric("wsgate_redis_replicas") == 2)
        status, body = http("POST", "/api/v1/publish", {"to": "ursula", "content": "before"})
        if status != 200:
            fail(f"direct message before the failover: {status} {body}")
        step(f"wsgate ready with the chart's settings (sentinel mode, URL {redis_url.count(',') + 1} "
             "Sentinels, WAIT 1); a direct message ok'd")

        pods.kill(REDIS[0])
        promoted = until("a replica promoted", lambda: stable_primary(pods, first), seconds=60)
        until("wsgate ready again", lambda: http("GET", "/readyz")[0] == 200, seconds=40)

        def sent_after():
            status, _ = http("POST", "/api/v1/publish", {"to": "ursula", "content": "after"})
            return status == 200
        until("a direct message ok'd on the new primary", sent_after, seconds=40)
        # A busy machine can make the Sentinels fail over twice; the primary
        # is whatever they agree on now.
        promoted = until("the Sentinels agree", lambda: stable_primary(pods, first), seconds=60)
        new = name_of(promoted)
        # The messages live in the inbox hash (redis/scripts/inbox.rs).
        contents = redis_cli(new, "HVALS", "wsgate:inbox-msgs:{ursula}")
        if "before" not in contents or "after" not in contents:
            fail(f"the new primary lacks an ok'd message: ursula's inbox holds {contents!r}")
        step(f"kill -9 {REDIS[0]}: {new} promoted; wsgate followed; both ok'd messages (before and "
             "after the kill) are on the new primary")

        pods.start_pod(REDIS[0])

        def rejoined():
            info = redis_cli(REDIS[0], "INFO", "replication")
            return "role:slave" in info and f"master_host:{stable_primary(pods, first)}" in info \
                and "master_link_status:up" in info
        until(f"{REDIS[0]} rejoins as a replica of the primary", rejoined)
        starts = [line for line in pods.log(REDIS[0]).splitlines() if line.startswith("starting as")]
        if starts[-1:] != [f"starting as a replica of {stable_primary(pods, first)}"]:
            fail(f"{REDIS[0]} came back as {starts[-1:]}: its start script must ask the Sentinels")
        new = name_of(stable_primary(pods, first))
        until(f"{new} has 2 replicas again", lambda: "connected_slaves:2" in redis_cli(new, "INFO", "replication"))
        step(f"{REDIS[0]} restarted: the Sentinels named {new}, it rejoined as its replica "
             "(not as a second primary)")

        pods.kill(SENTINELS[0])
        pods.start_pod(SENTINELS[0])
        until(f"{SENTINELS[0]} monitors {new} after a restart",
              lambda: redis_cli(SENTINELS[0], "SENTINEL", "get-master-addr-by-name", "mymaster")
              .splitlines()[0] == FQDN[new])
        if f"monitoring {FQDN[new]}" not in pods.log(SENTINELS[0]):
            fail(f"{SENTINELS[0]} did not take the primary from its peers")
        step(f"{SENTINELS[0]} restarted with an empty volume: it took {new} from its peers")
        return 0
    finally:
        pods.stop_all()
        if os.environ.get("KEEP_WORK") != "1":
            subprocess.run(["rm", "-rf", work], check=False)
        else:
            print(f"  logs kept in {work}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (AssertionError, helm.HelmError, subprocess.SubprocessError) as exc:
        print(f"  FAILED: {exc}", flush=True)
        sys.exit(1)

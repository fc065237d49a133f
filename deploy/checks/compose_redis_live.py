#!/usr/bin/env python3
"""Run docker-compose's two Redis profiles for real, without a container engine.

  compose_redis_live.py WSGATE_BINARY

Run by scripts/check-redis-live.sh inside private network and mount
namespaces, as root. Each compose service becomes a process with the
service's own command and environment, as `docker-compose config` merges
them (base file + override file + profile), on a loopback address of its own
under its service name (a private /etc/hosts), like a container on the
compose network; only the data paths and the bind address are changed, as
a container's own filesystem and IP would make them.

redis-sentinel: the primary, its replica, three Sentinels and two wsgate
nodes in sentinel mode; a direct message ok'd with WAIT 1; kill -9 of the
primary: the replica is promoted and the nodes are ready again, direct
messages answer `unavailable` (no replica left to WAIT for, as the override
file says) until the old primary is started again, which Sentinel turns
into a replica; then they are ok'd again, and the first one is on the new
primary.

redis-cluster: six cluster nodes and the one-shot create job (run twice: the
second run must see the cluster formed and exit 0); three primaries with a
replica each, addressed by hostname; a wsgate node with the cluster
settings, ready and taking a direct message; kill -9 of a primary: its replica takes its slots and
the cluster is ok again.
"""

import os
import re
import subprocess
import sys
import tempfile

import yaml

import live_ns
from live_ns import Procs, fail, info_field, step, until, write_hosts

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def merged(override, profile):
    out = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "-f", override, "--profile", profile,
                          "config"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return yaml.safe_load(out)["services"]


class Compose(Procs):
    """Compose services as processes, each with an address of its own."""

    def __init__(self, services, names, work):
        super().__init__(work)
        self.services = services
        self.addr = {n: f"127.0.1.{i + 1}" for i, n in enumerate(names)}
        write_hosts(self.addr)

    def start_service(self, name, extra_env=None):
        svc = self.services[name]
        data = self.dir(name)
        ip = self.addr[name]
        argv = [str(a) for a in svc["command"]]
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        env["HOSTNAME"] = svc.get("hostname", name)
        # A container's own address: listening on it, and the source of its
        # connections (replication, cluster bus, Sentinel links), as Redis
        # reports and announces it. Protected mode off: the official image
        # is built with that default (its clients are other containers).
        if argv[0] == "redis-server":
            argv += ["--bind", ip, "--bind-source-addr", ip, "--protected-mode", "no", "--dir", data]
        elif argv[:2] == ["sh", "-c"]:
            script = argv[2].replace("$$", "$")  # compose's escape for a literal $
            script = script.replace("/tmp/sentinel.conf", f"{data}/sentinel.conf")
            script = script.replace("port 26379\\n", f"port 26379\\nbind {ip}\\nbind-source-addr {ip}\\ndir {data}\\n")
            script = script.replace("/data/", f"{data}/")
            if "exec redis-server" in script:
                script = script.replace("exec redis-server",
                                        f"cd {data} && exec redis-server --bind {ip} --bind-source-addr {ip} --protected-mode no", 1)
            argv = ["sh", "-c", script]
        self.start(name, argv, env={**env, **(extra_env or {})})

    def cli(self, name, *args, port=6379):
        return live_ns.redis_cli(name, port, *args)


def gateway_env(svc, ip):
    env = {k: str(v) for k, v in (svc.get("environment") or {}).items() if k.startswith("WSGATE_")}
    env.update(WSGATE_LISTEN=f"{ip}:8080", WSGATE_ADMIN_LISTEN=f"{ip}:9090", WSGATE_LOG_FORMAT="text")
    env["WSGATE_API_KEY"] = env.get("WSGATE_API_KEY", "").replace("${WSGATE_API_KEY:-dev-api-key}", "dev-api-key")
    return env


def sentinel_profile(binary, work):
    services = merged("docker-compose.sentinel.yml", "redis-sentinel")
    sentinels = sorted(n for n, s in services.items() if "redis-sentinel" in " ".join(map(str, s.get("command") or [])))
    gateways = ["wsgate-1", "wsgate-2"]
    c = Compose(services, ["redis", "redis-replica", *sentinels, *gateways], work)
    try:
        c.start_service("redis")
        until("redis answers", lambda: c.cli("redis", "PING") == "PONG")
        c.start_service("redis-replica")
        for s in sentinels:
            c.start_service(s)
        # Synchronised (not only connected: the first sync waits
        # repl-diskless-sync-delay), or WAIT cannot be confirmed.
        until("the replica is in sync", lambda: info_field(c.cli("redis-replica", "INFO", "replication"),
                                                           "master_link_status") == "up")

        def sentinels_know():
            for s in sentinels:
                lines = c.cli(s, "SENTINEL", "master", "mymaster", port=26379).splitlines()
                fields = dict(zip(lines[0::2], lines[1::2]))
                if fields.get("num-slaves") != "1" or fields.get("num-other-sentinels") != str(len(sentinels) - 1):
                    return False
            return True
        until("the Sentinels know the replica and each other", sentinels_know)
        envs = {}
        for g in gateways:
            envs[g] = gateway_env(services[g], c.addr[g])
            c.start(g, [binary], env=envs[g])
        key = envs[gateways[0]]["WSGATE_API_KEY"]
        admins = [envs[g]["WSGATE_ADMIN_LISTEN"] for g in gateways]
        for a in admins:
            until(f"{a} ready", lambda a=a: live_ns.http(a, key, "GET", "/readyz")[0] == 200)
        publish = lambda content: live_ns.http(admins[0], key, "POST", "/api/v1/publish",  # noqa: E731
                                               {"to": "olga", "content": content})
        status, body = publish("before")
        if status != 200:
            fail(f"direct message before the failover: {status} {body}")
        step(f"redis-sentinel: {len(sentinels)} Sentinels, a replica, {len(gateways)} nodes in sentinel mode "
             "ready; a direct message ok'd (WAIT 1)")

        c.kill("redis")

        def promoted():
            return all(c.cli(s, "SENTINEL", "get-master-addr-by-name", "mymaster", port=26379).splitlines()[0]
                       == c.addr["redis-replica"] for s in sentinels)
        until("redis-replica promoted", promoted, seconds=60)
        for a in admins:
            until(f"{a} ready again", lambda a=a: live_ns.http(a, key, "GET", "/readyz")[0] == 200, seconds=60)
        status, body = publish("no replica")
        if status != 503 or "unavailable" not in body:
            fail(f"with no replica left for WAIT 1, a direct message must answer 503 unavailable: {status} {body}")
        step("kill -9 redis: redis-replica promoted, both nodes ready again; a direct message answers "
             "503 unavailable (no replica left for WAIT 1)")

        c.start_service("redis")
        until("Sentinel turns the old primary into a replica",
              lambda: info_field(c.cli("redis", "INFO", "replication"), "master_link_status") == "up", seconds=60)
        until("a direct message ok'd again", lambda: publish("after")[0] == 200, seconds=30)
        # The messages live in the inbox hash (redis/scripts/inbox.rs).
        contents = c.cli("redis-replica", "HVALS", "wsgate:inbox-msgs:{olga}")
        if "before" not in contents or "after" not in contents:
            fail(f"the new primary lacks an ok'd message: {contents!r}")
        step("redis started again: Sentinel made it a replica of redis-replica; direct messages ok'd again, "
             "the one ok'd before the kill is on the new primary")
    finally:
        c.stop_all()


def cluster_profile(binary, work):
    services = merged("docker-compose.cluster.yml", "redis-cluster")
    nodes = sorted(n for n, s in services.items() if "--cluster-enabled yes" in " ".join(map(str, s.get("command") or [])))
    c = Compose(services, [*nodes, "redis-cluster-create", "wsgate-1"], work)
    try:
        for n in nodes:
            c.start_service(n)
        for n in nodes:
            until(f"{n} answers", lambda n=n: c.cli(n, "PING") == "PONG")
        # The job runs at every `up`: once to form the cluster, and again
        # right after (a second run must leave it alone and succeed).
        for run in (1, 2):
            c.start_service("redis-cluster-create")
            proc = c.procs["redis-cluster-create"]
            if proc.wait(timeout=60) != 0:
                fail(f"redis-cluster-create run {run} failed: {c.log('redis-cluster-create')[-800:]}")
            c.procs.pop("redis-cluster-create")
        if "cluster already formed" not in c.log("redis-cluster-create"):
            fail("the second run of redis-cluster-create did not see the cluster formed")
        until("cluster_state:ok", lambda: info_field(c.cli(nodes[0], "CLUSTER", "INFO"), "cluster_state") == "ok")

        def layout():
            lines = [line.split() for line in c.cli(nodes[0], "CLUSTER", "NODES").splitlines()]
            masters = [f for f in lines if "master" in f[2].split(",")]
            replicas = [f for f in lines if "slave" in f[2].split(",")]
            paired = {f[3] for f in replicas} == {f[0] for f in masters}
            return len(masters) == 3 and len(replicas) == 3 and paired and (masters, replicas)
        masters, replicas = until("3 primaries with a replica each", layout)
        # Hostnames travel by gossip: every node is named once it has spread.
        until("CLUSTER SLOTS names the six nodes by hostname",
              lambda: len(set(re.findall(r"redis-cluster-\d", c.cli(nodes[0], "CLUSTER", "SLOTS")))) == 6)
        step(f"redis-cluster: six nodes formed by redis-cluster-create (3 primaries, 3 replicas, named by "
             f"hostname); run again, it saw the cluster formed and exited 0")

        env = gateway_env(services["wsgate-1"], c.addr["wsgate-1"])
        if env.get("WSGATE_REDIS_MODE") != "cluster":
            fail(f"wsgate-1 mode {env.get('WSGATE_REDIS_MODE')}")
        proc = c.start("wsgate-1", [binary], env=env)
        admin, key = env["WSGATE_ADMIN_LISTEN"], env["WSGATE_API_KEY"]
        ready = until("wsgate-1 ready or exited",
                      lambda: "exited" if proc.poll() is not None
                      else live_ns.http(admin, key, "GET", "/readyz")[0] == 200 and "ready", seconds=30)
        if ready == "exited":
            fail(f"wsgate-1 exited with {proc.returncode}: {c.log('wsgate-1')[-800:]}")
        else:
            status, body = live_ns.http(admin, key, "POST", "/api/v1/publish", {"to": "olga", "content": "x"})
            if status != 200:
                fail(f"a direct message in cluster mode: {status} {body}")
            step("wsgate-1 in cluster mode with the six seeds: ready, a direct message ok'd")

        # Node lines: id, ip:port@bus,hostname, flags, primary id, ...
        victim = masters[0][1].split(",")[-1]
        heir = next(f[1].split(",")[-1] for f in replicas if f[3] == masters[0][0])
        c.kill(victim)
        survivor = next(n for n in nodes if n not in (victim, heir))
        until(f"{heir} takes the slots of {victim}",
              lambda: c.cli(heir, "ROLE").splitlines()[0] == "master"
              and info_field(c.cli(survivor, "CLUSTER", "INFO"), "cluster_state") == "ok", seconds=60)
        if ready == "exited":
            step(f"kill -9 {victim} (a primary): its replica {heir} took its slots, cluster_state ok")
            return
        # Ready again (not ready meanwhile only if its own node channel or the
        # broadcast channel lived on that shard, contract section 6).
        until("wsgate-1 ready after the failover", lambda: live_ns.http(admin, key, "GET", "/readyz")[0] == 200)
        until("a direct message ok'd after the failover",
              lambda: live_ns.http(admin, key, "POST", "/api/v1/publish", {"to": "olga", "content": "y"})[0] == 200)
        step(f"kill -9 {victim} (a primary): its replica {heir} took its slots, cluster_state ok; wsgate-1 "
             "ready and taking direct messages")
    finally:
        c.stop_all()


def main():
    binary = sys.argv[1]
    work = tempfile.mkdtemp(prefix="wsgate-compose-redis.")
    try:
        sentinel_profile(binary, os.path.join(work, "sentinel"))
        cluster_profile(binary, os.path.join(work, "cluster"))
        return 0
    finally:
        if os.environ.get("KEEP_WORK") == "1":
            print(f"  logs kept in {work}")
        else:
            subprocess.run(["rm", "-rf", work], check=False)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (AssertionError, subprocess.SubprocessError) as exc:
        print(f"  FAILED: {exc}", flush=True)
        sys.exit(1)

#!/usr/bin/env python3
"""What docker-compose.yml must hold beyond its syntax (checked elsewhere).

Three wsgate replicas with distinct node ids on the shared Redis, readiness
health checks on the admin port, Redis with an append-only file and a health
check, nginx upstreams and Prometheus targets naming exactly those replicas,
WebSocket upgrade headers and long timeouts in nginx, Grafana provisioned
with the single-source dashboard.

The two Redis profiles, as `docker-compose config` merges them:
redis-sentinel (docker-compose.sentinel.yml): a replica of `redis`, three or
more Sentinels monitoring it under one name with a majority quorum, and the
nodes in sentinel mode listing exactly those Sentinels, that name, and no
more replicas to wait for than run. redis-cluster (docker-compose.cluster.yml):
six cluster-enabled Redis nodes with their own volumes and AOF, a one-shot
job forming them with one replica each once they are healthy, and the nodes
in cluster mode seeded with exactly those six, started after the job.
"""

import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    problems = []
    with open(os.path.join(ROOT, "docker-compose.yml"), encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    services = compose.get("services", {})
    replicas = {n: s for n, s in services.items() if s.get("image", "").startswith("wsgate") or "build" in s}
    if len(replicas) != 3:
        problems.append(f"expected 3 wsgate replicas, found {sorted(replicas)}")
    ids = {}
    for name, svc in replicas.items():
        env = svc.get("environment", {})
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        ids[name] = env.get("WSGATE_NODE_ID")
        if env.get("WSGATE_REDIS_URL") != "redis://redis:6379":
            problems.append(f"{name}: WSGATE_REDIS_URL is {env.get('WSGATE_REDIS_URL')!r}")
        test = " ".join(svc.get("healthcheck", {}).get("test", []))
        if "/readyz" not in test or "9090" not in test:
            problems.append(f"{name}: healthcheck does not ask /readyz on the admin port 9090")
        if "redis" not in (svc.get("depends_on") or {}):
            problems.append(f"{name}: does not depend on redis")
    if len(set(ids.values())) != len(ids) or None in ids.values():
        problems.append(f"node ids are not distinct: {ids}")

    redis = services.get("redis", {})
    cmd = " ".join(map(str, redis.get("command", [])))
    if not re.search(r"--appendonly\s+yes", cmd):
        problems.append("redis: append-only file is not on")
    if "healthcheck" not in redis:
        problems.append("redis: no healthcheck")

    with open(os.path.join(ROOT, "deploy/nginx/nginx.conf"), encoding="utf-8") as f:
        nginx = f.read()
    upstreams = set(re.findall(r"^\s*server\s+([\w.-]+):8080\b", nginx, re.M))
    if upstreams != set(replicas):
        problems.append(f"nginx upstream {sorted(upstreams)} != replicas {sorted(replicas)}")
    for needle in ("proxy_http_version 1.1", "proxy_set_header Upgrade $http_upgrade",
                   "proxy_set_header Connection $connection_upgrade", "location /ws"):
        if needle not in nginx:
            problems.append(f"nginx.conf lacks `{needle}`")
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        m = re.search(directive + r"\s+(\d+)s?;", nginx)
        if not m or int(m.group(1)) < 300:
            problems.append(f"nginx {directive} missing or under 300s")
    ports = services.get("nginx", {}).get("ports", [])
    if "8080:8080" not in [str(p) for p in ports]:
        problems.append("nginx does not publish 8080")

    with open(os.path.join(ROOT, "deploy/prometheus/prometheus.yml"), encoding="utf-8") as f:
        prom = yaml.safe_load(f)
    job = next((j for j in prom.get("scrape_configs", []) if j.get("job_name") == "wsgate"), None)
    if not job:
        problems.append("prometheus.yml has no job_name: wsgate")
    else:
        targets = {t for sc in job.get("static_configs", []) for t in sc.get("targets", [])}
        if targets != {f"{r}:9090" for r in replicas}:
            problems.append(f"prometheus targets {sorted(targets)} != replicas' admin ports")
        if job.get("metrics_path", "/metrics") != "/metrics":
            problems.append("prometheus scrapes another path than /metrics")

    grafana = services.get("grafana", {})
    vols = " ".join(grafana.get("volumes", []))
    if "./helm/wsgate/dashboards:" not in vols:
        problems.append("grafana does not mount helm/wsgate/dashboards (the single source)")
    if "3000:3000" not in [str(p) for p in grafana.get("ports", [])]:
        problems.append("grafana is not on localhost:3000")
    pvols = " ".join(services.get("prometheus", {}).get("volumes", []))
    if "./helm/wsgate/rules:/etc/prometheus/rules" not in pvols:
        problems.append("prometheus does not mount helm/wsgate/rules (the single source)")

    problems += sentinel_profile()
    problems += cluster_profile()

    for p in problems:
        print(f"  {p}")
    print(f"  compose semantics: {len(problems)} problems")
    return 1 if problems else 0


def merged(override, profile):
    """The configuration docker-compose runs with an override file and a profile."""
    out = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "-f", override,
                          "--profile", profile, "config"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return yaml.safe_load(out)["services"]


def command_text(svc):
    cmd = svc.get("command", [])
    return " ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd)


def env_of(svc):
    env = svc.get("environment", {})
    return dict(e.split("=", 1) for e in env) if isinstance(env, list) else env


def gateways(services):
    return {n: s for n, s in services.items() if "build" in s}


def sentinel_profile():
    problems = []
    services = merged("docker-compose.sentinel.yml", "redis-sentinel")
    replicas = {n: s for n, s in services.items()
                if re.search(r"--replicaof\s+redis\s+6379\b", command_text(s))}
    if len(replicas) != 1:
        problems.append(f"sentinel profile: expected one replica of redis, found {sorted(replicas)}")
    for n, s in replicas.items():
        if not re.search(r"--appendonly\s+yes", command_text(s)):
            problems.append(f"sentinel profile: {n} has no append-only file")
    sentinels, masters = {}, set()
    for n, s in services.items():
        m = re.search(r"sentinel monitor (\S+) redis 6379 (\d+)", command_text(s))
        if m:
            sentinels[n] = int(m.group(2))
            masters.add(m.group(1))
            if "port 26379" not in command_text(s):
                problems.append(f"sentinel profile: {n} does not listen on 26379")
    if len(sentinels) < 3:
        problems.append(f"sentinel profile: {len(sentinels)} Sentinels, need at least 3")
    if len(masters) != 1:
        problems.append(f"sentinel profile: Sentinels monitor different names {sorted(masters)}")
    for n, q in sentinels.items():
        if q <= len(sentinels) // 2 or q > len(sentinels):
            problems.append(f"sentinel profile: {n} quorum {q} is not a majority of {len(sentinels)}")
    want_url = ",".join(f"redis://{n}:26379" for n in sorted(sentinels))
    for n, s in gateways(services).items():
        env = env_of(s)
        if env.get("WSGATE_REDIS_MODE") != "sentinel":
            problems.append(f"sentinel profile: {n} WSGATE_REDIS_MODE is {env.get('WSGATE_REDIS_MODE')!r}")
        url = ",".join(sorted(env.get("WSGATE_REDIS_URL", "").split(",")))
        if url != want_url:
            problems.append(f"sentinel profile: {n} WSGATE_REDIS_URL {url!r} != the Sentinels {want_url!r}")
        if masters and env.get("WSGATE_REDIS_SENTINEL_MASTER") not in masters:
            problems.append(f"sentinel profile: {n} master {env.get('WSGATE_REDIS_SENTINEL_MASTER')!r} "
                            f"is not the monitored {sorted(masters)}")
        if int(env.get("WSGATE_REDIS_WAIT_REPLICAS", 0)) > len(replicas):
            problems.append(f"sentinel profile: {n} waits for more replicas than run")
    return problems


def cluster_profile():
    problems = []
    services = merged("docker-compose.cluster.yml", "redis-cluster")
    nodes = {n: s for n, s in services.items() if "--cluster-enabled yes" in command_text(s)}
    if len(nodes) != 6:
        problems.append(f"cluster profile: expected 6 cluster nodes, found {sorted(nodes)}")
    volumes = set()
    for n, s in nodes.items():
        cmd = command_text(s)
        for needle in ("--appendonly yes", "--maxmemory-policy noeviction", "--cluster-config-file /data/"):
            if needle not in cmd:
                problems.append(f"cluster profile: {n} lacks {needle}")
        if s.get("hostname") != n:
            problems.append(f"cluster profile: {n} hostname is {s.get('hostname')!r}")
        if "healthcheck" not in s:
            problems.append(f"cluster profile: {n} has no healthcheck")
        data = [v for v in s.get("volumes", []) if str(v).split(":")[1:2] == ["/data"]]
        if len(data) != 1:
            problems.append(f"cluster profile: {n} has no volume of its own at /data")
        volumes.update(map(str, data))
    if len(volumes) != len(nodes):
        problems.append("cluster profile: cluster nodes share a volume")
    create = services.get("redis-cluster-create", {})
    cmd = command_text(create)
    seeds = re.findall(r"\b(redis-cluster-\d+):6379\b", cmd.split("--cluster create", 1)[-1])
    if "--cluster create" not in cmd or sorted(seeds) != sorted(nodes):
        problems.append(f"cluster profile: redis-cluster-create does not form all six nodes: {cmd!r}")
    if "--cluster-replicas 1" not in cmd:
        problems.append("cluster profile: redis-cluster-create without --cluster-replicas 1")
    deps = create.get("depends_on", {})
    if sorted(deps) != sorted(nodes) or any(d.get("condition") != "service_healthy" for d in deps.values()):
        problems.append("cluster profile: redis-cluster-create does not wait for every node to be healthy")
    if create.get("restart", "no") != "no":
        problems.append("cluster profile: redis-cluster-create must run once (restart: no)")
    for n, s in gateways(services).items():
        env = env_of(s)
        if env.get("WSGATE_REDIS_MODE") != "cluster":
            problems.append(f"cluster profile: {n} WSGATE_REDIS_MODE is {env.get('WSGATE_REDIS_MODE')!r}")
        urls = sorted(env.get("WSGATE_REDIS_URL", "").split(","))
        if urls != sorted(f"redis://{x}:6379" for x in nodes):
            problems.append(f"cluster profile: {n} seeds {urls} are not the cluster nodes")
        dep = s.get("depends_on", {}).get("redis-cluster-create", {})
        if dep.get("condition") != "service_completed_successfully":
            problems.append(f"cluster profile: {n} does not wait for redis-cluster-create")
    return problems


if __name__ == "__main__":
    sys.exit(main())

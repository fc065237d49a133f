#!/usr/bin/env python3
"""What docker-compose.yml must hold beyond its syntax (checked elsewhere).

Three wsgate replicas with distinct node ids on the shared Redis, readiness
health checks on the admin port, Redis with an append-only file and a health
check, nginx upstreams and Prometheus targets naming exactly those replicas,
WebSocket upgrade headers and long timeouts in nginx, Grafana provisioned
with the single-source dashboard.
"""

import os
import re
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

    for p in problems:
        print(f"  {p}")
    print(f"  compose semantics: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

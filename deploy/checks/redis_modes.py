#!/usr/bin/env python3
"""Render tests of the chart's Redis modes: the flags and objects each mode
must produce, not just that it renders.

  redis_modes.py CHART

For each case: render the chart (helm-python-sdk, as helm_chart.py does) with
its values, then assert on the objects: the WSGATE_REDIS_* variables the
pods get (ConfigMap and Deployment env, the URL decoded from its Secret), and
for the bundled Redis the StatefulSets, headless Services, PodDisruption-
Budgets, anti-affinity and the Sentinel configuration. Prints one line per
case; exits 1 when one fails.
"""

import base64
import sys

import helm_python as helm
import yaml

RELEASE = "wsgate-ci"
NAMESPACE = "realtime"
AUTH = {"auth": {"jwtSecret": "ci", "apiKey": "ci"}}


def render(chart_path, values):
    with helm.Chart.load(chart_path) as chart:
        chart.validate_schema(values)
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = {}
    for template, text in manifests.items():
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


class Rendered:
    """The objects of one render, with the pods' view of the settings."""

    def __init__(self, objects):
        self.objects = objects
        deployment = self.get("Deployment", RELEASE)
        self.container = deployment["spec"]["template"]["spec"]["containers"][0]
        self.config = self.get("ConfigMap", RELEASE)["data"]
        self.env = {e["name"]: e for e in self.container.get("env", [])}
        self.env_order = [e["name"] for e in self.container.get("env", [])]

    def get(self, kind, name):
        assert (kind, name) in self.objects, f"no {kind} {name}; have {sorted(self.objects)}"
        return self.objects[(kind, name)]

    def has(self, kind, name):
        return (kind, name) in self.objects

    def setting(self, name):
        """What the pod's variable holds: ConfigMap, plain env value, or the
        decoded Secret key it points at (None when unset)."""
        if name in self.env:
            e = self.env[name]
            if "value" in e:
                return e["value"]
            ref = e["valueFrom"]["secretKeyRef"]
            if self.has("Secret", ref["name"]):
                data = self.get("Secret", ref["name"])["data"]
                return base64.b64decode(data[ref["key"]]).decode()
            return f"<secret {ref['name']}/{ref['key']}>"
        return self.config.get(name)


def fqdn(pod, service):
    return f"{pod}.{service}.{NAMESPACE}.svc.cluster.local"


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def eq(got, want, what):
    expect(got == want, f"{what}: {got!r} != {want!r}")


def check_single_bundled(r):
    eq(r.setting("WSGATE_REDIS_MODE"), "single", "mode")
    eq(r.setting("WSGATE_REDIS_URL"), "redis://wsgate-ci-redis:6379", "url")
    eq(r.setting("WSGATE_REDIS_WAIT_REPLICAS"), "0", "wait replicas")
    eq(r.setting("WSGATE_REDIS_SENTINEL_MASTER"), None, "sentinel master")
    sts = r.get("StatefulSet", "wsgate-ci-redis")
    eq(sts["spec"]["replicas"], 1, "redis pods")
    eq(sts["spec"]["template"]["spec"]["containers"][0].get("args"), ["/etc/redis/redis.conf"], "redis args")
    expect(not r.has("StatefulSet", "wsgate-ci-redis-sentinel"), "a Sentinel StatefulSet without sentinel.enabled")
    expect(not r.has("PodDisruptionBudget", "wsgate-ci-redis"), "a Redis PDB for a single instance")
    eq(r.get("Service", "wsgate-ci-redis")["spec"]["clusterIP"], "None", "headless redis Service")


def sentinel_checks(r, pods, sentinels, quorum, master, wait, hard, min_available):
    eq(r.setting("WSGATE_REDIS_MODE"), "sentinel", "mode")
    eq(r.setting("WSGATE_REDIS_SENTINEL_MASTER"), master, "sentinel master")
    eq(r.setting("WSGATE_REDIS_WAIT_REPLICAS"), str(wait), "wait replicas")
    urls = [f"redis://{fqdn(f'wsgate-ci-redis-sentinel-{i}', 'wsgate-ci-redis-sentinel')}:26379"
            for i in range(sentinels)]
    eq(r.setting("WSGATE_REDIS_URL"), ",".join(urls), "url: every Sentinel by its pod DNS name")

    for name, component, count, port in (("wsgate-ci-redis", "redis", pods, 6379),
                                          ("wsgate-ci-redis-sentinel", "redis-sentinel", sentinels, 26379)):
        sts = r.get("StatefulSet", name)
        eq(sts["spec"]["replicas"], count, f"{name} pods")
        eq(sts["spec"]["serviceName"], name, f"{name} governing Service")
        svc = r.get("Service", name)
        eq(svc["spec"]["clusterIP"], "None", f"{name} Service is headless")
        eq(svc["spec"].get("publishNotReadyAddresses"), True, f"{name} publishes pods before they are ready")
        eq(svc["spec"]["selector"]["app.kubernetes.io/component"], component, f"{name} selector")
        eq(svc["spec"]["ports"][0]["port"], port, f"{name} port")
        labels = sts["spec"]["template"]["metadata"]["labels"]
        eq(labels["app.kubernetes.io/component"], component, f"{name} pod labels")
        anti = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        if hard:
            term = anti["requiredDuringSchedulingIgnoredDuringExecution"][0]
        else:
            term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        eq(term["topologyKey"], "kubernetes.io/hostname", f"{name} anti-affinity key")
        eq(term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"], component,
           f"{name} anti-affinity selects its own pods")
        container = sts["spec"]["template"]["spec"]["containers"][0]
        eq(container["env"][0]["name"], "POD_NAME", f"{name} gets its pod name")
        script = "start-redis.sh" if component == "redis" else "start-sentinel.sh"
        eq(container["command"], ["sh", f"/etc/redis/{script}"], f"{name} command")

    pdb = r.get("PodDisruptionBudget", "wsgate-ci-redis")["spec"]
    eq(pdb.get("maxUnavailable"), 1, "redis PDB")
    eq(pdb["selector"]["matchLabels"]["app.kubernetes.io/component"], "redis", "redis PDB selector")
    pdb = r.get("PodDisruptionBudget", "wsgate-ci-redis-sentinel")["spec"]
    eq(pdb.get("minAvailable"), min_available, "sentinel PDB keeps quorum and majority")

    data = r.get("ConfigMap", "wsgate-ci-redis")["data"]
    sentinel_sh = data["start-sentinel.sh"]
    first = fqdn("wsgate-ci-redis-0", "wsgate-ci-redis")
    for line in (f"sentinel monitor {master} $primary 6379 {quorum}",
                 f'[ -n "$primary" ] || primary="{first}"',
                 "sentinel resolve-hostnames yes", "sentinel announce-hostnames yes",
                 "sentinel announce-ip $me",
                 f"sentinel down-after-milliseconds {master} 5000",
                 "exec redis-sentinel /data/sentinel.conf"):
        expect(line in sentinel_sh, f"start-sentinel.sh lacks {line!r}")
    redis_sh = data["start-redis.sh"]
    for line in (f'first="{first}"', 'echo "replica-announce-ip $me" >>/data/redis.conf',
                 'echo "replicaof $primary 6379" >>/data/redis.conf',
                 f'SENTINEL get-master-addr-by-name "{master}"', f"for i in $(seq 0 {pods - 1}); do",
                 "exec redis-server /data/redis.conf"):
        expect(line in redis_sh, f"start-redis.sh lacks {line!r}")
    expect("maxmemory-policy noeviction" in data["redis.conf"], "redis.conf: noeviction")
    expect("protected-mode no" in data["redis.conf"].splitlines(),
           "redis.conf: protected-mode no (pods reach each other without a password)")


def check_sentinel_bundled(r):
    sentinel_checks(r, pods=3, sentinels=3, quorum=2, master="mymaster", wait=1, hard=False,
                    min_available=2)


def check_sentinel_bundled_custom(r):
    sentinel_checks(r, pods=5, sentinels=5, quorum=3, master="wsgate-primary", wait=2, hard=True,
                    min_available=3)


def check_network_policy(r):
    redis_np = r.get("NetworkPolicy", "wsgate-ci-redis")["spec"]["ingress"][0]
    sources = {f["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for f in redis_np["from"]}
    eq(sources, {"gateway", "redis", "redis-sentinel"}, "Redis ingress sources")
    s_np = r.get("NetworkPolicy", "wsgate-ci-redis-sentinel")["spec"]["ingress"][0]
    eq(s_np["ports"][0]["port"], "sentinel", "Sentinel ingress port")
    sources = {f["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for f in s_np["from"]}
    eq(sources, {"gateway", "redis", "redis-sentinel"}, "Sentinel ingress sources")


def no_bundled(r):
    for kind, name in (("StatefulSet", "wsgate-ci-redis"), ("StatefulSet", "wsgate-ci-redis-sentinel"),
                       ("Service", "wsgate-ci-redis")):
        expect(not r.has(kind, name), f"external Redis, yet the chart renders {kind} {name}")


def check_external_single(r):
    no_bundled(r)
    eq(r.setting("WSGATE_REDIS_MODE"), "single", "mode")
    eq(r.setting("WSGATE_REDIS_URL"), "rediss://:pw@redis.example.com:6380/0", "url from the chart's Secret")
    eq(r.env["WSGATE_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"], "wsgate-ci-redis-url", "url Secret")
    eq(r.setting("WSGATE_REDIS_SENTINEL_MASTER"), None, "sentinel master in single mode")
    eq(r.setting("WSGATE_REDIS_WAIT_REPLICAS"), "1", "wait replicas")
    eq(r.setting("WSGATE_REDIS_WAIT_TIMEOUT"), "2s", "wait timeout")


def check_external_sentinel_secret(r):
    no_bundled(r)
    eq(r.setting("WSGATE_REDIS_MODE"), "sentinel", "mode")
    eq(r.setting("WSGATE_REDIS_SENTINEL_MASTER"), "wsgate-primary", "sentinel master")
    ref = r.env["WSGATE_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    eq((ref["name"], ref["key"]), ("redis-sentinels", "urls"), "url from the existing Secret")
    expect(not r.has("Secret", "wsgate-ci-redis-url"), "a URL Secret beside the existing one")


def check_external_cluster_url(r):
    no_bundled(r)
    eq(r.setting("WSGATE_REDIS_MODE"), "cluster", "mode")
    eq(r.setting("WSGATE_REDIS_URL"),
       "redis://c-0.redis:6379,redis://c-1.redis:6379,redis://c-2.redis:6379", "seed list")
    eq(r.setting("WSGATE_REDIS_SENTINEL_MASTER"), None, "sentinel master in cluster mode")


def check_external_cluster_addresses(r):
    no_bundled(r)
    eq(r.setting("WSGATE_REDIS_MODE"), "cluster", "mode")
    eq(r.setting("WSGATE_REDIS_URL"),
       "rediss://wsgate:$(REDIS_PASSWORD)@c-0.redis:6379,rediss://wsgate:$(REDIS_PASSWORD)@c-1.redis:6379,"
       "rediss://wsgate:$(REDIS_PASSWORD)@c-2.redis:6379", "seed list with TLS, user and password reference")
    ref = r.env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    eq((ref["name"], ref["key"]), ("redis-cluster-auth", "password"), "password from its Secret")
    expect(r.env_order.index("REDIS_PASSWORD") < r.env_order.index("WSGATE_REDIS_URL"),
           "REDIS_PASSWORD must come before WSGATE_REDIS_URL (Kubernetes expands only earlier variables)")
    expect(not r.has("Secret", "wsgate-ci-redis-url"), "a URL Secret for addresses")


def check_external_sentinel_addresses(r):
    no_bundled(r)
    eq(r.setting("WSGATE_REDIS_MODE"), "sentinel", "mode")
    eq(r.setting("WSGATE_REDIS_URL"), "redis://s-0:26379,redis://s-1:26379,redis://s-2:26379",
       "Sentinel list without password")
    expect("REDIS_PASSWORD" not in r.env, "REDIS_PASSWORD without a password Secret")
    eq(r.setting("WSGATE_REDIS_SENTINEL_MASTER"), "mymaster", "sentinel master")


def check_standalone(r):
    for name in ("WSGATE_REDIS_URL", "WSGATE_REDIS_MODE", "WSGATE_REDIS_WAIT_REPLICAS"):
        eq(r.setting(name), None, f"{name} in standalone mode")
    no_bundled(r)


SENTINEL = {"redis": {"sentinel": {"enabled": True}}}
EXTERNAL = {"enabled": False}
CASES = [
    ("bundled single instance (default)", {}, check_single_bundled),
    ("bundled primary + 2 replicas + 3 Sentinels", SENTINEL, check_sentinel_bundled),
    ("bundled Sentinel: 4 replicas, 5 Sentinels, quorum 3, hard anti-affinity",
     {"redis": {"replicas": 4, "waitReplicas": 2, "antiAffinity": "hard",
                "sentinel": {"enabled": True, "replicas": 5, "quorum": 3, "masterName": "wsgate-primary"}}},
     check_sentinel_bundled_custom),
    ("bundled Sentinel network policies", dict(SENTINEL, networkPolicy={"enabled": True}), check_network_policy),
    ("external single from url",
     {"redis": EXTERNAL, "externalRedis": {"url": "rediss://:pw@redis.example.com:6380/0",
                                           "waitReplicas": 1, "waitTimeout": "2s"}},
     check_external_single),
    ("external sentinel from an existing Secret",
     {"redis": EXTERNAL, "externalRedis": {"mode": "sentinel", "sentinelMaster": "wsgate-primary",
                                           "existingSecret": "redis-sentinels", "existingSecretKey": "urls"}},
     check_external_sentinel_secret),
    ("external cluster from a url list",
     {"redis": EXTERNAL, "externalRedis": {
         "mode": "cluster", "url": "redis://c-0.redis:6379,redis://c-1.redis:6379,redis://c-2.redis:6379"}},
     check_external_cluster_url),
    ("external cluster from addresses, TLS, user, password Secret",
     {"redis": EXTERNAL, "externalRedis": {
         "mode": "cluster", "addresses": ["c-0.redis:6379", "c-1.redis:6379", "c-2.redis:6379"],
         "tls": True, "username": "wsgate",
         "password": {"existingSecret": "redis-cluster-auth", "key": "password"}}},
     check_external_cluster_addresses),
    ("external sentinel from addresses",
     {"redis": EXTERNAL, "externalRedis": {"mode": "sentinel", "addresses": ["s-0:26379", "s-1:26379", "s-2:26379"]}},
     check_external_sentinel_addresses),
    ("standalone", {"redis": EXTERNAL, "replicaCount": 1}, check_standalone),
]


def main():
    chart = sys.argv[1]
    failed = 0
    for name, values, check in CASES:
        try:
            check(Rendered(render(chart, {**AUTH, **values})))
            print(f"  ok    {name}")
        except (AssertionError, helm.HelmError, KeyError) as exc:
            failed += 1
            print(f"  FAIL  {name}: {type(exc).__name__}: {exc}")
    print(f"  {len(CASES) - failed} Redis mode cases passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

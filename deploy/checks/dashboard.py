#!/usr/bin/env python3
"""Structure and query checks for the wsgate Grafana dashboard.

Usage:
  dashboard.py check DASHBOARD.json   structure; prints problems, exits 1 on any
  dashboard.py rules DASHBOARD.json   a Prometheus rules file (one recording rule
                                      per panel query) on stdout, so that
                                      `promtool check rules` parses every query
  dashboard.py names DASHBOARD.json RULES.yaml PROTOCOL.md
                                      every metric the dashboard and the alert
                                      rules use is in the contract, registered
                                      by the server (crates/wsgate/src), one
                                      of ANNOUNCED, up, or of the process
                                      collector
  dashboard.py unexported DASHBOARD.json
                                      the metrics the dashboard uses that the
                                      server does not register yet (one a line)
  dashboard.py exprs DASHBOARD.json   JSON list of {panel, refId, expr} with the
                                      Grafana variables replaced, for live checks

Grafana variables are replaced by what they hold in a plain deployment:
$job -> wsgate, $instance -> .*, $__rate_interval -> 1m.
"""

import glob
import json
import os
import re
import sys

SUBSTITUTIONS = [
    ("$__rate_interval", "1m"),
    ("${__rate_interval}", "1m"),
    ("$__interval", "1m"),
    ("$job", "wsgate"),
    ("${job}", "wsgate"),
    ("$instance", ".*"),
    ("${instance}", ".*"),
]


def substitute(expr):
    for name, value in SUBSTITUTIONS:
        expr = expr.replace(name, value)
    return expr


def panels(dashboard):
    """Every panel, rows' nested panels included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def check(dashboard):
    problems = []
    for key in ("uid", "title", "panels", "templating", "schemaVersion"):
        if key not in dashboard:
            problems.append(f"dashboard has no {key!r}")
    variables = {v.get("name") for v in dashboard.get("templating", {}).get("list", [])}
    if "datasource" not in variables:
        problems.append("no 'datasource' template variable (the dashboard must not pin a datasource uid)")
    seen = {}
    queries = 0
    for panel in panels(dashboard):
        pid = panel.get("id")
        title = panel.get("title", "?")
        if not isinstance(pid, int):
            problems.append(f"panel {title!r} has no integer id")
        elif pid in seen:
            problems.append(f"panel id {pid} used by {seen[pid]!r} and {title!r}")
        else:
            seen[pid] = title
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")):
            problems.append(f"panel {title!r} has no complete gridPos")
        if panel.get("type") == "row":
            continue
        if not panel.get("title"):
            problems.append(f"panel {pid} has no title")
        ds = panel.get("datasource")
        if not isinstance(ds, dict) or ds.get("type") != "prometheus" or not ds.get("uid"):
            problems.append(f"panel {title!r} has no prometheus datasource")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"panel {title!r} has no targets")
        refs = set()
        for target in targets:
            ref = target.get("refId")
            if not ref or ref in refs:
                problems.append(f"panel {title!r} has a missing or repeated refId {ref!r}")
            refs.add(ref)
            tds = target.get("datasource")
            if tds is not None and tds != ds:
                problems.append(f"panel {title!r} target {ref} uses another datasource")
            if not str(target.get("expr", "")).strip():
                problems.append(f"panel {title!r} target {ref} has no expr")
            queries += 1
    return problems, len(seen), queries


def exprs(dashboard):
    out = []
    for panel in panels(dashboard):
        if panel.get("type") == "row":
            continue
        for target in panel.get("targets") or []:
            out.append({"panel": panel.get("title"), "refId": target.get("refId"),
                        "expr": substitute(target.get("expr", ""))})
    return out


def rules(dashboard):
    lines = ["groups:", "  - name: dashboard-queries", "    rules:"]
    for n, item in enumerate(exprs(dashboard)):
        name = re.sub(r"[^a-zA-Z0-9_]", "_", f"{item['panel']}_{item['refId']}").lower()
        lines.append(f"      - record: dashboard:q{n}:{name}")
        lines.append(f"        expr: {json.dumps(item['expr'])}")
    return "\n".join(lines) + "\n"


EXTRA_METRICS = {"up", "process_cpu_seconds_total", "process_resident_memory_bytes"}

# Names agreed for work in progress, neither in the contract nor registered by
# the server yet: allowed in the dashboard and the rules, and listed by
# `unexported` (the live check tolerates no data for them) until the server
# registers them.
# None now: the webhooks names announced for issue #13 are registered by
# crates/wsgate/src/metrics/webhooks.rs.
ANNOUNCED: set = set()

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER_SRC = os.path.join(ROOT, "crates", "wsgate", "src")


def server_metrics():
    """Metric names the server registers: every "wsgate_..." string literal
    in its sources (the metrics module names each one once)."""
    found = set()
    for path in glob.glob(os.path.join(SERVER_SRC, "**", "*.rs"), recursive=True):
        with open(path, encoding="utf-8") as f:
            found |= set(re.findall(r'"(wsgate_[a-z_]+)"', f.read()))
    return found


def metric_names(expr):
    """The metric names in a PromQL expression (histogram suffixes kept)."""
    stripped = re.sub(r"\{[^}]*\}", "", expr)
    stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", stripped)
    return [n for n in re.findall(r"\b([a-z_][a-z0-9_]*)\b(?!\s*\()", stripped)
            if n.startswith("wsgate_") or n.startswith("process_") or n == "up"]


def base_name(name):
    return re.sub(r"_(bucket|sum|count)$", "", name)


def names(dashboard_path, rules_path, protocol_path):
    import yaml

    with open(protocol_path, encoding="utf-8") as f:
        contract = set(re.findall(r"`(wsgate_[a-z_]+)`", f.read()))
    server = server_metrics()
    known = contract | server | ANNOUNCED | EXTRA_METRICS
    with open(dashboard_path, encoding="utf-8") as f:
        queries = [(f"dashboard panel {i['panel']!r}", i["expr"]) for i in exprs(json.load(f))]
    with open(rules_path, encoding="utf-8") as f:
        for group in yaml.safe_load(f)["groups"]:
            queries += [(f"rule {r.get('alert') or r.get('record')}", str(r["expr"])) for r in group["rules"]]
    unknown = []
    used = set()
    for where, expr in queries:
        for name in metric_names(expr):
            base = base_name(name)
            used.add(base if base in known else name)
            if name not in known and base not in known:
                unknown.append(f"{where}: {name}")
    for u in unknown:
        print(f"unknown metric: {u}")
    for name in sorted(used & ANNOUNCED - server):
        print(f"announced, not registered by the server yet: {name}")
    for name in sorted(used & contract - server):
        print(f"in the contract, not registered by the server yet: {name}")
    print(f"{len(queries)} queries, {len(known)} known metric names, {len(unknown)} unknown")
    return 1 if unknown else 0


def unexported(dashboard):
    """Metrics of the dashboard's queries that the server does not register."""
    server = server_metrics() | EXTRA_METRICS
    names = {base_name(n) if base_name(n) in server or n not in server else n
             for item in exprs(dashboard) for n in metric_names(item["expr"])}
    return sorted(n for n in names if n not in server and base_name(n) not in server)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "names":
        return names(*sys.argv[2:5])
    if len(sys.argv) != 3 or sys.argv[1] not in ("check", "rules", "exprs", "unexported"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[2], encoding="utf-8") as f:
        dashboard = json.load(f)
    mode = sys.argv[1]
    if mode == "check":
        problems, npanels, nqueries = check(dashboard)
        for p in problems:
            print(f"dashboard: {p}")
        print(f"dashboard: {npanels} panels, {nqueries} queries, {len(problems)} problems")
        return 1 if problems else 0
    if mode == "unexported":
        print("\n".join(unexported(dashboard)))
        return 0
    if mode == "rules":
        sys.stdout.write(rules(dashboard))
        return 0
    json.dump(exprs(dashboard), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

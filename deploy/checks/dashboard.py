#!/usr/bin/env python3
"""Structure and query checks for the wsgate Grafana dashboard.

Usage:
  dashboard.py check DASHBOARD.json   structure; prints problems, exits 1 on any
  dashboard.py rules DASHBOARD.json   a Prometheus rules file (one recording rule
                                      per panel query) on stdout, so that
                                      `promtool check rules` parses every query
  dashboard.py names DASHBOARD.json RULES.yaml PROTOCOL.md
                                      every metric the dashboard and the alert
                                      rules use is in the contract, or is
                                      wsgate_ready/wsgate_draining, up, or of
                                      the process collector
  dashboard.py exprs DASHBOARD.json   JSON list of {panel, refId, expr} with the
                                      Grafana variables replaced, for live checks

Grafana variables are replaced by what they hold in a plain deployment:
$job -> wsgate, $instance -> .*, $__rate_interval -> 1m.
"""

import json
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


EXTRA_METRICS = {"wsgate_ready", "wsgate_draining", "up",
                 "process_cpu_seconds_total", "process_resident_memory_bytes"}


def names(dashboard_path, rules_path, protocol_path):
    import yaml

    with open(protocol_path, encoding="utf-8") as f:
        known = set(re.findall(r"`(wsgate_[a-z_]+)`", f.read())) | EXTRA_METRICS
    with open(dashboard_path, encoding="utf-8") as f:
        queries = [(f"dashboard panel {i['panel']!r}", i["expr"]) for i in exprs(json.load(f))]
    with open(rules_path, encoding="utf-8") as f:
        for group in yaml.safe_load(f)["groups"]:
            queries += [(f"rule {r.get('alert') or r.get('record')}", str(r["expr"])) for r in group["rules"]]
    unknown = []
    for where, expr in queries:
        # Metric names: identifiers not followed by "(" and not label names.
        stripped = re.sub(r"\{[^}]*\}", "", expr)
        stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", stripped)
        for name in re.findall(r"\b([a-z_][a-z0-9_]*)\b(?!\s*\()", stripped):
            if not (name.startswith("wsgate_") or name.startswith("process_") or name == "up"):
                continue
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name not in known and base not in known:
                unknown.append(f"{where}: {name}")
    for u in unknown:
        print(f"unknown metric: {u}")
    print(f"{len(queries)} queries, {len(known)} known metric names, {len(unknown)} unknown")
    return 1 if unknown else 0


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "names":
        return names(*sys.argv[2:5])
    if len(sys.argv) != 3 or sys.argv[1] not in ("check", "rules", "exprs"):
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
    if mode == "rules":
        sys.stdout.write(rules(dashboard))
        return 0
    json.dump(exprs(dashboard), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

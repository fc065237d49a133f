#!/usr/bin/env python3
"""Write (or --check) the k8s/ copies of the two single-source files.

Plain manifests cannot read a file the way the chart's .Files.Get does, so
k8s/prometheusrule.yaml and k8s/grafana-dashboard.yaml embed, verbatim,
helm/wsgate/rules/wsgate-alerts.yaml and helm/wsgate/dashboards/wsgate.json.

  python3 deploy/checks/gen_k8s.py           rewrite them after editing a source
  python3 deploy/checks/gen_k8s.py --check   exit 1 when one is stale
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = "helm/wsgate/rules/wsgate-alerts.yaml"
DASHBOARD = "helm/wsgate/dashboards/wsgate.json"

HEADER = "# GENERATED from {src} by deploy/checks/gen_k8s.py: edit the source, then run it.\n"


def indent(text, spaces):
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def prometheusrule():
    return (HEADER.format(src=RULES)
            + "apiVersion: monitoring.coreos.com/v1\n"
            "kind: PrometheusRule\n"
            "metadata:\n"
            "  name: wsgate\n"
            "  namespace: wsgate\n"
            "  labels:\n"
            "    app.kubernetes.io/name: wsgate\n"
            "    app.kubernetes.io/part-of: wsgate\n"
            "spec:\n"
            + indent(read(RULES), 2))


def dashboard():
    body = read(DASHBOARD)
    if not body.endswith("\n"):
        body += "\n"
    return (HEADER.format(src=DASHBOARD)
            + "# For the Grafana sidecar, which loads ConfigMaps labelled grafana_dashboard: \"1\".\n"
            "apiVersion: v1\n"
            "kind: ConfigMap\n"
            "metadata:\n"
            "  name: wsgate-dashboard\n"
            "  namespace: wsgate\n"
            "  labels:\n"
            "    app.kubernetes.io/name: wsgate\n"
            "    app.kubernetes.io/part-of: wsgate\n"
            "    grafana_dashboard: \"1\"\n"
            "data:\n"
            "  wsgate.json: |\n"
            + indent(body, 4))


OUTPUTS = {"k8s/prometheusrule.yaml": prometheusrule, "k8s/grafana-dashboard.yaml": dashboard}


def main():
    check = "--check" in sys.argv[1:]
    stale = 0
    for rel, make in OUTPUTS.items():
        want = make()
        path = os.path.join(ROOT, rel)
        have = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if have == want:
            print(f"  {rel}: up to date")
        elif check:
            print(f"  {rel}: STALE (run python3 deploy/checks/gen_k8s.py)")
            stale += 1
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(want)
            print(f"  {rel}: written")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

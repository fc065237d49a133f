#!/usr/bin/env python3
"""Helpers for the manifest checks of scripts/check-deploy.sh.

  manifests.py split OUTDIR FILE...
      One file per object: OUTDIR/k8s/ (built-in kinds, for kubernetes-validate),
      OUTDIR/crd/ (monitoring.coreos.com kinds). Kustomization files are skipped.
  manifests.py crd-rules OUTDIR CRD_FILE...
      Writes the spec of every PrometheusRule to OUTDIR/<n>.rules.yaml for
      `promtool check rules`; prints the paths.
  manifests.py kustomization k8s/kustomization.yaml
      Every listed resource exists, and every manifest in the folder except
      *.example.yaml is listed.
  manifests.py same-source RENDER_DIR
      The chart's rendered dashboard ConfigMap and PrometheusRule hold exactly
      helm/wsgate/dashboards/wsgate.json and helm/wsgate/rules/wsgate-alerts.yaml.
"""

import glob
import json
import os
import re
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CRD_GROUPS = ("monitoring.coreos.com/",)


def split(outdir, files):
    os.makedirs(os.path.join(outdir, "k8s"), exist_ok=True)
    os.makedirs(os.path.join(outdir, "crd"), exist_ok=True)
    count = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            docs = list(yaml.safe_load_all(f))
        for doc in docs:
            if not doc:
                continue
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                print(f"  {path}: a document without kind/apiVersion")
                return 1
            if doc["kind"] == "Kustomization":
                continue
            kind_dir = "crd" if doc["apiVersion"].startswith(CRD_GROUPS) else "k8s"
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{doc['kind']}-{doc['metadata']['name']}")
            with open(os.path.join(outdir, kind_dir, f"{count:03d}-{name}.yaml"), "w", encoding="utf-8") as f:
                yaml.safe_dump(doc, f, sort_keys=False)
            count += 1
    print(f"  split {count} objects from {len(files)} files into {outdir}")
    return 0


def crd_rules(outdir, files):
    os.makedirs(outdir, exist_ok=True)
    n = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        if doc.get("kind") != "PrometheusRule":
            continue
        out = os.path.join(outdir, f"{n}.rules.yaml")
        with open(out, "w", encoding="utf-8") as f:
            yaml.safe_dump(doc["spec"], f, sort_keys=False)
        print(out)
        n += 1
    return 0 if n else 1


def kustomization(path):
    folder = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as f:
        k = yaml.safe_load(f)
    listed = k.get("resources", [])
    problems = [f"lists {r}, which does not exist" for r in listed
                if not os.path.exists(os.path.join(folder, r))]
    for file in sorted(glob.glob(os.path.join(folder, "*.yaml"))):
        base = os.path.basename(file)
        if base == os.path.basename(path) or base.endswith(".example.yaml"):
            continue
        if base not in listed:
            problems.append(f"does not list {base}")
    for p in problems:
        print(f"  kustomization.yaml {p}")
    print(f"  kustomization.yaml: {len(listed)} resources, {len(problems)} problems")
    return 1 if problems else 0


def same_source(render_dir):
    problems = []
    with open(os.path.join(ROOT, "helm/wsgate/dashboards/wsgate.json"), encoding="utf-8") as f:
        dashboard = f.read()
    with open(os.path.join(ROOT, "helm/wsgate/rules/wsgate-alerts.yaml"), encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    found = set()
    for path in glob.glob(os.path.join(render_dir, "*", "*.yaml")):
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        if doc.get("kind") == "ConfigMap" and "wsgate.json" in doc.get("data", {}):
            found.add("dashboard")
            if doc["data"]["wsgate.json"].rstrip("\n") != dashboard.rstrip("\n"):
                problems.append(f"{path}: dashboard differs from helm/wsgate/dashboards/wsgate.json")
            json.loads(doc["data"]["wsgate.json"])
            if doc["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
                problems.append(f"{path}: no grafana_dashboard: \"1\" label")
        if doc.get("kind") == "PrometheusRule":
            found.add("rules")
            if doc["spec"] != rules:
                problems.append(f"{path}: spec differs from helm/wsgate/rules/wsgate-alerts.yaml")
    for p in problems:
        print(f"  {p}")
    print(f"  single-source objects found: {sorted(found) or 'none'}; {len(problems)} problems")
    return 1 if problems else 0


def main():
    a = sys.argv[1:]
    if len(a) >= 3 and a[0] == "split":
        return split(a[1], a[2:])
    if len(a) >= 3 and a[0] == "crd-rules":
        return crd_rules(a[1], a[2:])
    if len(a) == 2 and a[0] == "kustomization":
        return kustomization(a[1])
    if len(a) == 2 and a[0] == "same-source":
        return same_source(a[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

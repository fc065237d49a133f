#!/usr/bin/env python3
"""Lint and render the wsgate Helm chart with helm-python-sdk (no helm binary).

helm-python-sdk binds Helm's Go SDK (libhelm_c) through ctypes: helm.lint()
is `helm lint` and Chart.render() is `helm template`.

Usage:
  helm_chart.py lint CHART [VALUES.yaml]      `helm lint --strict`; exit 1 on findings
  helm_chart.py render CHART OUTDIR [VALUES.yaml]
      `helm template`: writes one file per rendered object into OUTDIR
      (k8s/ for built-in kinds, crd/ for monitoring.coreos.com kinds, and
      hooks/ for test pods are also under k8s/), exit 1 on a render error
  helm_chart.py reject CHART BAD.yaml        lint (schema + templates) must REJECT these values
"""

import os
import re
import sys

import helm_python as helm
import yaml

KUBE_VERSION = os.environ.get("KUBE_VERSION", "1.34.0")
RELEASE = "wsgate-ci"
NAMESPACE = "realtime"
CRD_GROUPS = ("monitoring.coreos.com/",)


def load_values(path):
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def lint(chart, values_path):
    values = load_values(values_path)
    report = helm.lint(chart, values, strict=True, namespace=NAMESPACE,
                       kube_version=f"v{KUBE_VERSION}")
    failed = bool(report.get("errors"))
    for message in report.get("messages", []):
        severity = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}.get(message.get("severity"), "?")
        print(f"  [{severity}] {message.get('path')}: {message.get('error')}")
        # --strict: warnings fail too; INFO (e.g. "icon is recommended") does not.
        if message.get("severity", 0) >= 2:
            failed = True
    for error in report.get("errors", []):
        print(f"  error: {error}")
    print(f"  linted {report.get('total_charts_linted')} chart(s) with "
          f"{values_path or 'default values'}: {'FAILED' if failed else 'ok'}")
    return 1 if failed else 0


def render(chart_path, outdir, values_path):
    values = load_values(values_path)
    with helm.Chart.load(chart_path) as chart:
        chart.validate_schema(values)
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    os.makedirs(os.path.join(outdir, "k8s"), exist_ok=True)
    os.makedirs(os.path.join(outdir, "crd"), exist_ok=True)
    count = 0
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            with open(os.path.join(outdir, "NOTES.txt"), "w", encoding="utf-8") as f:
                f.write(text)
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                print(f"  {template}: a document without kind/apiVersion")
                return 1
            kind_dir = "crd" if doc["apiVersion"].startswith(CRD_GROUPS) else "k8s"
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{doc['kind']}-{doc['metadata']['name']}")
            path = os.path.join(outdir, kind_dir, f"{count:03d}-{name}.yaml")
            with open(path, "w", encoding="utf-8") as f:
                yaml.safe_dump(doc, f, sort_keys=False)
            count += 1
    print(f"  rendered {count} objects with {values_path or 'default values'} into {outdir}")
    return 0 if count else 1


def reject(chart_path, values_path):
    """Lint or render must refuse a bad values file (schema, or a template's fail)."""
    values = load_values(values_path)
    report = helm.lint(chart_path, values, strict=True, namespace=NAMESPACE,
                       kube_version=f"v{KUBE_VERSION}")
    errors = report.get("errors") or [m.get("error", "") for m in report.get("messages", [])
                                      if m.get("severity", 0) >= 2]
    if not errors:
        # Lint only logs a template's `fail`; rendering is where it stops.
        try:
            with helm.Chart.load(chart_path) as chart:
                chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        except helm.HelmError as exc:
            errors = [str(exc)]
    if errors:
        first = " ".join(str(errors[0]).split())
        print(f"  {values_path} rejected as expected: {first[:300]}")
        return 0
    print(f"  the chart accepted {values_path}, which it must reject")
    return 1


def main():
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "lint":
        return lint(args[1], args[2] if len(args) > 2 else None)
    if len(args) >= 3 and args[0] == "render":
        return render(args[1], args[2], args[3] if len(args) > 3 else None)
    if len(args) == 3 and args[0] == "reject":
        return reject(args[1], args[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except helm.HelmError as exc:
        print(f"  helm: {type(exc).__name__}: {exc}")
        sys.exit(1)

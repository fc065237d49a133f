#!/usr/bin/env python3
"""Every wsgate setting reaches the Helm chart.

  settings.py PROTOCOL.md

The settings are the WSGATE_* variables of the contract's settings table, plus
those of the server's settings table (crates/wsgate/src/config/settings.rs,
or `env = "WSGATE_..."` in an older config.rs). Each must be set somewhere in helm/wsgate/templates/ (the
ConfigMap, or the Deployment for secrets and the node id). WSGATE_CONFIG (a
TOML file) is not needed on Kubernetes.
"""

import glob
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NOT_IN_CHART = {"WSGATE_CONFIG"}


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        contract = set(re.findall(r"`(WSGATE_[A-Z_]+)`", f.read()))
    server = set()
    # The settings table: config/settings.rs declares `name: Type = parser(...);`
    # inside settings! { ... } (env var WSGATE_NAME); an older config.rs
    # named them as `env = "WSGATE_..."`.
    table = os.path.join(ROOT, "crates/wsgate/src/config/settings.rs")
    if os.path.exists(table):
        with open(table, encoding="utf-8") as f:
            body = f.read().split("settings! {", 1)[-1]
        server |= {"WSGATE_" + n.upper() for n in re.findall(r"^\s+([a-z][a-z0-9_]*):\s", body, re.M)}
    config_rs = os.path.join(ROOT, "crates/wsgate/src/config.rs")
    if os.path.exists(config_rs):
        with open(config_rs, encoding="utf-8") as f:
            server |= set(re.findall(r'env\s*=\s*"(WSGATE_[A-Z_]+)"', f.read()))
    chart = ""
    for path in glob.glob(os.path.join(ROOT, "helm/wsgate/templates/*.yaml")):
        with open(path, encoding="utf-8") as f:
            chart += f.read()
    missing = sorted(s for s in (contract | server) - NOT_IN_CHART
                     if not re.search(r"\b" + s + r"\b", chart))
    for s in missing:
        origin = "contract" if s in contract else "crates/wsgate/src/config/settings.rs"
        print(f"  {s} ({origin}) is not set by any chart template")
    print(f"  {len(contract)} contract settings, {len(server)} server settings, {len(missing)} missing from the chart")
    return 1 if missing or len(contract) < 20 or (os.path.exists(table) and len(server) < 20) else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Every wsgate setting reaches the Helm chart.

  settings.py PROTOCOL.md

The settings are the WSGATE_* variables of the contract's settings table, plus
every "WSGATE_..." name the server's settings code holds
(crates/wsgate/src/config.rs and config/, tests aside). Each must be set somewhere in helm/wsgate/templates/ (the
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
    # The settings table: config.rs, or the config/ module it may be split into.
    sources = [os.path.join(ROOT, "crates/wsgate/src/config.rs")]
    sources += glob.glob(os.path.join(ROOT, "crates/wsgate/src/config/**/*.rs"), recursive=True)
    for path in sources:
        if os.path.exists(path) and not path.endswith("tests.rs"):
            with open(path, encoding="utf-8") as f:
                server |= set(re.findall(r'"(WSGATE_[A-Z_]+)"', f.read()))
    chart = ""
    for path in glob.glob(os.path.join(ROOT, "helm/wsgate/templates/*.yaml")):
        with open(path, encoding="utf-8") as f:
            chart += f.read()
    missing = sorted(s for s in (contract | server) - NOT_IN_CHART
                     if not re.search(r"\b" + s + r"\b", chart))
    for s in missing:
        origin = "contract" if s in contract else "crates/wsgate/src/config"
        print(f"  {s} ({origin}) is not set by any chart template")
    print(f"  {len(contract)} contract settings, {len(server)} server settings, {len(missing)} missing from the chart")
    return 1 if missing or len(contract) < 20 else 0


if __name__ == "__main__":
    sys.exit(main())

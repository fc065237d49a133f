#!/usr/bin/env python3
"""Ask a Prometheus for every dashboard query; each must return a series.

  live_queries.py PROMETHEUS_URL DASHBOARD.json [TIMEOUT_SECONDS]

Polls until every query has at least one series or the time is up, then
prints one line per query and exits 1 if any returned nothing.
"""

import json
import os
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dashboard  # noqa: E402


def query(base, expr):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
    except Exception as exc:  # an HTTP 400 (bad query) included
        return None, str(exc)
    if body.get("status") != "success":
        return None, body.get("error", "?")
    return body["data"]["result"], None


def main():
    base, path = sys.argv[1], sys.argv[2]
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 60
    with open(path, encoding="utf-8") as f:
        items = dashboard.exprs(json.load(f))
    deadline = time.time() + timeout
    while True:
        results = [(item, *query(base, item["expr"])) for item in items]
        empty = [r for r in results if not r[1]]
        if not empty or time.time() > deadline:
            break
        time.sleep(2)
    for item, series, error in results:
        state = f"{len(series)} series" if series else f"NO DATA{': ' + error if error else ''}"
        print(f"{'ok  ' if series else 'FAIL'}  {item['panel']} [{item['refId']}]: {state}")
        if not series:
            print(f"        {item['expr']}")
    print(f"dashboard queries: {len(results) - len(empty)} with data, {len(empty)} without")
    return 1 if empty else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Ask a Prometheus for every dashboard query; each must return a series.

  live_queries.py PROMETHEUS_URL DASHBOARD.json [TIMEOUT_SECONDS]

Polls until every query has at least one series or the time is up, then
prints one line per query and exits 1 if any returned nothing. The one
exception: a query on a metric the server does not register yet (in the
contract or announced, work in progress: `dashboard.py unexported`) may be
empty; it is listed as such, and must return data as soon as the server
registers the metric.
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
        board = json.load(f)
    items = dashboard.exprs(board)
    unexported = set(dashboard.unexported(board))

    def waiting_for(item):
        """The unexported metrics a query needs (empty: it must have data)."""
        return sorted({dashboard.base_name(n) for n in dashboard.metric_names(item["expr"])}
                      & unexported)

    deadline = time.time() + timeout
    while True:
        results = [(item, *query(base, item["expr"])) for item in items]
        empty = [r for r in results if not r[1] and not (waiting_for(r[0]) and not r[2])]
        if not empty or time.time() > deadline:
            break
        time.sleep(2)
    tolerated = 0
    for item, series, error in results:
        if series:
            print(f"ok    {item['panel']} [{item['refId']}]: {len(series)} series")
            continue
        pending = waiting_for(item)
        if pending and not error:
            tolerated += 1
            print(f"skip  {item['panel']} [{item['refId']}]: no data, the server does not "
                  f"register {', '.join(pending)} yet")
            continue
        print(f"FAIL  {item['panel']} [{item['refId']}]: NO DATA{': ' + error if error else ''}")
        print(f"        {item['expr']}")
    print(f"dashboard queries: {len(results) - len(empty) - tolerated} with data, "
          f"{tolerated} waiting for metrics the server does not register yet, {len(empty)} failed")
    return 1 if empty else 0


if __name__ == "__main__":
    sys.exit(main())

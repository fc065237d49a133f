#!/usr/bin/env python3
"""Helper of loadtest/bus-bench.sh (issue 12): Redis counters around a run, and the tables.

  bus_bench.py snap FILE PORT... PHASE   INFO of every Redis into FILE.PHASE.json
                                         (the load generator's --barrier-hook)
  bus_bench.py ok RESULT RATE            exit 0 when the run sustained RATE
                                         (the ramp's test, see `verdict`)
  bus_bench.py report OUTDIR [--docs FILE]
                                         markdown tables from OUTDIR/*.json, to
                                         stdout, and between the bus-bench
                                         markers of FILE when given

A snapshot holds, per Redis port: `INFO commandstats` calls by command,
`total_net_input_bytes`, `total_net_output_bytes`, `used_cpu_sys + used_cpu_user`
and /proc/loadavg. The hook runs at the load generator's two barriers, so the
difference covers exactly the measured window (traffic and drain, connections
set up and still open). The hook's own `INFO` calls are not counted (nor the
reply bytes of the first one).
"""

import glob
import json
import os
import subprocess
import sys

START, END = "<!-- bus-bench:start -->", "<!-- bus-bench:end -->"
SCENARIOS = ["direct", "rooms", "broadcast", "idle"]


def parse_info(text):
    cmds, out, usec = {}, {}, 0
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, val = line.split(":", 1)
        if key.startswith("cmdstat_"):
            fields = dict(kv.split("=", 1) for kv in val.split(","))
            name = key[len("cmdstat_"):].upper()
            if name not in ("INFO",):
                cmds[name] = int(fields["calls"])
                usec += int(fields["usec"])
        elif key in ("total_net_input_bytes", "total_net_output_bytes"):
            out[key] = int(val)
        elif key in ("used_cpu_sys", "used_cpu_user"):
            out[key] = float(val)
    return {
        "cmds": cmds,
        "usec": usec,
        "net_in": out.get("total_net_input_bytes", 0),
        "net_out": out.get("total_net_output_bytes", 0),
        "cpu_s": out.get("used_cpu_sys", 0.0) + out.get("used_cpu_user", 0.0),
    }


def snap(path, ports, phase):
    shot = {"loadavg": open("/proc/loadavg").read().split()[:3], "redis": {}}
    for port in ports:
        text = subprocess.run(
            ["redis-cli", "-p", port, "INFO", "all"],
            check=True, capture_output=True, text=True, timeout=10,
        ).stdout
        shot["redis"][port] = parse_info(text)
        # This reply is counted in the next snapshot's output bytes: subtract it.
        shot["redis"][port]["info_reply_bytes"] = len(text.encode()) + 16
    with open(f"{path}.{phase}.json", "w") as f:
        json.dump(shot, f)


def delta(start, end):
    """Per port: commands by name, bytes in/out, CPU seconds between two snapshots."""
    per = {}
    for port, e in end["redis"].items():
        s = start["redis"][port]
        cmds = {k: v - s["cmds"].get(k, 0) for k, v in e["cmds"].items()}
        per[port] = {
            "cmds": {k: v for k, v in cmds.items() if v > 0},
            "usec": e.get("usec", 0) - s.get("usec", 0),
            "net_in": e["net_in"] - s["net_in"],
            "net_out": e["net_out"] - s["net_out"] - s.get("info_reply_bytes", 0),
            "cpu_s": e["cpu_s"] - s["cpu_s"],
        }
    return per


def load(outdir):
    runs = []
    for res in sorted(glob.glob(os.path.join(outdir, "*.result.json"))):
        base = res[: -len(".result.json")]
        try:
            r = json.load(open(res))
            s, e = json.load(open(base + ".start.json")), json.load(open(base + ".end.json"))
        except (OSError, ValueError):
            continue
        redis, nodes, scen, rate = os.path.basename(base).split("_")
        per = delta(s, e)
        cmds = {}
        for p in per.values():
            for k, v in p["cmds"].items():
                cmds[k] = cmds.get(k, 0) + v
        runs.append({
            "redis": redis, "nodes": int(nodes), "scenario": scen, "rate": float(rate),
            "r": r, "per": per, "cmds": cmds,
            "net_in": sum(p["net_in"] for p in per.values()),
            "net_out": sum(p["net_out"] for p in per.values()),
            "redis_cpu_s": sum(p["cpu_s"] for p in per.values()),
            "redis_usec": sum(p["usec"] for p in per.values()),
            "redis_cpu_max_s": max((p["cpu_s"] for p in per.values()), default=0.0),
            "load": s["loadavg"][0],
        })
    return runs


def verdict(run, max_p99_ms):
    """Why a step does not count as sustained, or '' when it does."""
    r = run["r"]
    why = []
    if r["lost"]:
        why.append(f"lost {r['lost']}")
    if r["duplicates"]:
        why.append(f"dup {r['duplicates']}")
    if r.get("rejected"):
        why.append("rejected " + ",".join(f"{k}={v}" for k, v in r["rejected"].items()))
    if r["connect_failures"]:
        why.append("connect failures")
    if r["latency_us"]["p99"] > max_p99_ms * 1000:
        why.append(f"p99 {r['latency_us']['p99'] / 1000:.0f} ms")
    if r["accepted_per_s"] < 0.9 * run["rate"]:
        why.append(f"took {r['accepted_per_s']:.0f}/s")
    return "; ".join(why)


def cores(run):
    """CPU cores busy in a run's window: wsgate (all nodes), Redis (all), load generator."""
    r, d = run["r"], max(run["r"]["duration_s"], 1e-3)
    server = (r.get("server") or {}).get("cpu_s", 0.0)
    return (
        f"cores wsgate {server / d:.2f}, Redis {run['redis_cpu_s'] / d:.2f}, "
        f"loadgen {r.get('loadgen_cpu_s', 0.0) / d:.2f}"
    )


def fmt_cmds(cmds, n):
    top = sorted(cmds.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v / n:.2f}" for k, v in top if v / n >= 0.01) or "-"


def key(run):
    return (run["redis"] != "single", run["nodes"], SCENARIOS.index(run["scenario"]), run["rate"])


def label(run):
    return f"{'1 Redis' if run['redis'] == 'single' else '3 shards'}, {run['nodes']} node{'s' if run['nodes'] > 1 else ''}"


def report(runs, max_p99_ms):
    runs = sorted(runs, key=key)
    lines = []
    traffic = [x for x in runs if x["scenario"] != "idle"]
    base = {}
    for x in traffic:
        base.setdefault((x["redis"], x["nodes"], x["scenario"]), x)
    lines += [
        "Per message sent (`accepted`), at the first (lowest) rate of each ramp. Redis",
        "counters are summed over every Redis of the setup (busiest shard in brackets);",
        "CPU is µs of CPU time per message (Redis: the process's user + system time;",
        "*net of idle*: less the same setup's background CPU rate from the idle run",
        "times the window; *in commands*: the `usec` of `INFO commandstats`, time spent",
        "executing them, wall clock, so preemption on a loaded machine counts).",
        "",
        "| setup | scenario | rate/s | msgs | delivered | lost | dup | Redis commands per msg | bytes in / out per msg | Redis CPU µs | net of idle µs | in commands µs | wsgate CPU µs | loadgen CPU µs |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    idle_cpu = {
        (x["redis"], x["nodes"]): x["redis_cpu_s"] / max(x["r"]["duration_s"], 1e-3)
        for x in runs
        if x["scenario"] == "idle"
    }
    for x in base.values():
        r, n = x["r"], max(x["r"]["accepted"], 1)
        bg = idle_cpu.get((x["redis"], x["nodes"]), 0.0) * r["duration_s"]
        net = max(x["redis_cpu_s"] - bg, 0.0) * 1e6 / n
        server = (r.get("server") or {}).get("cpu_s", 0.0)
        lines.append(
            f"| {label(x)} | {x['scenario']} | {x['rate']:.0f} | {r['accepted']} | {r['delivered']} "
            f"| {r['lost']} | {r['duplicates']} | {sum(x['cmds'].values()) / n:.2f}: {fmt_cmds(x['cmds'], n)} "
            f"| {x['net_in'] / n:.0f} / {x['net_out'] / n:.0f} "
            f"| {x['redis_cpu_s'] * 1e6 / n:.1f} ({x['redis_cpu_max_s'] * 1e6 / n:.1f}) "
            f"| {net:.1f} | {x['redis_usec'] / n:.1f} | {server * 1e6 / n:.0f} | {r.get('loadgen_cpu_s', 0.0) * 1e6 / n:.0f} |"
        )
    idle = [x for x in runs if x["scenario"] == "idle"]
    if idle:
        lines += [
            "",
            "Background with no traffic (connections open, `idle`), per second of the window:",
            "",
            "| setup | connections | Redis commands/s | commands | Redis CPU ms/s |",
            "|---|---:|---:|---|---:|",
        ]
        for x in idle:
            d = max(x["r"]["duration_s"], 1e-3)
            lines.append(
                f"| {label(x)} | {x['r']['connections']} | {sum(x['cmds'].values()) / d:.1f} "
                f"| {fmt_cmds(x['cmds'], d)} | {x['redis_cpu_s'] * 1e3 / d:.2f} |"
            )
    lines += [
        "",
        f"The ramp: each step offers a fixed rate; a step is sustained with no loss, no",
        f"duplicates, no rejected sends, p99 end-to-end latency ≤ {max_p99_ms} ms and at least 90 %",
        "of the offered rate accepted. CPU columns are cores busy at the highest sustained",
        "step (CPU seconds / window), and at the first failing step beside its reason, so",
        "the reader sees who was the limit (the machine has 2 cores in all).",
        "",
        "| setup | scenario | steps tried (msgs/s) | highest sustained msgs/s | deliveries/s there | p99 ms there | first failing step | wsgate cores | Redis cores (busiest) | loadgen cores | Redis CPU µs/msg there |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    groups = {}
    for x in traffic:
        groups.setdefault((x["redis"], x["nodes"], x["scenario"]), []).append(x)
    for steps in groups.values():
        best, fail = None, None
        for x in steps:
            why = verdict(x, max_p99_ms)
            if why:
                fail = (x, why)
                break
            best = x
        tried = " ".join(f"{x['rate']:.0f}" for x in steps)
        failing = f"{fail[0]['rate']:.0f}: {fail[1]}; {cores(fail[0])}" if fail else "none"
        if best:
            r, d = best["r"], max(best["r"]["duration_s"], 1e-3)
            server = (r.get("server") or {}).get("cpu_s", 0.0)
            lines.append(
                f"| {label(best)} | {best['scenario']} | {tried} | {r['accepted_per_s']:.0f} "
                f"| {r['deliveries_per_s']:.0f} | {r['latency_us']['p99'] / 1000:.1f} | {failing} "
                f"| {server / d:.2f} | {best['redis_cpu_s'] / d:.2f} ({best['redis_cpu_max_s'] / d:.2f}) "
                f"| {r.get('loadgen_cpu_s', 0.0) / d:.2f} "
                f"| {best['redis_cpu_s'] * 1e6 / max(r['accepted'], 1):.1f} |"
            )
        else:
            x = steps[0]
            lines.append(f"| {label(x)} | {x['scenario']} | {tried} | below {x['rate']:.0f} | | | {failing} | | | | |")
    loads = [float(x["load"]) for x in runs]
    if loads:
        lines += ["", f"Load average (1 min) at the start of the runs: {min(loads):.2f} to {max(loads):.2f}."]
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) == 4 and argv[1] == "ok":
        run = {"r": json.load(open(argv[2])), "rate": float(argv[3])}
        why = verdict(run, float(os.environ.get("MAX_P99_MS", "250")))
        if why:
            sys.stderr.write(f"   not sustained: {why}\n")
        return 1 if why else 0
    if len(argv) >= 4 and argv[1] == "snap":
        snap(argv[2], argv[3:-1], argv[-1])
        return 0
    if len(argv) >= 3 and argv[1] == "report":
        outdir = argv[2]
        max_p99 = float(os.environ.get("MAX_P99_MS", "250"))
        md = report(load(outdir), max_p99)
        meta = os.path.join(outdir, "meta.txt")
        if os.path.exists(meta):
            md = open(meta).read().strip() + "\n\n" + md
        sys.stdout.write(md)
        if len(argv) == 5 and argv[3] == "--docs":
            doc = open(argv[4]).read()
            if START in doc and END in doc:
                head, rest = doc.split(START, 1)
                tail = rest.split(END, 1)[1]
                doc = head + START + "\n" + md + END + tail
            else:
                doc = doc.rstrip("\n") + "\n\n" + START + "\n" + md + END + "\n"
            open(argv[4], "w").write(doc)
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

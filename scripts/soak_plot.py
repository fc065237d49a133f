#!/usr/bin/env python3
"""Plots a soak CSV (from crates/wsgate/examples/soak.rs) to a PNG and checks
that RSS and open fds are flat after warm-up.

    python3 scripts/soak_plot.py target/soak/soak.csv docs/img/soak.png

Flat means: over the samples after warm-up (the first 20% of the run, at
least 2 minutes), the least-squares RSS trend over the whole window is under
10% of the mean RSS, and open fds vary by under 2% of the mean. Exits 1 when
not flat."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def slope(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


def main(path, png):
    rows = [r for r in csv.DictReader(open(path)) if r["node"] == "0"]
    if len(rows) < 6:
        print(f"soak: only {len(rows)} samples in {path}")
        return 1
    t = [int(r["elapsed_s"]) / 60 for r in rows]
    rss = [int(r["rss_kb"]) / 1024 for r in rows]
    fds = [int(r["fds"]) for r in rows]
    threads = [int(r["threads"]) for r in rows]
    conns = [float(r["connections"]) for r in rows]
    p99 = [float(r["p99_ms"]) for r in rows]
    p50 = [float(r["p50_ms"]) for r in rows]
    rate = [int(r["received"]) / 10 for r in rows]

    fig, ax = plt.subplots(5, 1, figsize=(10, 13), sharex=True)
    ax[0].plot(t, rss)
    ax[0].set_ylabel("RSS (MiB)")
    ax[1].plot(t, fds, label="open fds")
    ax[1].plot(t, conns, label="wsgate_connections")
    ax[1].legend()
    ax[1].set_ylabel("count")
    ax[2].plot(t, threads)
    ax[2].set_ylabel("threads")
    ax[3].plot(t, p50, label="p50")
    ax[3].plot(t, p99, label="p99")
    ax[3].legend()
    ax[3].set_ylabel("delivery latency (ms)")
    ax[4].plot(t, rate)
    ax[4].set_ylabel("messages received/s")
    ax[4].set_xlabel("minutes")
    fig.suptitle("wsgate soak: " + path.split("/")[-1])
    fig.tight_layout()
    fig.savefig(png, dpi=80)

    warm = max(2.0, t[-1] * 0.2)
    idx = [i for i, x in enumerate(t) if x >= warm]
    if len(idx) < 3:
        print("soak: too short to judge after warm-up")
        return 1
    wt = [t[i] for i in idx]
    wr = [rss[i] for i in idx]
    wf = [fds[i] for i in idx]
    drift = slope(wt, wr) * (wt[-1] - wt[0])
    mean_rss = sum(wr) / len(wr)
    mean_fds = sum(wf) / len(wf)
    fd_span = max(wf) - min(wf)
    p99s = sorted(p99[i] for i in idx)
    print(
        f"soak: {t[-1]:.1f} min, {len(rows)} samples; after warm-up ({warm:.1f} min): "
        f"RSS mean {mean_rss:.1f} MiB (min {min(wr):.1f}, max {max(wr):.1f}), trend {drift:+.2f} MiB over the window; "
        f"fds mean {mean_fds:.0f} (span {fd_span}); threads {min(threads)}-{max(threads)}; "
        f"connections {min(conns):.0f}-{max(conns):.0f}; p99 median {p99s[len(p99s) // 2]:.0f} ms, worst {p99s[-1]:.0f} ms; "
        f"{sum(rate) / len(rate):.0f} msgs/s received"
    )
    flat = abs(drift) < 0.10 * mean_rss and fd_span <= max(2, 0.02 * mean_fds)
    print("soak: " + ("FLAT" if flat else "NOT FLAT") + f" (plot: {png})")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

#!/usr/bin/env python3
"""Fails when a tracked source file is longer than the house limit (600 lines).

    scripts/check-file-size.py [--limit N]

Counts the lines of every file `git ls-files` lists that ends in .rs, .js,
.ts, .py or .sh (tests, scripts and the JS SDK included; generated and
vendored files are not tracked). Exit 0 and one line "N source files, the
longest L lines (PATH)" when every file is within the limit; otherwise exit 1
and list each longer file with its length. Run by scripts/test-all.sh.
"""

import subprocess
import sys

EXTS = (".rs", ".js", ".ts", ".py", ".sh")


def main(argv):
    limit = 600
    if len(argv) == 2 and argv[0] == "--limit":
        limit = int(argv[1])
    elif argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    files = subprocess.run(
        ["git", "ls-files", "-z"], check=True, capture_output=True
    ).stdout.decode().split("\0")
    sizes = []
    for path in files:
        if not path.endswith(EXTS):
            continue
        try:
            with open(path, "rb") as f:
                sizes.append((f.read().count(b"\n"), path))
        except FileNotFoundError:  # deleted in the work tree, not yet committed
            continue
    over = sorted((n, p) for n, p in sizes if n > limit)
    for n, p in over:
        print(f"{p}: {n} lines (limit {limit})")
    if over:
        return 1
    n, p = max(sizes)
    print(f"{len(sizes)} source files, the longest {n} lines ({p})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

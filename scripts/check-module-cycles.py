#!/usr/bin/env python3
"""Fails when the server crate's top-level modules import each other in a cycle.

    scripts/check-module-cycles.py [--graph] [SRC_DIR]

SRC_DIR defaults to crates/wsgate/src. Every `.rs` file below it belongs to a
top-level module: `src/node.rs` and `src/node/*` to `node`, `src/cluster/...`
to `cluster`; `lib.rs` and `main.rs` are the crate root and are not a module
of the graph (the root wires everything together). A module depends on
another when its code names it through `crate::` (`use crate::hub::Conn;`,
`crate::metrics::Metrics::new()`, `use crate::{auth, hub};`) or through
`super::` from a file directly below the root (`super::hub`). Comments and
string literals are ignored, so a doc link is not a dependency.

Exit 0 and one line "no module cycles (N modules, M edges)" when the graph is
acyclic; otherwise exit 1 and print every cycle found, with, for each edge,
the first file and line that creates it. `--graph` also prints every edge.
"""

import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments_and_strings(text):
    """Removes // and /* */ comments and string/char literals, keeping newlines."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not re.match(r"[A-Za-z0-9_]", text[i - 1])):
            m = re.match(r'r(#*)"', text[i:])
            close = '"' + m.group(1)
            j = text.find(close, i + len(m.group(0)))
            j = n if j < 0 else j + len(close)
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    out.append("\n")
                i += 1
            i += 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4] + "   "):
            m = re.match(r"'(\\[^']*|[^\\'])'", text[i:])
            i += len(m.group(0)) if m else 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def brace_group_heads(group):
    """Top-level names in a `{a, b::c, d as e, self}` use group."""
    heads, depth, cur = [], 0, ""
    for ch in group:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            heads.append(cur)
            cur = ""
        else:
            cur += ch if depth == 0 else ""
    heads.append(cur)
    names = []
    for h in heads:
        m = re.match(r"\s*(" + IDENT + ")", h)
        if m:
            names.append(m.group(1))
    return names


def module_of(src, path):
    rel = os.path.relpath(path, src)
    first = rel.split(os.sep)[0]
    if first in ("lib.rs", "main.rs"):
        return None
    return first[:-3] if first.endswith(".rs") else first


def scan(src):
    modules = set()
    edges = {}  # (a, b) -> "file:line"
    files = []
    for root, _, names in os.walk(src):
        for name in sorted(names):
            if name.endswith(".rs"):
                files.append(os.path.join(root, name))
    for path in sorted(files):
        mod = module_of(src, path)
        if mod is None:
            continue
        modules.add(mod)
        with open(path, encoding="utf-8") as f:
            code = strip_comments_and_strings(f.read())
        depth_from_root = os.path.relpath(path, src).count(os.sep)
        for lineno, line in enumerate(code.split("\n"), 1):
            targets = []
            for m in re.finditer(r"\bcrate::(" + IDENT + r"|\{)", line):
                if m.group(1) == "{":
                    rest = line[m.end():]
                    depth, group = 1, ""
                    for ch in rest:
                        if ch == "{":
                            depth += 1
                        elif ch == "}":
                            depth -= 1
                            if depth == 0:
                                break
                        group += ch
                    targets.extend(brace_group_heads(group))
                else:
                    targets.append(m.group(1))
            # `super::x` from a top-level file (src/foo.rs) names a sibling module.
            if depth_from_root == 0:
                for m in re.finditer(r"\bsuper::(" + IDENT + ")", line):
                    targets.append(m.group(1))
            for t in targets:
                if t != mod and t not in ("self", "super", "crate"):
                    edges.setdefault((mod, t), f"{os.path.relpath(path, src)}:{lineno}")
    # Only edges to real top-level modules (not crate-root items like `run`).
    top = {module_of(src, p) for p in files} - {None}
    edges = {k: v for k, v in edges.items() if k[1] in top}
    return sorted(top), edges


def cycles(modules, edges):
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {m: sorted(b for (a, b) in edges if a == m) for m in modules}
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in modules:
        if m not in index:
            visit(m)
    return out


def main(argv):
    show = "--graph" in argv
    args = [a for a in argv if a != "--graph"]
    here = os.path.dirname(os.path.abspath(__file__))
    src = args[0] if args else os.path.join(here, "..", "crates", "wsgate", "src")
    modules, edges = scan(src)
    if show:
        for (a, b), where in sorted(edges.items()):
            print(f"{a} -> {b}    ({where})")
    found = cycles(modules, edges)
    if not found:
        print(f"no module cycles ({len(modules)} modules, {len(edges)} edges)")
        return 0
    for comp in found:
        print("module cycle among: " + ", ".join(comp))
        for (a, b), where in sorted(edges.items()):
            if a in comp and b in comp:
                print(f"  {a} -> {b}    ({where})")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

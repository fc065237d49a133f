#!/usr/bin/env python3
"""Offline checks of Dockerfile and .dockerignore (no Docker engine here).

  dockerfile.py static    build command, binary path, ports, user, health
                          check, and that the build context holds what
                          cargo reads
  dockerfile.py health    runs the HEALTHCHECK command (port rewritten) against
                          a stub HTTP server: 0 when /readyz says 200, not 0
                          when it says 503
"""

import fnmatch
import glob
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = "wsgate"
PORTS = {"8080", "9090"}


def instructions(text):
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def stages(instrs):
    result, stage = [], None
    for word, rest in instrs:
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            stage = {"from": m.group(1), "name": (m.group(2) or str(len(result))), "instrs": []}
            result.append(stage)
        elif stage is not None:
            stage["instrs"].append((word, rest))
    return result


def ignored(path, patterns):
    """Docker's rule: the last pattern matching the path or a parent wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.strip("/")
        for cand in candidates:
            if fnmatch.fnmatchcase(cand, pat) or (pat.startswith("**/") and (
                    fnmatch.fnmatchcase(cand, pat[3:]) or fnmatch.fnmatchcase(cand.split("/")[-1], pat[3:]))):
                result = not negate
                break
    return result


def cmd_list(rest):
    rest = rest.strip()
    if rest.startswith("["):
        return json.loads(rest)
    return ["/bin/sh", "-c", rest]


def static():
    problems = []
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        text = f.read()
    st = stages(instructions(text))
    if len(st) < 2:
        problems.append("Dockerfile is not multi-stage")
        return problems
    build, final = st[0], st[-1]

    # The crate and its binary.
    with open(os.path.join(ROOT, "crates", BINARY, "Cargo.toml"), "rb") as f:
        crate = tomllib.load(f)
    if crate.get("package", {}).get("name") != BINARY:
        problems.append(f"crates/{BINARY}/Cargo.toml: package is not named {BINARY!r}")
    bins = [b.get("name") for b in crate.get("bin", [])]
    if bins and BINARY not in bins:
        problems.append(f"crates/{BINARY}/Cargo.toml: no [[bin]] named {BINARY!r} (has {bins})")

    # Build command.
    runs = " ".join(rest for word, rest in build["instrs"] if word == "RUN")
    m = re.search(r"cargo\s+build([^&;]*)", runs)
    if not m:
        problems.append("build stage has no `cargo build`")
    else:
        args = shlex.split(m.group(1))
        if "--release" not in args:
            problems.append("cargo build is not --release")
        pkg = args[args.index("-p") + 1] if "-p" in args else None
        if pkg != BINARY:
            problems.append(f"cargo build -p {pkg!r}, expected -p {BINARY}")
        if "--bin" in args and args[args.index("--bin") + 1] != BINARY:
            problems.append(f"cargo build --bin is not {BINARY}")
    if f"target/release/{BINARY}" not in runs and not any(
            f"target/release/{BINARY}" in rest for w, rest in final["instrs"] if w == "COPY"):
        problems.append(f"target/release/{BINARY} is never taken from the build")

    # What the build stage copies must cover the workspace.
    copied = []
    for word, rest in build["instrs"]:
        if word == "COPY" and "--from" not in rest:
            srcs = shlex.split(rest)[:-1]
            copied += [s.rstrip("/") for s in srcs if not s.startswith("--")]
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        ws = tomllib.load(f)
    needed = ["Cargo.toml", "Cargo.lock"] + [f"{m}/Cargo.toml" for m in ws.get("workspace", {}).get("members", [])]
    # Files pulled in at compile time from outside a crate (include_str! etc.).
    for src in glob.glob(os.path.join(ROOT, "crates", "**", "*.rs"), recursive=True):
        with open(src, encoding="utf-8", errors="replace") as f:
            for inc in re.findall(r'include_(?:str|bytes)!\(\s*"([^"]+)"', f.read()):
                target = os.path.relpath(os.path.normpath(os.path.join(os.path.dirname(src), inc)), ROOT)
                if not target.startswith(".."):
                    needed.append(target)
    with open(os.path.join(ROOT, ".dockerignore"), encoding="utf-8") as f:
        patterns = [l.strip() for l in f if l.strip() and not l.strip().startswith("#")]
    for path in needed:
        if not any(path == c or path.startswith(c + "/") for c in copied):
            problems.append(f"build stage does not COPY {path}")
        if ignored(path, patterns):
            problems.append(f".dockerignore excludes {path}, which the build needs")
    for c in copied:
        if not os.path.exists(os.path.join(ROOT, c)):
            problems.append(f"build stage COPYs {c}, which does not exist")
    for heavy in ("target/debug/x", ".git/HEAD", "clients/js/node_modules/x", ".venv-deploy/x"):
        if not ignored(heavy, patterns):
            problems.append(f".dockerignore lets {heavy.rsplit('/', 1)[0]} into the context")

    # Runtime stage: only the binary, at the entrypoint's path.
    dests = []
    for word, rest in final["instrs"]:
        if word == "COPY":
            parts = shlex.split(rest)
            if not any(p.startswith("--from") for p in parts):
                problems.append(f"runtime stage copies from the context: COPY {rest}")
            dests.append(parts[-1])
    entry = next((cmd_list(rest) for w, rest in reversed(final["instrs"]) if w == "ENTRYPOINT"), None)
    if not entry:
        problems.append("runtime stage has no ENTRYPOINT")
    elif os.path.basename(entry[0]) != BINARY or not any(
            entry[0] == d or entry[0] == d.rstrip("/") + "/" + BINARY for d in dests):
        problems.append(f"ENTRYPOINT {entry[0]!r} is not where the binary is copied ({dests})")
    exposed = set()
    for w, rest in final["instrs"]:
        if w == "EXPOSE":
            exposed |= {p.split("/")[0] for p in rest.split()}
    if exposed != PORTS:
        problems.append(f"EXPOSE {sorted(exposed)}, expected {sorted(PORTS)}")
    user = next((rest for w, rest in reversed(final["instrs"]) if w == "USER"), None)
    if not user or user.split(":")[0] in ("root", "0"):
        problems.append(f"runtime user is {user or 'root (no USER)'}")
    health = next((rest for w, rest in reversed(final["instrs"]) if w == "HEALTHCHECK"), "")
    if "/readyz" not in health and "/healthz" not in health:
        problems.append("HEALTHCHECK asks neither /readyz nor /healthz")
    if not re.search(r"\b(9090|8080)\b", health):
        problems.append("HEALTHCHECK does not use port 8080 or 9090")
    for w, rest in final["instrs"]:
        if w == "ENV":
            for port_var, port in (("WSGATE_LISTEN", "8080"), ("WSGATE_ADMIN_LISTEN", "9090")):
                mm = re.search(port_var + r"=\S*:(\d+)", rest)
                if mm and mm.group(1) != port:
                    problems.append(f"{port_var} listens on {mm.group(1)}, EXPOSE says {port}")
    return problems


class Stub(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (http.server API)
        code = Stub.status if self.path in ("/readyz", "/healthz") else 404
        body = b"ok\n" if code == 200 else b"not ready\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_health(cmd, port):
    cmd = [re.sub(r"\b9090\b", str(port), part) for part in cmd]
    return subprocess.run(cmd, capture_output=True, timeout=10).returncode


def health_commands():
    """The HEALTHCHECK of the Dockerfile and the wsgate healthcheck of compose."""
    import yaml  # only this mode needs it

    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        final = stages(instructions(f.read()))[-1]
    rest = next(rest for w, rest in final["instrs"] if w == "HEALTHCHECK")
    docker_cmd = cmd_list(re.search(r"\bCMD\s+(.*)$", rest).group(1))
    with open(os.path.join(ROOT, "docker-compose.yml"), encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    test = compose["services"]["wsgate-1"]["healthcheck"]["test"]
    compose_cmd = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
    return {"Dockerfile HEALTHCHECK": docker_cmd, "docker-compose healthcheck": compose_cmd}


def health():
    problems = []
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for name, cmd in health_commands().items():
            Stub.status = 200
            ok = run_health(cmd, port)
            Stub.status = 503
            bad = run_health(cmd, port)
            print(f"  {name}: exit {ok} when ready, {bad} when not ready")
            if ok != 0 or bad == 0:
                problems.append(f"{name} does not tell ready from not ready")
    finally:
        server.shutdown()
    return problems


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in ("static", "health"):
        print(__doc__, file=sys.stderr)
        return 2
    problems = static() if mode == "static" else health()
    for p in problems:
        print(f"  {p}")
    print(f"  Dockerfile {mode}: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

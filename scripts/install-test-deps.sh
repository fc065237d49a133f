#!/usr/bin/env bash
# Installs the system packages the test suite needs, only when missing:
# redis-server and redis-sentinel (cluster tests), nginx and haproxy (load-balancer tests), chromium (browser
# tests), prometheus/promtool (alert rules, dashboard check), docker-compose
# (compose validation), python3 with venv (the gRPC test from Python). Safe to run again; takes a lock so parallel runs wait.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
command -v nginx >/dev/null || need+=(nginx-light)
command -v haproxy >/dev/null || need+=(haproxy)
command -v chromium >/dev/null || need+=(chromium)
command -v promtool >/dev/null || need+=(prometheus)
command -v docker-compose >/dev/null || need+=(docker-compose)
# The gRPC test from Python (tests/grpc_python.rs) makes a venv and pip-installs
# grpcio there; the Rust build itself needs no protoc (protox).
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  (
    flock 9
    $sudo_cmd apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  ) 9>/tmp/apt.lock
fi
# The packaged services must not hold the ports or files tests use: tests start
# their own redis-server and nginx on free ports.
for svc in redis-server redis-sentinel nginx haproxy prometheus; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

#!/usr/bin/env bash
# Live checks of the Redis deployments, without Kubernetes or a container
# engine, with real redis-server / redis-sentinel processes and a real
# wsgate binary:
#
# - the Helm chart's bundled Redis with Sentinel (deploy/checks/helm_redis_live.py):
#   the rendered start scripts and configs as 3 Redis + 3 Sentinel "pods",
#   each on an address of its own and named by its headless-Service DNS
#   name, a wsgate node with the chart's settings; kill -9 of the primary,
#   its restart, a Sentinel restart;
# - docker-compose's redis-sentinel and redis-cluster profiles
#   (deploy/checks/compose_redis_live.py): each service's merged command and
#   environment as a process under its service name; failovers in both.
#
# Everything runs in private network and mount namespaces (`unshare -mn`,
# needs root): the chart's and compose's own ports are used there without
# touching the host's, and /etc/hosts is a private copy.
#
#   scripts/check-redis-live.sh          (SKIP_BUILD=1 to use the binary as is)
#
# Ends with "N passed, N failed"; exits non-zero when a check failed.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${DEPLOY_VENV:-$ROOT/.venv-deploy}
BIN=${WSGATE_BIN:-$ROOT/target/debug/wsgate}
PIP_PACKAGES=(helm-python-sdk==0.2.2 pyyaml==6.0.3)

log() { printf '%s\n' "$*" >&2; }

for tool in redis-server redis-sentinel redis-cli docker-compose unshare ip mount; do
  command -v "$tool" >/dev/null || { log "missing $tool (scripts/install-test-deps.sh)"; echo "0 passed, 1 failed"; exit 1; }
done
[[ $(id -u) == 0 ]] || { log "needs root (unshare -mn)"; echo "0 passed, 1 failed"; exit 1; }
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c 'import helm_python, yaml' 2>/dev/null; then
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
fi

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "cargo build -p wsgate"
  cargo build -q -p wsgate || { log "cargo build -p wsgate failed"; echo "0 passed, 1 failed"; exit 1; }
fi
[[ -x $BIN ]] || { log "no $BIN"; echo "0 passed, 1 failed"; exit 1; }

PASSED=0
FAILED=0
# live NAME SCRIPT ARGS...: one Python check in fresh namespaces.
live() {
  local name=$1 hosts
  shift
  hosts=$(mktemp -t wsgate-hosts.XXXXXX)
  # shellcheck disable=SC2016 # expanded by the inner bash
  if unshare -mn --propagation private bash -c '
    set -e
    ip link set lo up
    mount --bind "$1" /etc/hosts
    shift
    exec "$@"' _ "$hosts" "$VENV/bin/python" "$@"; then
    PASSED=$((PASSED + 1))
    echo "ok    $name"
  else
    FAILED=$((FAILED + 1))
    echo "FAIL  $name"
  fi
  rm -f "$hosts"
}

live "Helm bundled Redis + Sentinel, run live (failover, rejoin, Sentinel restart)" \
  deploy/checks/helm_redis_live.py helm/wsgate "$BIN"
live "compose profiles redis-sentinel and redis-cluster, run live (failovers)" \
  deploy/checks/compose_redis_live.py "$BIN"

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))

#!/usr/bin/env bash
# Live check of the Helm chart's bundled Redis with Sentinel, without
# Kubernetes: the rendered start scripts and configs run as real
# redis-server and redis-sentinel processes (3 + 3 "pods", each on an
# address of its own, named by the DNS names the chart's headless Services
# would give them), with a real wsgate node using the chart's settings; then
# a kill -9 of the primary, its restart, and a Sentinel restart. Everything
# runs in private network and mount namespaces (`unshare -mn`, needs root):
# the pods use the chart's own ports there without touching the host's, and
# /etc/hosts is a private copy. See deploy/checks/helm_redis_live.py.
#
#   scripts/check-helm-redis-live.sh          (SKIP_BUILD=1 to use the binary as is)
#
# Ends with "N passed, N failed"; exits non-zero when the check failed.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${DEPLOY_VENV:-$ROOT/.venv-deploy}
BIN=$ROOT/target/debug/wsgate
PIP_PACKAGES=(helm-python-sdk==0.2.2 pyyaml==6.0.3)

log() { printf '%s\n' "$*" >&2; }

for tool in redis-server redis-sentinel redis-cli unshare ip mount; do
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

HOSTS=$(mktemp -t wsgate-hosts.XXXXXX)
trap 'rm -f "$HOSTS"' EXIT
# shellcheck disable=SC2016 # expanded by the inner bash
if unshare -mn --propagation private bash -c '
  set -e
  ip link set lo up
  mount --bind "$1" /etc/hosts
  exec "$2/bin/python" deploy/checks/helm_redis_live.py helm/wsgate "$3"' _ "$HOSTS" "$VENV" "$BIN"; then
  echo "ok    Helm bundled Redis + Sentinel, run live (failover, rejoin, Sentinel restart)"
  echo "1 passed, 0 failed"
else
  echo "FAIL  Helm bundled Redis + Sentinel, run live (failover, rejoin, Sentinel restart)"
  echo "0 passed, 1 failed"
  exit 1
fi

#!/usr/bin/env bash
# Offline checks of everything operators deploy: Helm chart, k8s/ manifests,
# docker-compose stack, Prometheus config and alert rules, Grafana dashboard,
# Dockerfile. Run from the repository root:
#
#   scripts/check-deploy.sh
#
# Installs what it needs when missing: pinned PyPI packages into .venv-deploy/,
# Debian's prometheus (promtool) and docker-compose. Ends with one line
# "N passed, N failed" and exits non-zero when a check failed.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${DEPLOY_VENV:-$ROOT/.venv-deploy}
WORK=$ROOT/.deploy-check
# A current Kubernetes, and the oldest the chart supports (Chart.yaml
# kubeVersion: the preStop sleep action needs 1.30).
KUBE_VERSION=${KUBE_VERSION:-1.37.0}
KUBE_MIN_VERSION=1.30.0
CHART=helm/wsgate

PIP_PACKAGES=(
  helm-python-sdk==0.2.2
  kubernetes-validate==1.37.0
  check-jsonschema==0.39.0
  pyyaml==6.0.3
)

log() { printf '%s\n' "$*" >&2; }

# --- tools --------------------------------------------------------------------
apt_install() {
  local missing=()
  tools_missing() {
    missing=()
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
  }
  tools_missing
  # Another process may be installing them right now: give it time.
  for _ in $(seq 1 60); do
    ((${#missing[@]})) || break
    pgrep -x apt-get >/dev/null || pgrep -x dpkg >/dev/null || break
    sleep 5
    tools_missing
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    $sudo flock /tmp/apt.lock apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo flock /tmp/apt.lock apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

venv_install() {
  local stamp="$VENV/.deploy-packages"
  if [[ -x $VENV/bin/python && -f $stamp && "$(cat "$stamp")" == "${PIP_PACKAGES[*]}" ]]; then
    return
  fi
  log "installing PyPI packages into $VENV: ${PIP_PACKAGES[*]}"
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
  printf '%s' "${PIP_PACKAGES[*]}" >"$stamp"
}

apt_install
venv_install
PY=$VENV/bin/python
export PATH="$VENV/bin:$PATH"

rm -rf "$WORK"
mkdir -p "$WORK"

# --- check runner ---------------------------------------------------------------
PASSED=0
FAILED=0
FAILED_NAMES=()

# check NAME COMMAND...: runs the command, output indented, counts the result.
check() {
  local name=$1
  shift
  local out=$WORK/check-$((PASSED + FAILED)).log
  if "$@" >"$out" 2>&1; then
    PASSED=$((PASSED + 1))
    printf 'ok    %s\n' "$name"
  else
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$name")
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      /' "$out" | tail -n 40
  fi
}

# kubernetes-validate, strict, where a warning (e.g. an unknown kind) fails too.
kube_validate() {
  local version=$1
  shift
  local out
  out=$(kubernetes-validate --strict --quiet --kubernetes-version "$version" "$@" 2>&1) || { printf '%s\n' "$out"; return 1; }
  printf '%s\n' "$out"
  ! grep -qE '^(WARN|ERROR)' <<<"$out"
}

# check-jsonschema per CRD kind.
crd_validate() {
  local dir=$1 f kind n=0
  for f in "$dir"/*.yaml; do
    [[ -e $f ]] || continue
    kind=$("$PY" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["kind"])' "$f")
    case $kind in
      ServiceMonitor) check-jsonschema --schemafile deploy/checks/schemas/servicemonitor.schema.json "$f" ;;
      PrometheusRule) check-jsonschema --schemafile deploy/checks/schemas/prometheusrule.schema.json "$f" ;;
      *) echo "$f: no schema for CRD kind $kind"; return 1 ;;
    esac || return 1
    n=$((n + 1))
  done
  echo "$n CRD objects valid"
}

# promtool check rules on the spec of every PrometheusRule in a folder.
crd_rules() {
  local dir=$1 f files=() specs=()
  for f in "$dir"/*.yaml; do
    [[ -e $f ]] && grep -q '^kind: PrometheusRule' "$f" && files+=("$f")
  done
  ((${#files[@]})) || { echo "no PrometheusRule in $dir"; return 1; }
  mapfile -t specs < <("$PY" deploy/checks/manifests.py crd-rules "$dir/rules" "${files[@]}")
  promtool check rules "${specs[@]}"
}

# --- Helm chart -------------------------------------------------------------------
VALUE_SETS=("")
for f in "$CHART"/ci/*-values.yaml; do VALUE_SETS+=("$f"); done

for values in "${VALUE_SETS[@]}"; do
  label=${values:-default values}
  label=${label#"$CHART"/}
  check "helm lint --strict ($label)" "$PY" deploy/checks/helm_chart.py lint "$CHART" ${values:+"$values"}
  out=$WORK/render-$(basename "${values:-default}" .yaml)
  check "helm template ($label)" "$PY" deploy/checks/helm_chart.py render "$CHART" "$out" ${values:+"$values"}
  if [[ -d $out/k8s ]]; then
    check "kubernetes-validate --strict $KUBE_VERSION (chart, $label)" kube_validate "$KUBE_VERSION" "$out"/k8s/*.yaml
    check "kubernetes-validate --strict $KUBE_MIN_VERSION (chart, $label)" kube_validate "$KUBE_MIN_VERSION" "$out"/k8s/*.yaml
    check "single-source dashboard and rules (chart, $label)" "$PY" deploy/checks/manifests.py same-source "$out"
    if compgen -G "$out/crd/*.yaml" >/dev/null; then
      check "CRD schemas ServiceMonitor/PrometheusRule (chart, $label)" crd_validate "$out/crd"
      check "promtool check rules on PrometheusRule spec (chart, $label)" crd_rules "$out/crd"
    fi
  fi
done

# The monitoring fixture must really produce the CRD objects.
check "monitoring values render ServiceMonitor and PrometheusRule" \
  bash -c "ls $WORK/render-monitoring-values/crd/ | grep -q ServiceMonitor && ls $WORK/render-monitoring-values/crd/ | grep -q PrometheusRule"

for bad in deploy/checks/bad-values/*.yaml; do
  check "chart rejects $(basename "$bad")" "$PY" deploy/checks/helm_chart.py reject "$CHART" "$bad"
done

check "Redis modes: flags and objects (bundled single/Sentinel, external single/sentinel/cluster)" \
  "$PY" deploy/checks/redis_modes.py "$CHART"

# --- k8s/ plain manifests ------------------------------------------------------------
check "k8s/ copies of the single-source rules and dashboard are up to date" "$PY" deploy/checks/gen_k8s.py --check
check "k8s/kustomization.yaml lists every manifest" "$PY" deploy/checks/manifests.py kustomization k8s/kustomization.yaml
check "split k8s/ manifests" "$PY" deploy/checks/manifests.py split "$WORK/k8s-plain" k8s/*.yaml
check "kubernetes-validate --strict $KUBE_VERSION (k8s/)" kube_validate "$KUBE_VERSION" "$WORK"/k8s-plain/k8s/*.yaml
check "kubernetes-validate --strict $KUBE_MIN_VERSION (k8s/)" kube_validate "$KUBE_MIN_VERSION" "$WORK"/k8s-plain/k8s/*.yaml
check "CRD schemas ServiceMonitor/PrometheusRule (k8s/)" crd_validate "$WORK/k8s-plain/crd"
check "promtool check rules on PrometheusRule spec (k8s/)" crd_rules "$WORK/k8s-plain/crd"

# --- Prometheus -----------------------------------------------------------------------
check "promtool check rules (alert rules)" promtool check rules helm/wsgate/rules/wsgate-alerts.yaml
check "promtool test rules (alert unit tests)" promtool test rules deploy/prometheus/tests/wsgate-alerts.test.yaml
# shellcheck disable=SC2016 # expanded by the inner bash
check "every alert rule has a unit test" bash -c '
  missing=0
  for a in $(grep -oE "alert: [A-Za-z]+" helm/wsgate/rules/wsgate-alerts.yaml | cut -d" " -f2); do
    grep -q "alertname: $a\$" deploy/prometheus/tests/*.yaml || { echo "no test for $a"; missing=1; }
  done
  exit $missing'
# shellcheck disable=SC2016 # expanded by the inner bash
check "every alert is explained in docs/operations.md" bash -c '
  missing=0
  for a in $(grep -oE "alert: [A-Za-z]+" helm/wsgate/rules/wsgate-alerts.yaml | cut -d" " -f2); do
    grep -q "^### $a\$" docs/operations.md || { echo "docs/operations.md has no section ### $a"; missing=1; }
  done
  exit $missing'
# The compose config names its rule file relative to itself, as mounted in the
# container (/etc/prometheus/rules = helm/wsgate/rules): mirror that layout.
mkdir -p "$WORK/prometheus"
cp deploy/prometheus/prometheus.yml "$WORK/prometheus/prometheus.yml"
ln -sfn "$ROOT/helm/wsgate/rules" "$WORK/prometheus/rules"
check "promtool check config (compose prometheus.yml)" promtool check config "$WORK/prometheus/prometheus.yml"

# --- docker-compose -------------------------------------------------------------------
check "docker-compose config -q" docker-compose -f docker-compose.yml config -q
check "docker-compose config -q (profile redis-sentinel)" \
  docker-compose -f docker-compose.yml -f docker-compose.sentinel.yml --profile redis-sentinel config -q
check "docker-compose config -q (profile redis-cluster)" \
  docker-compose -f docker-compose.yml -f docker-compose.cluster.yml --profile redis-cluster config -q
check "check-jsonschema vendor.compose-spec docker-compose{,.sentinel,.cluster}.yml" \
  check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml docker-compose.sentinel.yml docker-compose.cluster.yml
check "compose: replicas, Redis AOF, nginx, Prometheus, Grafana; sentinel and cluster profiles" "$PY" deploy/checks/compose.py
check "Grafana provisioning files" "$PY" -c '
import sys, yaml
for p in ["deploy/grafana/provisioning/datasources/prometheus.yaml", "deploy/grafana/provisioning/dashboards/wsgate.yaml"]:
    d = yaml.safe_load(open(p))
    assert d.get("apiVersion") == 1, p
    assert d.get("datasources") or d.get("providers"), p
print("ok")'

# --- Grafana dashboard -------------------------------------------------------------------
DASH=helm/wsgate/dashboards/wsgate.json
check "dashboard structure (datasource, targets, unique ids)" "$PY" deploy/checks/dashboard.py check "$DASH"
"$PY" deploy/checks/dashboard.py rules "$DASH" >"$WORK/dashboard-queries.rules.yaml" || true
check "every dashboard query parses (promtool)" promtool check rules "$WORK/dashboard-queries.rules.yaml"
# Metric names: those of the contract (PROTOCOL.md, beside the repository as
# shared/), wsgate_ready / wsgate_draining, and the process collector.
PROTOCOL=""
for p in "$ROOT/../shared/PROTOCOL.md" /work/shared/PROTOCOL.md; do [[ -f $p ]] && { PROTOCOL=$p; break; }; done
if [[ -n $PROTOCOL ]]; then
  check "dashboard and alert rules use only known metric names" \
    "$PY" deploy/checks/dashboard.py names "$DASH" helm/wsgate/rules/wsgate-alerts.yaml "$PROTOCOL"
  check "every setting (contract and server) is exposed by the chart" \
    "$PY" deploy/checks/settings.py "$PROTOCOL"
else
  log "PROTOCOL.md not found beside the repository: metric-name and settings checks skipped"
fi

# --- Dockerfile --------------------------------------------------------------------------
check "Dockerfile: build -p wsgate, binary path, ports, non-root, healthcheck, context" "$PY" deploy/checks/dockerfile.py static
check "Dockerfile and compose healthchecks tell ready from not ready" "$PY" deploy/checks/dockerfile.py health

# --- summary -----------------------------------------------------------------------------
if ((FAILED)); then
  printf 'failed: %s\n' "${FAILED_NAMES[@]}"
fi
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))

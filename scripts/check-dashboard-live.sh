#!/usr/bin/env bash
# Live check of the Grafana dashboard: a real redis-server, two wsgate nodes
# (target/debug/wsgate) and a real Prometheus scraping both admin ports every
# second; WebSocket and API traffic; then every dashboard panel query must
# return at least one series. Also: the alert rules load and evaluate in that
# Prometheus, and the nodes survive a Redis restart (broker down, then ready
# again). Everything listens on 127.0.0.1, on free ports; everything started
# here is stopped on exit.
#
#   scripts/check-dashboard-live.sh          (SKIP_BUILD=1 to use the binary as is)
#
# Ends with "N passed, N failed"; exits non-zero when a check failed.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${DEPLOY_VENV:-$ROOT/.venv-deploy}
BIN=${WSGATE_BIN:-$ROOT/target/debug/wsgate}
DASH=$ROOT/helm/wsgate/dashboards/wsgate.json
RULES=$ROOT/helm/wsgate/rules/wsgate-alerts.yaml
API_KEY=testkey
PIP_PACKAGES=(websockets==17.4 pyyaml==6.0.3)

log() { printf '%s\n' "$*" >&2; }

# --- tools --------------------------------------------------------------------------
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  flock /tmp/apt.lock apt-get update -qq
  DEBIAN_FRONTEND=noninteractive flock /tmp/apt.lock apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c 'import websockets, yaml, sys; sys.exit(websockets.__version__ != "17.4")' 2>/dev/null; then
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
fi
PY=$VENV/bin/python

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "cargo build -p wsgate"
  if ! cargo build -q -p wsgate; then
    log "cargo build -p wsgate failed"
    echo "0 passed, 1 failed"
    exit 1
  fi
fi
[[ -x $BIN ]] || { log "no $BIN"; echo "0 passed, 1 failed"; exit 1; }

# --- processes ------------------------------------------------------------------------
WORK=$(mktemp -d -t wsgate-live.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ ${KEEP_WORK:-0} == 1 ]]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL SECONDS [EXPECTED_STATUS]
wait_http() {
  local url=$1 seconds=$2 want=${3:-200} i code
  for ((i = 0; i < seconds * 5; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
    [[ $code == "$want" ]] && return 0
    sleep 0.2
  done
  return 1
}

REDIS_PORT=$(free_port)
while [[ $REDIS_PORT == 6379 ]]; do REDIS_PORT=$(free_port); done
P1=$(free_port) A1=$(free_port) P2=$(free_port) A2=$(free_port) PROM=$(free_port)

start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK" >>"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  local i
  for i in $(seq 1 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "redis-server did not start"
  return 1
}
start_redis

# Webhooks (contract section 10), once the server has them: both nodes POST
# to a receiver started here that answers 200, so the webhook panels have
# data. Until then their queries may be empty (live_queries.py says so).
WEBHOOK_ARGS=()
if "$BIN" --help 2>/dev/null | grep -q -- '--webhook-url'; then
  HOOK=$(free_port)
  python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()' "$HOOK" \
    >"$WORK/webhook.log" 2>&1 &
  PIDS+=($!)
  WEBHOOK_ARGS=(--webhook-url "http://127.0.0.1:$HOOK/hook" --webhook-secret live-check-secret)
  log "webhooks on: receiver on 127.0.0.1:$HOOK"
else
  log "the server has no --webhook-url yet: webhook panels may have no data"
fi

# Inbox overflow policy (contract 5.2), once the server has it: node 1 keeps
# trimming (drop-oldest), node 2 refuses (reject, the default), so the
# traffic checks both and the dropped and refused panels have data.
N1_INBOX_ARGS=()
TRAFFIC_FEATURES=""
if "$BIN" --help 2>/dev/null | grep -q -- '--inbox-overflow'; then
  N1_INBOX_ARGS=(--inbox-overflow drop-oldest)
  TRAFFIC_FEATURES=inbox-overflow
fi

# Node 1 has a small outbox (the traffic checks the slow-consumer close, 1013),
# node 2 a small per-IP limit (the traffic checks the 429); both keep at
# most 3 messages per inbox (the traffic checks the trim).
"$BIN" --redis-url "redis://127.0.0.1:$REDIS_PORT" --listen "127.0.0.1:$P1" --admin-listen "127.0.0.1:$A1" \
  --allow-anonymous --api-key "$API_KEY" --node-id n1 --inbox-max 3 --outbox-size 16 --drain-timeout 1s \
  "${N1_INBOX_ARGS[@]}" "${WEBHOOK_ARGS[@]}" >"$WORK/n1.log" 2>&1 &
N1_PID=$!
PIDS+=("$N1_PID")
"$BIN" --redis-url "redis://127.0.0.1:$REDIS_PORT" --listen "127.0.0.1:$P2" --admin-listen "127.0.0.1:$A2" \
  --allow-anonymous --api-key "$API_KEY" --node-id n2 --inbox-max 3 --max-connections-per-ip 8 \
  --drain-timeout 1s "${WEBHOOK_ARGS[@]}" >"$WORK/n2.log" 2>&1 &
PIDS+=($!)

cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $RULES
scrape_configs:
  - job_name: wsgate
    static_configs:
      - targets: ["127.0.0.1:$A1", "127.0.0.1:$A2"]
EOF
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)

# --- checks -----------------------------------------------------------------------------
PASSED=0
FAILED=0
check() {
  local name=$1
  shift
  local out=$WORK/check-$((PASSED + FAILED)).log
  if "$@" >"$out" 2>&1; then
    PASSED=$((PASSED + 1))
    printf 'ok    %s\n' "$name"
    sed 's/^/      /' "$out" | tail -n 60
  else
    FAILED=$((FAILED + 1))
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      /' "$out" | tail -n 60
  fi
}

both_ready() { wait_http "http://127.0.0.1:$A1/readyz" "$1" && wait_http "http://127.0.0.1:$A2/readyz" "$1"; }
metrics_served() {
  local a body
  for a in "$A1" "$A2"; do
    body=$(curl -sf "http://127.0.0.1:$a/metrics") || return 1
    grep -q '^wsgate_connections ' <<<"$body" || { echo "no wsgate_connections on :$a"; return 1; }
  done
}
public_ready() { wait_http "http://127.0.0.1:$P1/readyz" 5 && wait_http "http://127.0.0.1:$P1/healthz" 5; }

check "both nodes ready (/readyz 200 on the admin port)" both_ready 30
if ((FAILED)); then
  # Nothing else can pass without the nodes.
  for f in n1 n2; do log "--- last lines of $f.log"; tail -n 15 "$WORK/$f.log" >&2 || true; done
  echo "$PASSED passed, $FAILED failed"
  exit 1
fi
check "both nodes serve /metrics with wsgate_connections" metrics_served
check "public listener serves /readyz and /healthz" public_ready
check "prometheus ready" wait_http "http://127.0.0.1:$PROM/-/ready" 30
check "WebSocket and API traffic behaves as the contract says" \
  "$PY" deploy/checks/live_traffic.py "ws://127.0.0.1:$P1" "ws://127.0.0.1:$P2" \
  "http://127.0.0.1:$A1" "http://127.0.0.1:$A2" "$API_KEY" "$TRAFFIC_FEATURES"

# Redis restart: nodes report broker down and not ready, count errors, and
# come back by themselves.
redis_outage() {
  kill "$REDIS_PID"
  wait "$REDIS_PID" 2>/dev/null || true
  wait_http "http://127.0.0.1:$A1/readyz" 20 503 || { echo "n1 stayed ready without Redis"; return 1; }
  local code
  code=$(curl -s -o "$WORK/outage.json" -w '%{http_code}' -H "Authorization: Bearer $API_KEY" \
    -H 'Content-Type: application/json' -d '{"to":"erin","content":"while redis is down"}' \
    "http://127.0.0.1:$A1/api/v1/publish" || true)
  echo "publish to an offline user without Redis: HTTP $code $(cat "$WORK/outage.json" 2>/dev/null)"
  [[ $code == 503 ]] || { echo "expected 503 unavailable"; return 1; }
  sleep 3 # a few scrapes with wsgate_broker_up 0
  start_redis
  both_ready 60 || { echo "nodes did not become ready again after Redis came back"; return 1; }
  echo "both nodes ready again"
}
check "Redis down: 503 on /readyz and for a direct message; ready again after restart" redis_outage

# After the restart, both nodes must stay connected: no reconnect loop.
redis_stable() {
  local expr='min by (instance) (min_over_time(wsgate_broker_up{job="wsgate"}[20s]))'
  sleep 21
  "$PY" - "http://127.0.0.1:$PROM" "$expr" <<'PYEOF'
import json, sys, urllib.parse, urllib.request
base, expr = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=5) as r:
    result = json.load(r)["data"]["result"]
values = {s["metric"].get("instance"): s["value"][1] for s in result}
print(f"{expr}: {values}")
sys.exit(0 if len(values) == 2 and all(v == "1" for v in values.values()) else 1)
PYEOF
}
check "both nodes stay subscribed to Redis for 20s after it came back" redis_stable

unexported=$("$PY" deploy/checks/dashboard.py unexported "$DASH" | paste -sd, -)
log "metrics the dashboard uses that the server does not register yet: ${unexported:-none}"
check "every dashboard panel query returns a series (prometheus, scrape 1s)" \
  "$PY" deploy/checks/live_queries.py "http://127.0.0.1:$PROM" "$DASH" 60

rules_healthy() {
  local body
  body=$(curl -sf "http://127.0.0.1:$PROM/api/v1/rules")
  "$PY" -c '
import json, sys
groups = json.loads(sys.argv[1])["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
bad = ["%s: %s" % (r["name"], r.get("lastError")) for r in rules if r.get("health") != "ok"]
print(f"{len(rules)} rules evaluated, {len(bad)} unhealthy")
print("\n".join(bad))
sys.exit(1 if bad or not rules else 0)' "$body"
}
check "alert rules load and evaluate without error on live data" rules_healthy

drain_on_sigterm() {
  local pid=$N1_PID rc=0
  kill -TERM "$pid"
  wait_http "http://127.0.0.1:$A1/readyz" 5 503 || true
  wait "$pid" || rc=$?
  echo "n1 exited with $rc after SIGTERM"
  [[ $rc == 0 ]]
}
check "SIGTERM: node drains and exits 0" drain_on_sigterm

if ((FAILED)); then
  KEEP_WORK=${KEEP_WORK:-1}
  for f in n1 n2 prometheus redis; do
    log "--- last lines of $f.log"
    tail -n 15 "$WORK/$f.log" >&2 || true
  done
fi
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))

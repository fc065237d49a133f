#!/usr/bin/env bash
# The whole test suite, as the README documents and CI runs it:
#   ./scripts/test-all.sh
# 1. installs what the tests need when missing (apt packages, npm and pip deps);
# 2. checks that the server crate's modules import each other in no cycle
#    (scripts/check-module-cycles.py) and that no source file is over 600
#    lines (scripts/check-file-size.py);
# 3. runs the Rust tests (unit + integration: real wsgate on port 0, real
#    WebSocket clients, real redis-server and nginx started on free ports);
# 4. the JS SDK unit, integration and headless-Chromium tests;
# 5. the deploy checks (Helm, k8s, compose, Prometheus rules, dashboard; the
#    live dashboard check; the chart's bundled Redis + Sentinel run live);
# 6. a smoke run of every load-generator scenario and of every fuzz target.
# Each suite runs even if an earlier one failed; the exit status is non-zero
# if any failed, and the last line sums them up.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-test-deps.sh || { echo "installing test dependencies failed"; exit 1; }

passed=0; failed=0; failures=()
suite() {
  local name=$1; shift
  echo
  echo "=== $name: $*"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); echo "=== $name: ok ($((SECONDS - start))s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "=== $name: FAILED ($((SECONDS - start))s)"
  fi
}

suite module-cycles scripts/check-module-cycles.py
suite file-size scripts/check-file-size.py
# The Rust suite's log is kept so the last lines can name its failed tests
# (CI shows only the end of the output).
rust_log=$root/target/rust-suite.log
rust_suite() {
  mkdir -p "$root/target"
  cargo nextest run --workspace --no-fail-fast --profile ci 2>&1 | tee "$rust_log"
  return "${PIPESTATUS[0]}"
}
if cargo nextest --version >/dev/null 2>&1; then
  suite rust rust_suite
else
  suite rust cargo test --workspace --no-fail-fast
fi
for s in scripts/test-js.sh scripts/check-deploy.sh scripts/check-dashboard-live.sh scripts/check-redis-live.sh loadtest/smoke.sh scripts/fuzz-smoke.sh; do
  if [ -x "$s" ]; then
    suite "$(basename "$s" .sh)" "$root/$s"
  fi
done

echo
if [[ " ${failures[*]} " == *" rust "* && -f $rust_log ]]; then
  echo "rust tests that failed:"
  grep -E '^\s+(FAIL|TIMEOUT|SIGSEGV|SIGABRT|SIGKILL|LEAK)' "$rust_log" | sort -u | head -40
fi
echo "suites: ${passed} passed, ${failed} failed${failures:+ (${failures[*]})}"
[ "$failed" -eq 0 ]

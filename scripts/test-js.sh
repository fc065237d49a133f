#!/usr/bin/env bash
# Tests of the JavaScript SDK (clients/js), its React and Vue bindings
# (clients/react, clients/vue) and the demo page:
#   1. installs what is missing: redis-server and chromium (Debian packages),
#      the npm dev dependencies of each package (npm ci, from its committed
#      package-lock.json);
#   2. builds the server (cargo build -p wsgate);
#   3. type-checks the SDK, tests and demo (tsc --noEmit, checkJs), emits
#      the .d.ts files users get (clients/js/types/, not committed) and
#      compiles a TypeScript usage example against them;
#   4. type-checks the React and Vue packages and emits their .d.ts;
#   5. runs, with node's test runner: unit tests (fake timers, fake socket),
#      the hooks and composables (real React in happy-dom, real Vue in an
#      app context), integration tests (the SDK in Node against real wsgate
#      nodes and redis-server) and browser tests (the demo page, and a small
#      React app and Vue app bundled with esbuild, in headless Chromium;
#      screenshots in test-artifacts/).
# Tests start their servers on free loopback ports and kill them on exit.
# Run from the repository root: scripts/test-js.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '\n== %s\n' "$*"; }

if ! command -v node >/dev/null || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "test-js: Node.js 20 or newer is needed (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  flock /tmp/apt.lock sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing[*]}"
fi

for pkg in js react vue; do
  log "npm ci (clients/$pkg)"
  (cd "clients/$pkg" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
done

log "cargo build -p wsgate"
cargo build -p wsgate
export WSGATE_BIN="${WSGATE_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/wsgate}"

cd clients/js
log "tsc: type check (checkJs) and .d.ts for users"
node_modules/.bin/tsc -p tsconfig.json
rm -rf types
node_modules/.bin/tsc -p tsconfig.types.json
node_modules/.bin/tsc -p tsconfig.usage.json # the .d.ts as a TypeScript user sees them

for pkg in react vue; do
  log "tsc: clients/$pkg (checkJs) and its .d.ts"
  (cd "../$pkg" && rm -rf types && node_modules/.bin/tsc -p tsconfig.json && node_modules/.bin/tsc -p tsconfig.types.json)
done

log "node --test: unit, hooks/composables, integration and browser tests"
node --test --test-concurrency=1 test/unit/ ../react/test/*.test.js ../vue/test/*.test.js test/integration/ test/browser/ \
  ../react/test/browser/ ../vue/test/browser/

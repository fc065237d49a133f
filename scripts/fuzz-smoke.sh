#!/usr/bin/env bash
# Runs every fuzz target for a short while over its seed corpus.
#
#   scripts/fuzz-smoke.sh            # each target for 10 s
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh decode_json token
#   scripts/fuzz-smoke.sh proxy_header   # the PROXY protocol header parser
#
# The targets are every [[bin]] of fuzz/Cargo.toml (`cargo fuzz list`).
#
# Installs cargo-fuzz when it is missing. Uses the nightly toolchain when rustup
# has one, else stable with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs nightly flags).
# Exits non-zero when any target crashes (its input lands in fuzz/artifacts/),
# and ends with "N passed, N failed".
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-10}"

if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "cargo-fuzz not found; installing it from crates.io"
    cargo install --locked cargo-fuzz
fi

cargo_fuzz=(cargo fuzz)
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo_fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${cargo_fuzz[@]}" list)
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets found" >&2
    exit 1
fi

passed=0
failed=0
failures=()
for target in "${targets[@]}"; do
    corpus="corpus/$target"
    mkdir -p "$corpus"
    # Finds go to a scratch corpus so the committed seeds stay hand-written.
    work="target/corpus-work/$target"
    mkdir -p "$work"
    echo "== $target (${seconds}s)"
    if "${cargo_fuzz[@]}" run "$target" "$work" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$target")
    fi
done

if [ "$failed" -gt 0 ]; then
    echo "failed: ${failures[*]} (inputs in fuzz/artifacts/)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

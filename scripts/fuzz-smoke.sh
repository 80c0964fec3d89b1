#!/usr/bin/env bash
# CI smoke run of the fuzz targets (fuzz/, issue #16): builds every target with cargo fuzz
# (libFuzzer, debug assertions on, no sanitizer: the stable toolchain has none; RUSTC_BOOTSTRAP
# lets cargo fuzz pass its -Z flags to stable rustc) and runs each over its committed corpus
# (fuzz/corpus/<target>/, and fuzz/regressions/<target>/ where a crash was found) once, without
# mutating: a crash, a panic or a failed invariant on any committed input fails the script.
# Installs cargo-fuzz when it is missing.
#
#   scripts/fuzz-smoke.sh [SECONDS]   also fuzz each target for SECONDS after the corpus run
#
# Build output goes to $CARGO_TARGET_DIR/fuzz (default target/fuzz), apart from the workspace's.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EXTRA="${1:-0}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/fuzz"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
cd "$ROOT/fuzz"
FLAGS=(--sanitizer none --debug-assertions --target-dir "$TARGET_DIR")
start=$(date +%s)
cargo fuzz build "${FLAGS[@]}"
built=$(date +%s)
failed=0
# Read once (`grep -q` below closing a pipe from cargo fuzz would make it panic on the broken pipe).
targets="$(cargo fuzz list)"
for target in $targets; do
    corpus="corpus/$target"
    [ -d "$corpus" ] || { echo "fuzz-smoke: no corpus for $target" >&2; failed=1; continue; }
    inputs=("$corpus")
    # Inputs that once crashed a target (each also replayed by a unit test in its crate).
    [ -d "regressions/$target" ] && inputs+=("regressions/$target")
    args=(-runs=0)
    [ "$EXTRA" -gt 0 ] && args=(-max_total_time="$EXTRA")
    # Its dictionary (fuzz/dicts/, used by fuzz-campaign.sh): libFuzzer refuses a malformed one.
    [ -f "dicts/$target.dict" ] && args+=(-dict="dicts/$target.dict")
    if ! cargo fuzz run "${FLAGS[@]}" "$target" "${inputs[@]}" -- "${args[@]}" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=0 >"$TARGET_DIR/smoke-$target.log" 2>&1; then
        echo "fuzz-smoke: $target FAILED (log: $TARGET_DIR/smoke-$target.log)" >&2
        tail -30 "$TARGET_DIR/smoke-$target.log" >&2
        failed=1
    else
        echo "fuzz-smoke: $target ok ($(ls "$corpus" | wc -l) inputs)"
    fi
done
# A dictionary belongs to a target.
for dict in dicts/*.dict; do
    [ -e "$dict" ] || continue
    name="$(basename "$dict" .dict)"
    grep -qx "$name" <<<"$targets" || { echo "fuzz-smoke: $dict names no target" >&2; failed=1; }
done
echo "fuzz-smoke: build $((built - start)) s, runs $(($(date +%s) - built)) s"
exit "$failed"

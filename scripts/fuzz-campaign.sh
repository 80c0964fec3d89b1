#!/usr/bin/env bash
# The fuzzing campaign of docs/RELIABILITY.md ("Fuzzing (#16)"): builds the targets, writes the
# seeds (scripts/fuzz-corpus.sh), fuzzes each target in turn for SECONDS (nice 10, one at a
# time) starting from its committed corpus and the seeds, then minimises what it found together
# with the committed corpus into fuzz/corpus/<target>/. libFuzzer's logs (with its final stats)
# go to $CARGO_TARGET_DIR/fuzz/campaign/<target>.log; crashes to fuzz/artifacts/<target>/.
#
#   scripts/fuzz-campaign.sh [SECONDS] [TARGET...]     (default 120 s, every target)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_TARGET="${1:-120}"
shift || true
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/fuzz"
export RUSTC_BOOTSTRAP=1
cd "$ROOT/fuzz"
FLAGS=(--sanitizer none --debug-assertions --target-dir "$TARGET_DIR")
cargo fuzz build "${FLAGS[@]}"
"$ROOT/scripts/fuzz-corpus.sh" "$ROOT/fuzz/seeds" >/dev/null
BIN="$TARGET_DIR/x86_64-unknown-linux-gnu/release"
LOGS="$TARGET_DIR/campaign"
mkdir -p "$LOGS"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t" "$LOGS/new-$t"
    echo "== $t: fuzzing ${SECONDS_PER_TARGET} s"
    nice -n 10 "$BIN/$t" "$LOGS/new-$t" "corpus/$t" "seeds/$t" \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$LOGS/$t.log" 2>&1 || true
    grep -E "^#[0-9]+.*(DONE|INITED)|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|^==[0-9]+== ERROR|panicked at|Test unit written" "$LOGS/$t.log" || true
    # Minimise: the committed corpus, the seeds and what was found, into a fresh folder.
    rm -rf "$LOGS/min-$t" && mkdir -p "$LOGS/min-$t"
    nice -n 10 "$BIN/$t" -merge=1 "$LOGS/min-$t" "corpus/$t" "seeds/$t" "$LOGS/new-$t" \
        -timeout=10 -rss_limit_mb=2048 >"$LOGS/merge-$t.log" 2>&1 || true
    if [ -n "$(ls -A "$LOGS/min-$t")" ]; then
        rm -rf "corpus/$t" && mv "$LOGS/min-$t" "corpus/$t"
    fi
    echo "   corpus/$t: $(ls "corpus/$t" | wc -l) inputs, $(du -sk "corpus/$t" | cut -f1) KB"
done

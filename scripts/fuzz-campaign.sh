#!/usr/bin/env bash
# The fuzzing campaign of docs/RELIABILITY.md ("Fuzzing (#16)"): builds the targets, writes the
# seeds (scripts/fuzz-corpus.sh), fuzzes each target in turn (nice 10, one process at a time,
# libFuzzer's default single worker) starting from its committed corpus and the seeds, then
# minimises what it found together with the committed corpus into fuzz/corpus/<target>/ (inputs
# cut to 4 KB unless the cut loses an edge, duplicates and files identical to a fixture
# dropped). libFuzzer's logs, each line prefixed with the seconds since the run started, go to
# $CARGO_TARGET_DIR/fuzz/campaign/<target>.log;
# crashes to fuzz/artifacts/<target>/. Prints, per target, one row of the RELIABILITY.md table
# (scripts/fuzz-plateau.py: executions, exec/s, cov, ft, when `cov` last grew, the edges gained in
# the last half of the run, whether it plateaued: none), corpus kept, crashes; then where the last
# half's new edges are, by crate (scripts/fuzz-new-edges.py reads libFuzzer's -print_pcs lines),
# each classed by three replays of the minimised corpus: stable (reached in every replay),
# unstable (in some: it depends on a random seed, not on the input) or unkept (in none).
#
#   scripts/fuzz-campaign.sh [SECONDS] [TARGET[=SECONDS]...]     (default 120 s, every target)
#
# e.g. `scripts/fuzz-campaign.sh 180 manager_diff=480 prometheus=480 abi` fuzzes manager_diff and
# prometheus for 480 s and abi for 180 s.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECONDS_PER_TARGET="${1:-120}"
shift || true
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/fuzz"
FIXTURES="${FIXTURES:-$ROOT/../shared/fixtures}"
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
for spec in "${targets[@]}"; do
    t="${spec%%=*}"
    secs="$SECONDS_PER_TARGET"
    [ "$spec" != "$t" ] && secs="${spec#*=}"
    mkdir -p "corpus/$t" "artifacts/$t" "$LOGS/new-$t" "seeds/$t"
    # A target with a dictionary (fuzz/dicts/<target>.dict: its tokens and field names) uses it.
    dict=()
    [ -f "dicts/$t.dict" ] && dict=(-dict="dicts/$t.dict")
    echo "== $t: fuzzing ${secs} s ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
    nice -n 10 "$BIN/$t" "$LOGS/new-$t" "corpus/$t" "seeds/$t" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 "${dict[@]}" \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 -print_pcs=1 2>&1 \
        | perl -MTime::HiRes=time -ne 'BEGIN { $| = 1; $s = time } printf "%.1f %s", time - $s, $_' \
        >"$LOGS/$t.log" || true
    # Minimise: the committed corpus, the seeds and what was found, into a fresh folder.
    rm -rf "$LOGS/min-$t" && mkdir -p "$LOGS/min-$t"
    nice -n 10 "$BIN/$t" -merge=1 "$LOGS/min-$t" "corpus/$t" "seeds/$t" "$LOGS/new-$t" \
        -timeout=10 -rss_limit_mb=2048 >"$LOGS/merge-$t.log" 2>&1 || true
    if [ -n "$(ls -A "$LOGS/min-$t")" ]; then
        rm -rf "corpus/$t" && mv "$LOGS/min-$t" "corpus/$t"
    fi
    # Cut to 4 KB, name by content (drops duplicates the cut makes), drop verbatim fixtures.
    rm -rf "$LOGS/uncut-$t" && cp -r "corpus/$t" "$LOGS/uncut-$t"
    python3 "$ROOT/scripts/fuzz-corpus-tidy.py" "corpus/$t" "$FIXTURES" 4096
    # The cut loses what an input reached only past its first 4 KB (a metadata blob decoded to
    # its end): the uncut inputs that reach an edge the cut corpus misses go back whole (edges
    # only, not hit counts, so only a few do).
    nice -n 10 "$BIN/$t" -merge=1 -use_counters=0 "corpus/$t" "$LOGS/uncut-$t" \
        -timeout=10 -rss_limit_mb=2048 >"$LOGS/merge-back-$t.log" 2>&1 || true
    python3 "$ROOT/scripts/fuzz-corpus-tidy.py" "corpus/$t" "$FIXTURES"
    crashes=$(find "artifacts/$t" -type f | wc -l)
    python3 "$ROOT/scripts/fuzz-plateau.py" "$LOGS/$t.log" "$t" "$secs" "$(ls "corpus/$t" | wc -l)" \
        "$(cat "corpus/$t"/* 2>/dev/null | wc -c)" "$crashes"
    # Where the last half's new edges are (this workspace's code or a dependency's), and whether
    # the corpus now reaches each in every replay (stable) or only in some (noise: hash seeds).
    python3 "$ROOT/scripts/fuzz-new-edges.py" "$LOGS/$t.log" "$BIN/$t" \
        --replay "corpus/$t" "seeds/$t" || true
done

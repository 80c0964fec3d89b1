#!/usr/bin/env bash
# The test command: services up, then format, lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/panic-monitors/target}"
bash scripts/ensure-services.sh
cargo fmt --all --check
bash scripts/check-architecture.sh
# The committed Substrate fixtures are what the generator makes from the pinned metadata (~15 s).
bash scripts/substrate-fixtures.sh --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The fuzz targets (fuzz/, #16): lint the fuzzing entry points, build every target and run each over
# its committed corpus (no mutation; about a minute with a warm build, see docs/RELIABILITY.md).
cargo clippy -p monitor-strategies --features fuzzing --lib --locked -- -D warnings
bash scripts/fuzz-smoke.sh

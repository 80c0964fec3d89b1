#!/usr/bin/env bash
# Regenerates fixtures/substrate/ from real runtime metadata (scripts/substrate-fixtures/README.md).
#   bash scripts/substrate-fixtures.sh           write fixtures/substrate/
#   bash scripts/substrate-fixtures.sh --check   regenerate into a temp folder and compare with the
#                                                committed fixtures; exit 1 on any difference
# Needs Node >= 20 and npm (the npm registry, the first time: npm ci into
# scripts/substrate-fixtures/node_modules, which git ignores).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
gen="$here/substrate-fixtures"
out="$repo/fixtures/substrate"

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

command -v node >/dev/null || { echo "substrate-fixtures: node is not installed" >&2; exit 2; }
command -v npm >/dev/null || { echo "substrate-fixtures: npm is not installed" >&2; exit 2; }

# npm ci only when node_modules was not installed from this very lockfile
stamp="$gen/node_modules/.installed-from-package-lock.json"
if ! cmp -s "$gen/package-lock.json" "$stamp" 2>/dev/null; then
  (cd "$gen" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  cp "$gen/package-lock.json" "$stamp"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
node "$gen/generate.mjs" "$tmp/substrate"
node "$gen/verify.mjs" "$tmp/substrate"

if [ "$check" = 1 ]; then
  if diff -rq "$out" "$tmp/substrate" >"$tmp/diff.txt" 2>&1; then
    echo "substrate-fixtures: fixtures/substrate is up to date"
    exit 0
  fi
  echo "substrate-fixtures: fixtures/substrate differs from what the generator writes:" >&2
  cat "$tmp/diff.txt" >&2
  diff -ru "$out" "$tmp/substrate" 2>/dev/null | cut -c1-200 | head -n 60 >&2 || true
  echo "rerun: bash scripts/substrate-fixtures.sh" >&2
  exit 1
fi

mkdir -p "$(dirname "$out")"
rm -rf "$out.old"
if [ -d "$out" ]; then mv "$out" "$out.old"; fi
mv "$tmp/substrate" "$out"
rm -rf "$out.old"
echo "substrate-fixtures: wrote $(cd "$repo" && du -sh fixtures/substrate | cut -f1) to fixtures/substrate"

#!/usr/bin/env bash
# The invariants of ARCHITECTURE.md that the crate graph can prove, checked on every CI run:
# - strategies cannot name the bus or Redis: monitor-strategies has no path to monitor-bus, lapin or redis;
# - the wire vocabulary is transport-free: monitor-core has no path to the bus, lapin, redis or tokio;
# - the manager compiles without Redis and without any strategy (it knows no chain);
# - the product binaries carry no benchmark dependency.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
# `cargo tree -e normal`: what the crate itself compiles (dev-dependencies may use anything).
deps() { cargo tree --locked -p "$1" -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u; }
forbid() {
  local crate=$1; shift
  local found
  found=$(deps "$crate" | grep -xE "$(IFS='|'; echo "$*")" || true)
  if [ -n "$found" ]; then
    echo "check-architecture: $crate must not depend on: $(echo $found)" >&2
    fail=1
  fi
}

forbid monitor-core monitor-bus lapin redis tokio reqwest
forbid monitor-strategies monitor-bus lapin redis monitors-manager heartbeat monitorables-store
forbid monitors-manager redis monitor-strategies reqwest
forbid bins plotters hdrhistogram

if [ "$fail" -ne 0 ]; then
  exit 1
fi
echo "check-architecture: the crate graph keeps the invariants"

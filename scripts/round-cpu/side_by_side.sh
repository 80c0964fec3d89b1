#!/usr/bin/env bash
# CPU per system round of two monitors-manager binaries, side by side in one run (issue #14):
# both poll N targets every 10 s on the same `bench serve` stand-in; CPU = the scheduler's run
# time of every thread (/proc/PID/task/*/schedstat), rounds = JSON lines written in the window.
#   side_by_side.sh BENCH_BIN BIN_A BIN_B [N=2000] [WARMUP=15] [WINDOW=40] [BODY=fixture]
set -euo pipefail
BENCH=$1 A=$2 B=$3 N=${4:-2000} WARMUP=${5:-15} WINDOW=${6:-40}
BODY=${7:-/work/shared/fixtures/node_exporter/metrics.txt}
DIR=$(mktemp -d /tmp/round-cpu.XXXX)
HERE=$(cd "$(dirname "$0")" && pwd)
mkfifo "$DIR/serve.in"
( exec 3>"$DIR/serve.in"; sleep $((WARMUP + WINDOW + 30)) ) &
HOLD=$!
"$BENCH" serve --fixture "$BODY" <"$DIR/serve.in" >"$DIR/serve.out" &
SERVE=$!
for _ in $(seq 50); do grep -q LISTENING "$DIR/serve.out" 2>/dev/null && break; sleep 0.2; done
ADDR=$(awk '/LISTENING/ {print $2}' "$DIR/serve.out")
python3 "$HERE/gen.py" config "$DIR/cfg" "$N" "http://$ADDR/metrics"
cpu() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {print s}'; }
lines() { grep -c '"routing_key":"system"' "$1" || true; }
SYSTEM_MONITOR_PERIOD_SECONDS=10 "$A" --config-dir "$DIR/cfg" --output "$DIR/a.jsonl" 2>"$DIR/a.err" &
PA=$!
SYSTEM_MONITOR_PERIOD_SECONDS=10 "$B" --config-dir "$DIR/cfg" --output "$DIR/b.jsonl" 2>"$DIR/b.err" &
PB=$!
sleep "$WARMUP"
CA0=$(cpu $PA) CB0=$(cpu $PB) LA0=$(lines "$DIR/a.jsonl") LB0=$(lines "$DIR/b.jsonl")
sleep "$WINDOW"
CA1=$(cpu $PA) CB1=$(cpu $PB) LA1=$(lines "$DIR/a.jsonl") LB1=$(lines "$DIR/b.jsonl")
RA=$(grep VmHWM /proc/$PA/status | awk '{print $2}') RB=$(grep VmHWM /proc/$PB/status | awk '{print $2}')
EA=$(grep -c '"error"' "$DIR/a.jsonl" || true) EB=$(grep -c '"error"' "$DIR/b.jsonl" || true)
kill -INT $PA $PB; wait $PA $PB 2>/dev/null || true
kill $HOLD 2>/dev/null || true; wait $SERVE 2>/dev/null || true
python3 - "$A" "$CA0" "$CA1" "$LA0" "$LA1" "$RA" "$EA" "$B" "$CB0" "$CB1" "$LB0" "$LB1" "$RB" "$EB" <<'PY'
import sys
a = sys.argv[1:]
for i in (0, 7):
    name, c0, c1, l0, l1, hwm, err = a[i:i + 7]
    rounds = int(l1) - int(l0)
    cpu_ms = (int(c1) - int(c0)) / 1e6
    print(f"{name}: {rounds} rounds, {cpu_ms:.0f} ms CPU, {cpu_ms / max(rounds, 1):.3f} ms/round, "
          f"VmHWM {int(hwm) / 1024:.1f} MiB, error envelopes {err}")
PY
rm -rf "$DIR"

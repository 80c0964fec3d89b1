#!/usr/bin/env bash
# Peak RSS (VmHWM) and RSS after the rounds (VmRSS) of monitors-manager with N system monitors
# polling one hostile body (issue #16): gen.py hostile FILE makes the 1M-series body.
#   hostile_rss.sh BENCH_BIN MANAGER_BIN BODY [N=1] [SECONDS=35]
set -euo pipefail
BENCH=$1 BIN=$2 BODY=$3 N=${4:-1} SECONDS_=${5:-35}
DIR=$(mktemp -d /tmp/hostile-rss.XXXX)
HERE=$(cd "$(dirname "$0")" && pwd)
mkfifo "$DIR/serve.in"
( exec 3>"$DIR/serve.in"; sleep $((SECONDS_ + 30)) ) &
HOLD=$!
"$BENCH" serve --fixture "$BODY" <"$DIR/serve.in" >"$DIR/serve.out" &
SERVE=$!
for _ in $(seq 50); do grep -q LISTENING "$DIR/serve.out" 2>/dev/null && break; sleep 0.2; done
ADDR=$(awk '/LISTENING/ {print $2}' "$DIR/serve.out")
python3 "$HERE/gen.py" config "$DIR/cfg" "$N" "http://$ADDR/metrics"
SYSTEM_MONITOR_PERIOD_SECONDS=10 "$BIN" --config-dir "$DIR/cfg" --output "$DIR/out.jsonl" 2>"$DIR/err" &
P=$!
sleep "$SECONDS_"
HWM=$(awk '/VmHWM/ {print $2}' /proc/$P/status) RSS=$(awk '/VmRSS/ {print $2}' /proc/$P/status)
kill -INT $P; wait $P 2>/dev/null || true
kill $HOLD 2>/dev/null || true; wait $SERVE 2>/dev/null || true
ROUNDS=$(grep -c routing_key "$DIR/out.jsonl" || true)
CODES=$(grep -o '"code":[0-9]*' "$DIR/out.jsonl" | sort | uniq -c | tr '\n' ' ' || true)
echo "$(basename "$BIN") N=$N body=$(stat -c %s "$BODY") bytes: VmHWM $((HWM / 1024)) MiB, VmRSS $((RSS / 1024)) MiB after $ROUNDS messages; codes: ${CODES:-none}; round errors logged: $(grep -c 'round failed' "$DIR/err" || true)"
rm -rf "$DIR"

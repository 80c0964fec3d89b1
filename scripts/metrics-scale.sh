#!/usr/bin/env bash
# The /metrics page at N system monitors (docs/METRICS.md "Size and speed"): an embedded manager
# (release build) with N systems polling one local exporter stand-in (`bench serve`, the
# node_exporter fixture), scraped once every monitor has published; prints the page's size and
# the scrape time in both formats, the manager's CPU per scrape (its CPU time over the scrapes,
# less what it spends polling over as long a quiet window), and its RSS, then the RSS of the same
# manager run as long without --metrics-addr.
#
#   scripts/metrics-scale.sh [N=10000] [SCRAPES=10]
#
# Needs: target/release/monitors-manager and target/debug/bench (or CARGO_TARGET_DIR's), curl.
set -euo pipefail
n=${1:-10000}
scrapes=${2:-10}
target=${CARGO_TARGET_DIR:-target}
manager=${MANAGER:-$target/release/monitors-manager}
bench=$target/debug/bench
[ -x "$bench" ] || bench=$target/release/bench
work=$(mktemp -d)
pids=()
cleanup() {
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# `bench serve` runs until its stdin closes: give it one that stays open while this script runs.
mkfifo "$work/serve.in"
exec 3<>"$work/serve.in"
"$bench" serve --addr 127.0.0.1:0 <&3 >"$work/serve.out" &
pids+=($!)
for _ in $(seq 100); do grep -q LISTENING "$work/serve.out" && break; sleep 0.1; done
exporter=$(awk '/LISTENING/ {print $2}' "$work/serve.out")

mkdir -p "$work/config/general"
for i in $(seq 1 "$n"); do
    printf '[system_%d]\nid = system_%d\nparent_id = GENERAL\nname = host_%d\nexporter_url = http://%s/metrics\nmonitor_system = true\n\n' \
        "$i" "$i" "$i" "$exporter"
done >"$work/config/general/systems_config.ini"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# CPU time (user + system) of a process, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
started=$(date +%s)
RUST_LOG=warn "$manager" --config-dir "$work/config" --output /dev/null \
    --metrics-addr "127.0.0.1:$port" &
pids+=($!)
mpid=$!

# Every monitor has published once its `panic_monitor_up` series is there.
want=$n
for _ in $(seq 240); do
    sleep 1
    have=$(curl -s "http://127.0.0.1:$port/metrics" | grep -c '^panic_monitor_up{' || true)
    [ "$have" -ge "$want" ] && break
done
echo "monitors with data: $have of $n (after $(($(date +%s) - started)) s)"
echo "manager RSS before the scrapes: $(ps -o rss= -p "$mpid") KiB"

# What curl asks for, and what Prometheus asks for (OpenMetrics, gzip).
for format in text openmetrics openmetrics+gzip; do
    opts=(-H 'Accept: text/plain')
    case $format in
        openmetrics) opts=(-H 'Accept: application/openmetrics-text; version=1.0.0') ;;
        openmetrics+gzip) opts=(-H 'Accept: application/openmetrics-text; version=1.0.0' -H 'Accept-Encoding: gzip') ;;
    esac
    t0=$(date +%s.%N)
    c0=$(ticks "$mpid")
    for _ in $(seq "$scrapes"); do
        curl -s -o /dev/null "${opts[@]}" -w '%{size_download} %{time_total}\n' \
            "http://127.0.0.1:$port/metrics"
    done >"$work/times"
    c1=$(ticks "$mpid")
    t1=$(date +%s.%N)
    # The same manager, as long, not scraped: what its polling costs meanwhile.
    sleep "$(echo "$t1 - $t0" | bc)"
    c2=$(ticks "$mpid")
    sort -k2 -n "$work/times" | awk -v f=$format -v busy=$((c1 - c0)) -v quiet=$((c2 - c1)) \
        -v hz="$hz" -v n="$scrapes" '{s[NR]=$2; b=$1} END {
        printf "%s: %d bytes (%.2f MiB); scrape time min %.0f ms, median %.0f ms, max %.0f ms; CPU per scrape %.0f ms (%.0f ms with polling, polling alone %.0f ms)\n",
            f, b, b/1048576, s[1]*1000, s[int((NR+1)/2)]*1000, s[NR]*1000,
            (busy - quiet) * 1000 / hz / n, busy * 1000 / hz / n, quiet * 1000 / hz / n}'
done
curl -s "http://127.0.0.1:$port/metrics" >"$work/page.txt"
echo "samples: $(grep -vc '^#' "$work/page.txt"), families: $(grep -c '^# TYPE' "$work/page.txt")"
if command -v promtool >/dev/null; then
    problems=$(promtool check metrics <"$work/page.txt" 2>&1) && echo "promtool check metrics: clean" ||
        echo "promtool check metrics: $problems"
fi
echo "manager RSS after the scrapes: $(ps -o rss= -p "$mpid") KiB"
ran=$(($(date +%s) - started))
kill "$mpid"
wait "$mpid" 2>/dev/null || true

# The same manager without --metrics-addr, run as long.
RUST_LOG=warn "$manager" --config-dir "$work/config" --output /dev/null &
pids+=($!)
sleep "$ran"
echo "manager RSS without --metrics-addr after $ran s: $(ps -o rss= -p "$!") KiB"

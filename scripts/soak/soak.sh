#!/usr/bin/env bash
# Soak of the release binaries (issue #13): 10,000 system monitors for an hour against the
# exporter stand-in (`bench serve`), a broker outage for the soak's own vhost every 10 minutes
# (30/90/30/90/30 s), RSS and /metrics sampled every 10 s. Drives scripts/soak/soak.py.
#
# Needs: RabbitMQ at 127.0.0.1:5672 (guest/guest) with `rabbitmqctl` on PATH, Redis at
# 127.0.0.1:6379 with `redis-cli`, Python >= 3.9 and the `pika` package (made here in a venv,
# SOAK_VENV, default /tmp/soak-venv, with `pip install pika` if missing), and release builds:
#   cargo build --release -p bins -p bench
#
# Usage:
#   scripts/soak/soak.sh [--minutes 60] [--monitors 10000] [--outage-every 600] \
#                        [--run-dir DIR] [--out-dir docs/soak]
# The five binaries (monitors-manager, panic-config, monitorables-store, health-checker, bench)
# are copied from target/release (or $SOAK_BIN_SRC) into RUN_DIR/bin and run from there, so that
# rebuilds do not touch a running soak. Outputs (logs, samples.csv, results.json, summary.md) go
# to RUN_DIR (default /tmp/soak-run-<unique>); with --out-dir the last three are copied there.
# Creates vhost panic-soak-<unique> and Redis namespace panic_soak_<unique>; both are deleted on
# exit, failure or Ctrl-C.
# Smoke test: scripts/soak/soak.sh --minutes 3 --monitors 500 --outage-every 60
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
unique="$(date +%Y%m%d%H%M%S)-$$"
run_dir="/tmp/soak-run-$unique"
py_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --run-dir) run_dir="$2"; shift 2 ;;
        --minutes|--monitors|--outage-every|--period|--out-dir) py_args+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
vhost="panic-soak-$unique"
ns="panic_soak_${unique//-/_}"
venv="${SOAK_VENV:-/tmp/soak-venv}"
bin_src="${SOAK_BIN_SRC:-$repo/target/release}"

mkdir -p "$run_dir/bin"
for b in monitors-manager panic-config monitorables-store health-checker bench; do
    [ -x "$run_dir/bin/$b" ] || cp "$bin_src/$b" "$run_dir/bin/$b"
done
if [ ! -e "$run_dir/bin/BUILD_INFO" ] && [ -z "${SOAK_BIN_SRC:-}" ]; then
    { echo "built from $(git -C "$repo" rev-parse HEAD)"; git -C "$repo" diff --stat HEAD | tail -1; } \
        > "$run_dir/bin/BUILD_INFO" || true
fi
[ -e "$bin_src/BUILD_INFO" ] && [ ! -e "$run_dir/bin/BUILD_INFO" ] && cp "$bin_src/BUILD_INFO" "$run_dir/bin/"
if ! "$venv/bin/python" -c 'import pika' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q pika
fi

cleanup() {
    set +e
    rabbitmqctl delete_vhost "$vhost" >/dev/null 2>&1
    redis-cli --scan --pattern "${ns}*" | xargs -r -d '\n' -n 500 redis-cli DEL >/dev/null
    echo "cleaned up vhost $vhost and Redis keys ${ns}*"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rabbitmqctl add_vhost "$vhost" >/dev/null
rabbitmqctl set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
echo "run dir $run_dir, vhost $vhost, namespace $ns"
"$venv/bin/python" "$here/soak.py" --vhost "$vhost" --namespace "$ns" \
    --run-dir "$run_dir" --bin-dir "$run_dir/bin" "${py_args[@]}"

#!/usr/bin/env bash
# Makes sure the services the tests talk to are up: RabbitMQ (127.0.0.1:5672), Redis (127.0.0.1:6379),
# and that Debian's prometheus-node-exporter and prometheus (with promtool) are installed (tests start their own on a free port).
# Starts what is stopped, installs with apt-get what is missing. Idempotent.
set -euo pipefail

log() { echo "ensure-services: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 120); do
    if port_open "$port"; then return 0; fi
    sleep 1
  done
  log "$what did not open port $port in 120 s"; return 1
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# RabbitMQ
if ! port_open 5672; then
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    log "installing rabbitmq-server"; apt_install rabbitmq-server
  fi
  log "starting rabbitmq-server"
  rabbitmq-server -detached || true
  wait_port 5672 RabbitMQ
fi
# The broker accepts TCP before it is ready for AMQP; wait for it to answer.
if command -v rabbitmq-diagnostics >/dev/null 2>&1; then
  for _ in $(seq 1 60); do
    rabbitmq-diagnostics -q check_running >/dev/null 2>&1 && break
    sleep 1
  done
fi

# Redis
if ! port_open 6379; then
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server"; apt_install redis-server
  fi
  log "starting redis-server"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_port 6379 Redis
fi

# node_exporter (the system monitor's real target in tests)
if ! command -v prometheus-node-exporter >/dev/null 2>&1; then
  log "installing prometheus-node-exporter"; apt_install prometheus-node-exporter
fi
# Prometheus and promtool (Debian's `prometheus`): the benchmark smoke test's side-by-side and the
# metrics tests (a real Prometheus scraping the manager, `promtool check metrics/rules`). The package
# starts no service here (no systemd); tests run their own on a free port.
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  log "installing prometheus (and promtool)"; apt_install prometheus
fi
# ganache (local EVM node) and solc-js for the Chainlink contracts monitor tests, from npm, pinned in
# monitor-strategies/tests/contracts/package.json (+ package-lock.json), installed into that
# directory's node_modules (git-ignored). Skipped when already installed at the pinned versions.
contracts_dir="$(cd "$(dirname "$0")/.." && pwd)/monitor-strategies/tests/contracts"
if ! command -v npm >/dev/null 2>&1; then
  log "installing nodejs and npm"; apt_install nodejs npm
fi
if ! (cd "$contracts_dir" && npm ls --silent ganache solc >/dev/null 2>&1); then
  log "installing ganache and solc (npm) into $contracts_dir/node_modules"
  if ! (cd "$contracts_dir" && npm ci --no-audit --no-fund --loglevel=error); then
    log "npm install of ganache and solc FAILED: the Chainlink contracts tests cannot run"
    exit 1
  fi
fi
log "RabbitMQ, Redis, prometheus-node-exporter, prometheus, ganache and solc are ready"

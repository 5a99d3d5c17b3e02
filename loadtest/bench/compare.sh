#!/usr/bin/env bash
# Side-by-side fan-out comparison: the hub and every peer that installs here,
# the same loadtest scenario against each, one server running at a time.
#
#   loadtest/bench/compare.sh            # everything (about 5 minutes)
#   SUBS=1000 RATES=5,10,20 loadtest/bench/compare.sh hub nats   # a subset
#
# Installs what is missing (nats-server from apt, the Node peers from npm,
# the RabbitMQ Web-STOMP plugin), starts each server on loopback, runs
# `loadtest fanout`, stops it, and writes results/compare/{<server>.json,
# table.md, chart.svg}. sockudo is included when a `sockudo` binary is found
# (SOCKUDO_BIN, PATH, or ~/.cargo/bin); INSTALL_SOCKUDO=1 installs it first
# (`cargo install sockudo`, needs protobuf-compiler, 10+ minutes on two cores).
# On a fresh machine the whole comparison is:
#   INSTALL_SOCKUDO=1 RESTART_RABBITMQ=1 loadtest/bench/compare.sh
# RabbitMQ is the system's (others may use it) and stays running. When its
# open-file limit is too low for SUBS Web-STOMP connections, STOMP runs with
# fewer subscribers, unless RESTART_RABBITMQ=1: then the limit is raised in
# /etc/security/limits.conf and RabbitMQ restarted once.
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH=loadtest/bench
OUT=${OUT:-$BENCH/results/compare}
SUBS=${SUBS:-10000}
RATES=${RATES:-5,7,10,14,20,28,40,56,80,113,160}
DURATION=${DURATION:-5}
PROCESSES=${PROCESSES:-2}
SERVERS=("${@:-hub ws socketio nats stomp sockudo}")
read -r -a SERVERS <<<"${SERVERS[*]}"
mkdir -p "$OUT"
source "$BENCH/lib.sh"

# --- installs ---------------------------------------------------------------
HUB_BIN=${HUB_BIN:-target/release/hub}
# Both packages in one build: built alone, loadtest gets other features of
# shared dependencies and they are rebuilt (minutes).
cargo build --release -p hub -p loadtest
LT=target/release/loadtest
command -v nats-server >/dev/null || apt-get install -y nats-server
(cd "$BENCH/peers" && { [[ -d node_modules ]] || npm ci --no-audit --no-fund; })
if [[ "${INSTALL_SOCKUDO:-0}" == 1 ]] && ! command -v sockudo >/dev/null; then
  command -v protoc >/dev/null || apt-get install -y protobuf-compiler
  nice -n 19 cargo install sockudo   # 10+ minutes on two cores
fi
SOCKUDO_BIN=${SOCKUDO_BIN:-$(command -v sockudo || true)}
[[ -z "$SOCKUDO_BIN" && -x "$HOME/.cargo/bin/sockudo" ]] && SOCKUDO_BIN=$HOME/.cargo/bin/sockudo

run() { # run NAME PROTO PID [extra loadtest args...]
  local name=$1 proto=$2 pid=$3; shift 3
  echo "== $name"
  $LT fanout --target "$proto" --name "$name" --subscribers "${STOMP_SUBS:-$SUBS}" --rates "$RATES" \
    --duration "$DURATION" --processes "$PROCESSES" --threads 1 --server-pid "$pid" \
    --json "$OUT/$name.json" "$@" || echo "$name: run failed" >&2
}

for server in "${SERVERS[@]}"; do
  case $server in
    hub)
      start hub "$HUB_BIN" --config "$BENCH/hub-bench.toml"; wait_port 8000
      run hub hub "$LAST_PID" ;;
    ws)
      start ws node "$BENCH/peers/ws-server.js"; wait_port 8101
      run node-ws ws "$LAST_PID" ;;
    socketio)
      start socketio node "$BENCH/peers/socketio-server.js"; wait_port 8102
      run socketio socketio "$LAST_PID" ;;
    nats)
      start nats nats-server -c "$BENCH/nats-ws.conf"; wait_port 8103
      run nats-ws nats "$LAST_PID" ;;
    stomp)
      if ! pgrep -u rabbitmq -f 'rabbit boot' >/dev/null; then echo "RabbitMQ is not running: STOMP skipped" >&2; continue; fi
      rabbitmq-plugins enable rabbitmq_web_stomp >/dev/null
      wait_port 15674
      beam=$(pgrep -u rabbitmq -f 'rabbit boot' | head -1)
      limit=$(awk '/Max open files/ {print $4}' "/proc/$beam/limits")
      if (( limit < SUBS + 1000 )) && [[ "${RESTART_RABBITMQ:-0}" == 1 ]]; then
        # Web-STOMP fails with emfile near the soft limit (1024 when started as
        # root through the Debian wrapper): raise it for the rabbitmq user and restart.
        grep -q '^rabbitmq soft nofile' /etc/security/limits.conf ||
          printf 'rabbitmq soft nofile 20000\nrabbitmq hard nofile 20000\n' >>/etc/security/limits.conf
        rabbitmqctl stop >/dev/null; rabbitmq-server -detached; rabbitmqctl await_startup >/dev/null
        wait_port 15674 60
        beam=$(pgrep -u rabbitmq -f 'rabbit boot' | head -1)
        limit=$(awk '/Max open files/ {print $4}' "/proc/$beam/limits")
      fi
      if (( limit < SUBS + 1000 )); then
        # Never exhaust a shared broker's descriptors: fewer subscribers instead.
        echo "RabbitMQ allows $limit open files (RESTART_RABBITMQ=1 raises it): STOMP runs with $((limit - 500)) subscribers" >&2
        STOMP_SUBS=$((limit - 500)) run rabbitmq-stomp stomp "$beam"
      else
        run rabbitmq-stomp stomp "$beam"
      fi ;;
    sockudo)
      if [[ -z "$SOCKUDO_BIN" ]]; then echo "sockudo not installed: skipped" >&2; continue; fi
      # Rate limits off and per-app limits raised: the defaults (100 connections,
      # 20 connects and 100 API requests per minute) are for the internet, not a benchmark.
      start sockudo env HOST=127.0.0.1 PORT=6001 RATE_LIMITER_ENABLED=false METRICS_ENABLED=false \
        SOCKUDO_DEFAULT_APP_ID=app-id SOCKUDO_DEFAULT_APP_KEY=app-key SOCKUDO_DEFAULT_APP_SECRET=app-secret \
        SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS=1000000 SOCKUDO_MAX_CONNECTIONS=1000000 \
        SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND=10000000 "$SOCKUDO_BIN"; wait_port 6001 60
      run sockudo pusher "$LAST_PID" ;;
    *) echo "unknown server $server" >&2; exit 2 ;;
  esac
  stop_started
  sleep 2
done

$LT compare "$OUT"/*.json --markdown "$OUT/table.md" --svg "$OUT/chart.svg"

#!/usr/bin/env bash
# Across nodes (issue 4): AMQP ingest rate into a 3-node hub cluster and publish-to-deliver
# latency, subscribers spread round-robin over n1..n3, against the HTTP publisher on n3.
#
#   cargo build --release -p hub -p loadtest
#   loadtest/bench/cluster-amqp.sh                 # all runs
#   loadtest/bench/cluster-amqp.sh fanout-amqp     # some: fanout-amqp fanout-http channels-amqp
#                                                  #   channels-http channels-http-parallel
#
# Each run starts a fresh cluster (deploy/local/cluster.sh, a new HUB_AMQP_PREFIX so no
# exchange or queue of an earlier run is reused) and stops it afterwards. RabbitMQ must run on
# AMQP_URL with the consistent-hash plugin. Reports go to OUT (JSON), the CPU seconds of
# RabbitMQ (beam.smp) per run to OUT/<run>.rabbitmq-cpu.
#
# Environment: HUB_BIN (default target/release/hub), LT (target/release/loadtest), OUT
# (loadtest/bench/results/cluster-amqp), SUBSCRIBERS (1500), CHANNELS (1500, for channels-*),
# FANOUT_RATES (100,300,500,700,1000), CHANNEL_RATES (1000,2000,5000,10000,20000),
# HTTP_CHANNEL_RATES (100,300,1000,3000, for channels-http*), DURATION (5).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HUB_BIN="${HUB_BIN:-target/release/hub}"
LT="${LT:-target/release/loadtest}"
OUT="${OUT:-loadtest/bench/results/cluster-amqp}"
AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
SUBSCRIBERS="${SUBSCRIBERS:-1500}"
CHANNELS="${CHANNELS:-1500}"
FANOUT_RATES="${FANOUT_RATES:-100,300,500,700,1000}"
CHANNEL_RATES="${CHANNEL_RATES:-1000,2000,5000,10000,20000}"
HTTP_CHANNEL_RATES="${HTTP_CHANNEL_RATES:-100,300,1000,3000}"
DURATION="${DURATION:-5}"
URLS=ws://127.0.0.1:8001/connection/websocket,ws://127.0.0.1:8002/connection/websocket,ws://127.0.0.1:8003/connection/websocket
mkdir -p "$OUT"

CLUSTER_PID=
stop_cluster() {
  if [[ -n $CLUSTER_PID ]]; then
    kill -TERM "$CLUSTER_PID" 2>/dev/null || true
    wait "$CLUSTER_PID" 2>/dev/null || true
    CLUSTER_PID=
  fi
}
trap stop_cluster EXIT

# Starts n1..n3 with a fresh prefix; sets PREFIX and NODE_PIDS (comma list).
start_cluster() {
  PREFIX="bench$(date +%s%N | cut -c1-13)"
  local log="$OUT/cluster-$1.log"
  HUB_BIN="$HUB_BIN" HUB_AMQP_PREFIX="$PREFIX" AMQP_URL="$AMQP_URL" LOG_DIR="$OUT/logs-$1" \
    deploy/local/cluster.sh >"$log" 2>&1 &
  CLUSTER_PID=$!
  for _ in $(seq 1 150); do
    grep -q "nodes up" "$log" && break
    kill -0 "$CLUSTER_PID" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.2
  done
  grep -q "nodes up" "$log" || { echo "cluster did not start" >&2; cat "$log" >&2; exit 1; }
  NODE_PIDS="$(sed -n 's/.*(ws:.*, pid \([0-9]*\),.*/\1/p' "$log" | paste -sd,)"
  echo "== $1: prefix $PREFIX, node pids $NODE_PIDS"
}

beam_cpu() { # CPU seconds of RabbitMQ so far
  local pid
  pid="$(pgrep -o beam.smp || true)"
  [[ -n $pid ]] || { echo 0; return; }
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$pid/stat"
}

run() { # name scenario publisher rates [extra args...]
  local name=$1 scenario=$2 publisher=$3 rates=$4
  shift 4
  start_cluster "$name"
  local cpu0
  cpu0="$(beam_cpu)"
  local pub=(--hub-publisher "$publisher")
  case $publisher in
    amqp) pub+=(--amqp-url "$AMQP_URL" --amqp-exchange "$PREFIX.publish") ;;
    http) pub+=(--api http://127.0.0.1:8003) ;;
  esac
  timeout 300 "$LT" "$scenario" --url "$URLS" --server-pid "$NODE_PIDS" "${pub[@]}" \
    --subscribers "$SUBSCRIBERS" --rates "$rates" --duration "$DURATION" --keep-going \
    --threads 2 --json "$OUT/$name.json" "$@"
  awk -v a="$(beam_cpu)" -v b="$cpu0" 'BEGIN { print a - b }' >"$OUT/$name.rabbitmq-cpu"
  stop_cluster
}

runs=("$@")
[[ ${#runs[@]} -gt 0 ]] || runs=(fanout-amqp fanout-http channels-amqp channels-http channels-http-parallel)
for r in "${runs[@]}"; do
  case $r in
    fanout-amqp) run fanout-amqp fanout amqp "$FANOUT_RATES" ;;
    fanout-http) run fanout-http fanout http "$FANOUT_RATES" ;;
    channels-amqp) run channels-amqp channels amqp "$CHANNEL_RATES" --channels "$CHANNELS" ;;
    channels-http) run channels-http channels http "$HTTP_CHANNEL_RATES" --channels "$CHANNELS" ;;
    channels-http-parallel)
      run channels-http-parallel channels http "$HTTP_CHANNEL_RATES" --channels "$CHANNELS" --api-parallel
      ;;
    *) echo "unknown run $r" >&2; exit 2 ;;
  esac
done

#!/usr/bin/env bash
# The hub-only scenarios against issue 6's targets, each bounded in time (about 4 minutes in all):
#   idle 18,000 connections (a channel each, then one shared channel) · connect 10,000 ·
#   fanout 10,000 subscribers · channels 10,000 · reconnect storm 15,000.
# Not in the default set: fanout-delta, the fan-out again with delta compression (every
# subscriber asks for delta: "fossil" and applies the deltas, every publication asks for
# delta: the topic computes one Fossil delta per publication and sends it instead of the data).
# Usage: loadtest/bench/hub.sh [scenario...]   (default: all; results in loadtest/bench/results/hub/)
# HUB_BIN overrides the hub binary (default target/release/hub, built here).
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH=loadtest/bench
OUT=${OUT:-$BENCH/results/hub}
mkdir -p "$OUT"
source "$BENCH/lib.sh"
# Both packages in one build: built alone, loadtest gets other features of
# shared dependencies and they are rebuilt (minutes).
cargo build --release -p hub -p loadtest
HUB_BIN=${HUB_BIN:-target/release/hub}
LT=target/release/loadtest
SCENARIOS=("${@:-idle idle-shared connect fanout channels storm}")
read -r -a SCENARIOS <<<"${SCENARIOS[*]}"

hub_up() {
  # fanout-delta: the bench channels allow delta compression.
  if [ "$1" = fanout-delta ]; then export HUB_CHANNEL__ALLOWED_DELTA_TYPES='["fossil"]'; else unset HUB_CHANNEL__ALLOWED_DELTA_TYPES; fi
  start hub-"$1" "$HUB_BIN" --config "$BENCH/hub-bench.toml"
  HUB_PID=$LAST_PID
  wait_port 8000
}
hub_down() { stop_started; sleep 1; }

for scenario in "${SCENARIOS[@]}"; do
  echo "== $scenario"
  hub_up "$scenario"
  case $scenario in
    idle)     $LT idle --connections 18000 --processes 2 --threads 1 --hold 20 --server-pid "$HUB_PID" --json "$OUT/idle.json" ;;
    idle-shared) $LT idle --connections 18000 --channels 1 --processes 2 --threads 1 --hold 10 --server-pid "$HUB_PID" --json "$OUT/idle-shared.json" ;;
    connect)  $LT connect --connections 10000 --concurrency 1000 --processes 2 --threads 1 --server-pid "$HUB_PID" --json "$OUT/connect.json" ;;
    fanout)   $LT fanout --subscribers 10000 --rates "${RATES:-5,7,10,100}" --keep-going --duration 5 --processes 2 --threads 1 --server-pid "$HUB_PID" --json "$OUT/fanout.json" ;;
    fanout-delta) $LT fanout --delta --subscribers 10000 --rates "${RATES:-5,7,10,100}" --keep-going --duration 5 --processes 2 --threads 1 --server-pid "$HUB_PID" --json "$OUT/fanout-delta.json" ;;
    channels) $LT channels --subscribers 10000 --rates "${CHANNEL_RATES:-2000,5000,10000,20000,40000}" --duration 5 --processes 2 --threads 1 --server-pid "$HUB_PID" --json "$OUT/channels.json" ;;
    storm)    $LT reconnect-storm --clients 15000 --channels 100 --rate 200 --processes 2 --threads 1 --server-pid "$HUB_PID" --json "$OUT/storm.json" ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
  hub_down
done

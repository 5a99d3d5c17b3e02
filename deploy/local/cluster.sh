#!/usr/bin/env bash
# Three hub nodes on loopback joined through a local RabbitMQ, for trying the cluster out.
#
#   deploy/local/cluster.sh            # n1..n3 on http://127.0.0.1:8001..8003, Ctrl-C stops them
#
# Each node runs `hub --dev --node-name nK --listen 127.0.0.1:PORT --amqp-url URL`. n1
# starts first and the others only once it listens: n1 registers its shard consumers first,
# so RabbitMQ makes it the owner of every shard (kill it to watch a failover).
#
# Environment:
#   HUB_BIN          the hub binary (default: target/debug/hub of this checkout, built with
#                    `cargo build -p hub` when missing)
#   AMQP_URL         RabbitMQ URL (default amqp://guest:guest@127.0.0.1:5672/%2f)
#   BASE_PORT        n1 listens on BASE_PORT+1, n2 on +2, n3 on +3 (default 8000)
#   NODES            how many nodes (default 3)
#   HUB_AMQP_PREFIX  names of the exchanges and queues (default hub: hub.publish, ...)
#   LOG_DIR          where the node logs go (default target/cluster-logs)
#   Any other HUB_* variable configures every node (see README.md, "Configuration").

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
BASE_PORT="${BASE_PORT:-8000}"
NODES="${NODES:-3}"
LOG_DIR="${LOG_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/cluster-logs}"
PREFIX="${HUB_AMQP_PREFIX:-hub}"
STARTUP_SECONDS="${STARTUP_SECONDS:-30}"

die() {
  printf 'cluster.sh: %s\n' "$*" >&2
  exit 1
}

# --- the hub binary ------------------------------------------------------------------------
if [[ -n ${HUB_BIN:-} ]]; then
  [[ -x $HUB_BIN ]] || die "HUB_BIN=$HUB_BIN is not an executable file"
else
  HUB_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/hub"
  if [[ ! -x $HUB_BIN ]]; then
    echo "building the hub (cargo build -p hub)..."
    (cd "$ROOT" && cargo build -p hub) || die "cargo build -p hub failed"
  fi
fi

# --- RabbitMQ --------------------------------------------------------------------------------
# host and port of the AMQP URL
hostport="${AMQP_URL#*://}"
hostport="${hostport#*@}"
hostport="${hostport%%/*}"
amqp_host="${hostport%%:*}"
amqp_port=5672
[[ $hostport == *:* ]] && amqp_port="${hostport##*:}"
[[ -z $amqp_host ]] && amqp_host=127.0.0.1

if ! (exec 3<>"/dev/tcp/$amqp_host/$amqp_port") 2>/dev/null; then
  cat >&2 <<EOF
cluster.sh: RabbitMQ is not reachable at $amqp_host:$amqp_port.
  Start it, e.g.:   sudo rabbitmq-server -detached && sudo rabbitmqctl await_startup
                    (or: sudo systemctl start rabbitmq-server)
  Install it:       sudo apt-get install rabbitmq-server
  Or in Docker:     docker run -d --name rabbitmq -p 5672:5672 rabbitmq:3 \\
                      sh -c 'rabbitmq-plugins enable --offline rabbitmq_consistent_hash_exchange && rabbitmq-server'
  Or point AMQP_URL at another broker.
EOF
  exit 1
fi

# The consistent-hash exchange plugin, when we can ask the local broker (rabbitmq-plugins
# needs to run as root or as the rabbitmq user); otherwise the hub itself says so at start.
PATH="$PATH:/usr/sbin:/usr/local/sbin"
if [[ $amqp_host == 127.0.0.1 || $amqp_host == localhost ]] && command -v rabbitmq-plugins >/dev/null 2>&1; then
  if enabled="$(rabbitmq-plugins list -e -m 2>/dev/null)"; then
    if ! grep -qx rabbitmq_consistent_hash_exchange <<<"$enabled"; then
      cat >&2 <<EOF
cluster.sh: the RabbitMQ plugin rabbitmq_consistent_hash_exchange is not enabled; the hub needs it.
  Enable it:        sudo rabbitmq-plugins enable rabbitmq_consistent_hash_exchange
EOF
      exit 1
    fi
  fi
fi

# --- the nodes -----------------------------------------------------------------------------
mkdir -p "$LOG_DIR"
PIDS=()
NAMES=()

stop_all() {
  local status=$?
  trap - INT TERM EXIT
  if [[ ${#PIDS[@]} -gt 0 ]]; then
    echo
    echo "stopping ${NAMES[*]}..."
    local pid
    for pid in "${PIDS[@]}"; do
      kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
      wait "$pid" 2>/dev/null || true
    done
    echo "stopped."
  fi
  exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for ((k = 1; k <= NODES; k++)); do
  name="n$k"
  port=$((BASE_PORT + k))
  log="$LOG_DIR/$name.log"
  : >"$log"
  NO_COLOR=1 HUB_AMQP_PREFIX="$PREFIX" "$HUB_BIN" --dev --node-name "$name" \
    --listen "127.0.0.1:$port" --amqp-url "$AMQP_URL" >>"$log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  NAMES+=("$name")
  # Wait until it listens (or dies).
  deadline=$((SECONDS + STARTUP_SECONDS))
  until grep -q "listening on http://" "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "cluster.sh: $name exited before listening; its log ($log):" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "cluster.sh: $name did not listen within ${STARTUP_SECONDS}s; its log ($log):" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "$name  http://127.0.0.1:$port  (ws://127.0.0.1:$port/connection/websocket, pid $pid, log $log)"
done

cat <<EOF

$NODES nodes up on RabbitMQ ${AMQP_URL/\/\/*@/\/\/***@} (prefix "$PREFIX"); server API key "dev".
  publish over HTTP:  curl -s -X POST http://127.0.0.1:$((BASE_PORT + 1))/api/publish -H 'X-API-Key: dev' -d '{"channel":"news","data":{"text":"hi"}}'
  publish over AMQP:  exchange "$PREFIX.publish", routing key = channel, body = JSON data
  nodes:              curl -s -X POST http://127.0.0.1:$((BASE_PORT + 1))/api/info -H 'X-API-Key: dev'
Ctrl-C stops them all.
EOF

# Stay until Ctrl-C, or until a node dies (say, killed to try a failover).
while true; do
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      echo "${NAMES[$i]} (pid ${PIDS[$i]}) is gone; the others keep running. Ctrl-C stops them."
      unset 'PIDS[i]' 'NAMES[i]'
      PIDS=("${PIDS[@]}")
      NAMES=("${NAMES[@]}")
      break
    fi
  done
  if [[ ${#PIDS[@]} -eq 0 ]]; then
    echo "every node is gone."
    exit 1
  fi
  sleep 1
done

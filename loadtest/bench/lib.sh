# Helpers shared by the bench scripts (sourced, not run).

# wait_port PORT [SECONDS]: until something listens on 127.0.0.1:PORT.
wait_port() {
  local port=$1 limit=${2:-30} i
  for ((i = 0; i < limit * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $port after ${limit}s" >&2
  return 1
}

# Servers started by a script are stopped when it exits, by their pids only.
STARTED_PIDS=()
stop_started() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  STARTED_PIDS=()
}
trap stop_started EXIT

# start NAME CMD...: runs CMD in the background (log in $OUT/NAME.log), remembers its pid in $LAST_PID.
start() {
  local name=$1; shift
  "$@" >"$OUT/$name.log" 2>&1 &
  LAST_PID=$!
  STARTED_PIDS+=("$LAST_PID")
}

#!/usr/bin/env bash
# Runs the cluster tests (three hub nodes joined through RabbitMQ).
#
#   hub/tests/cluster/run.sh                      # every test file
#   hub/tests/cluster/run.sh 04-failover.test.mjs # some of them
#
# It makes sure that:
# - RabbitMQ runs on 127.0.0.1:5672: installed with apt-get when missing, started with
#   `rabbitmq-server -detached` when stopped, awaited with `rabbitmqctl await_startup`;
# - the plugin rabbitmq_consistent_hash_exchange is enabled;
# - the hub binary exists ($HUB_BIN, default $CARGO_TARGET_DIR/debug/hub, built with
#   `cargo build -p hub` when missing), and tests a copy of it (the shared target directory
#   may be rebuilt meanwhile);
# - node_modules matches package-lock.json (`npm ci` otherwise);
# then runs the test files with `node --test`, one file after the other in name order, and
# exits non-zero when a test fails.
#
# Environment:
#   HUB_BIN                      the hub binary to test
#   AMQP_URL                     default amqp://guest:guest@127.0.0.1:5672/%2f
#   HUB_CLUSTER_LOG_DIR          where node logs go (default: $HUB_TEST_LOG_DIR/cluster when
#                                HUB_TEST_LOG_DIR is set, else $CARGO_TARGET_DIR/cluster-test-logs)
#   HUB_TEST_NO_BROKER_RESTART=1 skip 09-rabbitmq-restart.test.mjs, which stops and starts
#                                RabbitMQ's application (anything else using it is disturbed)

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export HUB_BIN="${HUB_BIN:-$TARGET_DIR/debug/hub}"
export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export PATH="$PATH:/usr/sbin:/usr/local/sbin"
if [[ -n ${HUB_TEST_LOG_DIR:-} ]]; then
  export HUB_CLUSTER_LOG_DIR="${HUB_CLUSTER_LOG_DIR:-$HUB_TEST_LOG_DIR/cluster}"
else
  export HUB_CLUSTER_LOG_DIR="${HUB_CLUSTER_LOG_DIR:-$TARGET_DIR/cluster-test-logs}"
fi

log() { printf '==> %s\n' "$*"; }
die() {
  printf 'run.sh: %s\n' "$*" >&2
  exit 1
}



# --- the hub binary ------------------------------------------------------------------------
ensure_hub() {
  if [[ ! -x $HUB_BIN ]]; then
    log "$HUB_BIN is missing: cargo build -p hub"
    (cd "$ROOT" && cargo build -p hub) || die "cargo build -p hub failed"
    [[ -x $HUB_BIN ]] || die "the build did not produce $HUB_BIN (set HUB_BIN)"
  fi
  # Test a copy: the target directory may be rebuilt while the tests run (cargo replaces
  # the file), and every file should test the same build.
  SNAPSHOT_DIR="$(mktemp -d "${TMPDIR:-/tmp}/hub-cluster-tests.XXXXXX")"
  trap 'rm -rf "$SNAPSHOT_DIR"' EXIT
  local try
  for try in 1 2 3 4 5; do
    cp "$HUB_BIN" "$SNAPSHOT_DIR/hub" 2>/dev/null && break
    sleep 2 # cargo may be replacing it right now
  done
  [[ -x $SNAPSHOT_DIR/hub ]] || die "cannot copy $HUB_BIN to $SNAPSHOT_DIR"
  log "hub binary: $HUB_BIN (tested as a copy: $SNAPSHOT_DIR/hub)"
  export HUB_BIN="$SNAPSHOT_DIR/hub"
}

# --- npm -----------------------------------------------------------------------------------
ensure_npm() {
  command -v node >/dev/null || die "node not found: install Node.js >= 20"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [[ $major -ge 20 ]] || die "node $(node --version) is too old: the cluster tests need Node.js >= 20"
  local stamp="$HERE/node_modules/.hub-installed-lock" want
  want="$(node -e '
    const fs = require("fs"), crypto = require("crypto");
    const h = crypto.createHash("sha256");
    for (const f of process.argv.slice(1)) h.update(fs.readFileSync(f));
    console.log(h.digest("hex"));
  ' "$HERE/package.json" "$HERE/package-lock.json")"
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  log "npm ci (node_modules missing or stale)"
  (cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund) || die "npm ci failed"
  echo "$want" >"$stamp"
}

log "RabbitMQ"
ensure_rabbitmq || die "RabbitMQ is not usable (see above)"
ensure_hub
ensure_npm

cd "$HERE"
# Every test file, in name order (node --test sorts them too): 09-rabbitmq-restart, which
# stops and starts RabbitMQ, comes last.
FILES=(./*.test.mjs)
if [[ $# -gt 0 ]]; then
  FILES=("$@")
fi
log "node --test ${FILES[*]}"
start=$SECONDS
status=0
node --test --test-concurrency=1 --test-reporter=spec "${FILES[@]}" || status=$?
log "cluster tests: $([[ $status -eq 0 ]] && echo passed || echo "FAILED (exit $status)") in $((SECONDS - start)) s; node logs in $HUB_CLUSTER_LOG_DIR"
exit "$status"

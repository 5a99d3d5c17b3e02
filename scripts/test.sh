#!/usr/bin/env bash
# The test command of the project: builds the workspace and runs every test.
#
#   ./scripts/test.sh            (from any directory)
#
# Needs the Rust toolchain, Node.js >= 20 with npm, and the OS package manager; it
# installs and starts what the tests need itself (RabbitMQ with its consistent-hash
# plugin, Chromium, npm packages). Steps, in order:
#   assets      scripts/build-assets.sh                  (the API docs page the hub embeds:
#               npm ci in clients/api-docs when stale; hub/build.rs would run it too,
#               but this step shows its output and fails visibly)
#   build       cargo build --workspace --bins --tests   (debug)
#   fmt         cargo fmt --all -- --check               (rustfmt.toml's style)
#   clippy      cargo clippy --workspace --all-targets -- -D warnings
#   layering    scripts/check-layering.py                (no import cycle, dependency directions)
#   deploy-checks  deploy/check.sh                       (Dockerfile, Kubernetes manifests, compose
#                  file, Grafana dashboard, systemd unit; linters pinned from PyPI)
#   rust-tests  cargo test --workspace                   (unit + integration tests)
#   openapi     scripts/openapi-check.sh                 (the OpenAPI document validated, schemathesis
#               against a live hub; pinned PyPI tools in a venv)
#   fuzz        scripts/fuzz.sh                          (30 s of cargo fuzz per target: protocol frames,
#               JSON commands, server API bodies, Last-Event-ID; skipped without a nightly
#               toolchain; cargo-fuzz installed when missing)
#   npm         npm ci in hub/tests/sdk, when node_modules is missing or stale
#   sdk-tests   node --test hub/tests/sdk/*.test.mjs     (the centrifuge SDK against the hub)
#   cluster-tests  hub/tests/cluster/run.sh              (three nodes on RabbitMQ: installed with
#                  apt-get when missing, started when stopped, plugin enabled)
#   client-tests   clients/test.sh                       (Vue composables: Vitest; demo: Playwright +
#                  Chromium, installed with apt-get when missing)
# A failing build stops the run; otherwise every step runs and the summary at the end
# lists each one. The exit status is non-zero when any step failed.
#
# Environment:
#   CARGO_TARGET_DIR      honoured; the SDK tests run $CARGO_TARGET_DIR/debug/hub

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SDK_DIR="$ROOT/hub/tests/sdk"
export HUB_BIN="$TARGET_DIR/debug/hub"
export HUB_TEST_LOG_DIR="$TARGET_DIR/sdk-test-logs"

SDK_TESTS_RAN=0
STEP_NAMES=()
STEP_RESULTS=()
# Each step's output is also kept here (the summary repeats the end of a failed one).
STEP_LOG_DIR="$TARGET_DIR/test-logs"
STEP_SECONDS=()
FAILED=0

log() { printf '\n==> %s\n' "$*"; }

# run_step NAME COMMAND...: runs COMMAND in a subshell with errexit on, records its outcome
# and leaves its exit status in STEP_RC. It always returns 0: calling it from a condition
# (if, ||, &&) would switch errexit off inside COMMAND, so callers test STEP_RC instead.
STEP_RC=0
run_step() {
  local name="$1"
  shift
  log "$name: $*"
  local start=$SECONDS
  mkdir -p "$STEP_LOG_DIR"
  set +e
  (
    set -euo pipefail
    "$@"
  ) > >(tee "$STEP_LOG_DIR/$name.log") 2>&1
  # Through a process substitution, not a pipe: a daemon the step starts (RabbitMQ)
  # may keep the descriptor open, and the run must not wait for it.
  STEP_RC=$?
  set -e
  record_step "$name" "$start" "$STEP_RC"
}

record_step() {
  STEP_NAMES+=("$1")
  STEP_SECONDS+=("$((SECONDS - $2))")
  if [[ $3 -eq 0 ]]; then
    STEP_RESULTS+=("ok")
  else
    STEP_RESULTS+=("FAILED (exit $3)")
    FAILED=1
  fi
}

skip_step() {
  STEP_NAMES+=("$1")
  STEP_SECONDS+=("0")
  STEP_RESULTS+=("skipped ($2)")
}

summary() {
  printf '\n==> summary\n'
  local i
  for i in "${!STEP_NAMES[@]}"; do
    printf '  %-14s %-24s %5ss\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECONDS[$i]}"
  done
  if [[ $FAILED -ne 0 ]]; then
    # The end of each failed step's output again, so that the tail of the whole
    # run (all that some CI views keep) says why.
    for i in "${!STEP_NAMES[@]}"; do
      if [[ ${STEP_RESULTS[$i]} == FAILED* && -f $STEP_LOG_DIR/${STEP_NAMES[$i]}.log ]]; then
        printf '\n==> the last 40 lines of %s (whole output: %s)\n' "${STEP_NAMES[$i]}" "$STEP_LOG_DIR/${STEP_NAMES[$i]}.log"
        tail -n 40 "$STEP_LOG_DIR/${STEP_NAMES[$i]}.log"
      fi
    done
    printf '\nFAILED\n'
    if [[ $SDK_TESTS_RAN -eq 1 ]]; then
      printf 'hub logs of the SDK tests: %s\n' "$HUB_TEST_LOG_DIR"
    fi
  else
    printf '\nall tests passed\n'
  fi
}



# --- steps ------------------------------------------------------------------------------

check_tools() {
  command -v cargo >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup.rs)" >&2; return 1; }
  local component
  for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
      echo "cargo ${component/rustfmt/fmt} not found: adding the $component component" >&2
      rustup component add "$component" || { echo "install it: rustup component add $component" >&2; return 1; }
    fi
  done
  command -v python3 >/dev/null || { echo "python3 not found: install it with the OS package manager" >&2; return 1; }
  command -v node >/dev/null || { echo "node not found: install Node.js >= 20" >&2; return 1; }
  command -v npm >/dev/null || { echo "npm not found: install Node.js >= 20 with npm" >&2; return 1; }
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if [[ $major -lt 20 ]]; then
    echo "node $(node --version) is too old: the SDK tests need Node.js >= 20" >&2
    return 1
  fi
}

build() {
  cargo build --workspace --bins --tests
  [[ -x $HUB_BIN ]] || { echo "the build did not produce $HUB_BIN" >&2; return 1; }
}

rust_tests() {
  cargo test --workspace
}

fmt_check() {
  cargo fmt --all -- --check
}

clippy_check() {
  cargo clippy --workspace --all-targets -- -D warnings
  # The fuzz targets' entry points (hub/src/fuzzing.rs) exist only with this feature.
  cargo clippy -p hub --lib --features fuzzing -- -D warnings
}

layering_check() {
  python3 "$ROOT/scripts/check-layering.py" "$ROOT/hub/src"
}

# npm ci when node_modules is missing or was installed from another lock file.
npm_install() {
  local stamp="$SDK_DIR/node_modules/.hub-installed-lock" want
  want="$(node -e '
    const fs = require("fs"), crypto = require("crypto");
    const h = crypto.createHash("sha256");
    for (const f of process.argv.slice(1)) h.update(fs.readFileSync(f));
    console.log(h.digest("hex"));
  ' "$SDK_DIR/package.json" "$SDK_DIR/package-lock.json")"
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    echo "node_modules is up to date with package-lock.json"
    return 0
  fi
  (cd "$SDK_DIR" && npm ci --ignore-scripts --no-audit --no-fund)
  echo "$want" >"$stamp"
}

sdk_tests() {
  # The logs of this run only.
  rm -rf "$HUB_TEST_LOG_DIR"
  mkdir -p "$HUB_TEST_LOG_DIR"
  (cd "$SDK_DIR" && node --test --test-reporter=spec ./*.test.mjs)
}



# --- main -------------------------------------------------------------------------------

main() {
  run_step tools check_tools
  if [[ $STEP_RC -ne 0 ]]; then summary; exit 1; fi

  # RabbitMQ and Chromium are ensured by the steps that need them (the cluster
  # and client runners, through scripts/lib.sh).

  # A failure here still lets the build run (without the docs page, whose test then fails).
  run_step assets bash "$ROOT/scripts/build-assets.sh"
  run_step build build
  if [[ $STEP_RC -ne 0 ]]; then
    skip_step fmt "build failed"
    skip_step clippy "build failed"
    skip_step layering "build failed"
    skip_step deploy-checks "build failed"
    skip_step rust-tests "build failed"
    skip_step openapi "build failed"
    skip_step fuzz "build failed"
    skip_step npm "build failed"
    skip_step sdk-tests "build failed"
    summary
    exit 1
  fi
  run_step fmt fmt_check
  run_step clippy clippy_check
  run_step layering layering_check
  run_step deploy-checks bash "$ROOT/deploy/check.sh"
  run_step rust-tests rust_tests
  run_step openapi bash "$ROOT/scripts/openapi-check.sh"
  if rustup run nightly rustc --version >/dev/null 2>&1; then
    run_step fuzz bash "$ROOT/scripts/fuzz.sh"
  else
    skip_step fuzz "no nightly toolchain: rustup toolchain install nightly"
  fi
  run_step npm npm_install
  if [[ $STEP_RC -eq 0 ]]; then
    SDK_TESTS_RAN=1
    run_step sdk-tests sdk_tests
  else
    skip_step sdk-tests "npm ci failed"
  fi
  run_step cluster-tests bash "$ROOT/hub/tests/cluster/run.sh"
  run_step client-tests bash "$ROOT/clients/test.sh"
  summary
  [[ $FAILED -eq 0 ]]
}

main "$@"

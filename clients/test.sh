#!/usr/bin/env bash
# Tests of the Vue clients: the @hub/vue composables (Vitest, against a real hub) and the demo
# app (Playwright end-to-end in headless Chromium, against `hub --dev` serving the build).
#
#   clients/test.sh            (from any directory; the project's test command calls it)
#
# Steps, in order:
#   chromium    install Debian's chromium with apt-get when /usr/bin/chromium is missing
#   npm         npm ci in clients/vue and clients/demo when node_modules is missing or was
#               installed from another package-lock.json
#   vue-build   type-check and build the package (tsc: dist/ with .d.ts), check that no
#               internal type (the channel registry, the ring buffer) is in the .d.ts
#   demo-build  type-check and build the demo into clients/demo/dist, then check that the
#               committed dist/ is that build (hub --dev serves it; see clients/README.md)
#   vue-tests   Vitest: the composables against the hub binary
#   package     clients/package-check.sh: the packed tarball installs into a fresh
#               `npm create vite@7` app, which type-checks and builds against it
#   e2e         Vitest + playwright-core: the demo in Chromium, screenshots in
#               clients/demo/test-output/screenshots/
# Every step runs (the tests need the builds: a failed build skips them); the summary lists
# each step and the last line counts the tests. Exit status non-zero when anything failed.
#
# Environment:
#   HUB_BIN         hub binary to test against (default: $CARGO_TARGET_DIR or <repo>/target,
#                   then debug/hub); build it first with `cargo build -p hub`
#   CHROMIUM_BIN    browser for the e2e tests (default /usr/bin/chromium)
#   HUB_SKIP_DIST_CHECK=1   rebuild dist/ without failing when it differs from the commit

set -euo pipefail

CLIENTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$CLIENTS/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
VUE_DIR="$CLIENTS/vue"
DEMO_DIR="$CLIENTS/demo"
HUB_BIN="${HUB_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/hub}"
case $HUB_BIN in /*) ;; *) HUB_BIN="$PWD/$HUB_BIN" ;; esac
export HUB_BIN
export CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
REPORTS="$CLIENTS/demo/test-output/reports"

STEP_NAMES=()
STEP_RESULTS=()
STEP_SECONDS=()
FAILED=0
STEP_RC=0

log() { printf '\n==> clients: %s\n' "$*"; }

run_step() {
  local name="$1"
  shift
  log "$name: $*"
  local start=$SECONDS
  set +e
  (
    set -euo pipefail
    "$@"
  )
  STEP_RC=$?
  set -e
  STEP_NAMES+=("$name")
  STEP_SECONDS+=("$((SECONDS - start))")
  if [[ $STEP_RC -eq 0 ]]; then
    STEP_RESULTS+=("ok")
  else
    STEP_RESULTS+=("FAILED (exit $STEP_RC)")
    FAILED=1
  fi
}

skip_step() {
  STEP_NAMES+=("$1")
  STEP_SECONDS+=("0")
  STEP_RESULTS+=("skipped ($2)")
  FAILED=1
}


# --- steps ------------------------------------------------------------------------------


# npm ci in DIR when its node_modules is missing or was installed from another lock file.
npm_ci_if_stale() {
  local dir="$1" stamp want
  stamp="$dir/node_modules/.hub-installed-lock"
  want="$(node -e '
    const fs = require("fs"), crypto = require("crypto");
    const h = crypto.createHash("sha256");
    for (const f of process.argv.slice(1)) h.update(fs.readFileSync(f));
    console.log(h.digest("hex"));
  ' "$dir/package.json" "$dir/package-lock.json")"
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    echo "$dir/node_modules is up to date with package-lock.json"
    return 0
  fi
  echo "npm ci in $dir"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund)
  echo "$want" >"$stamp"
}

npm_install() {
  npm_ci_if_stale "$VUE_DIR"
  npm_ci_if_stale "$DEMO_DIR"
}

vue_build() {
  cd "$VUE_DIR"
  npm run --silent typecheck
  npm run --silent build
  # The registry and the ring buffer are internal (@internal, stripInternal): a published
  # .d.ts that names them would make them part of the API.
  if grep -l 'ChannelRegistry\|SharedChannel\|class Ring' dist/*.d.ts; then
    echo "internal types in the published .d.ts (files above): mark them @internal" >&2
    return 1
  fi
  # ... and every public entry point is (a stray @internal tag strips whatever it documents).
  local name
  for name in createHub provideHub useHub useChannel usePresence; do
    grep -q "\b$name\b" dist/index.d.ts || { echo "$name is missing from dist/index.d.ts" >&2; return 1; }
  done
  echo "built $VUE_DIR/dist (no internal types in its .d.ts, every composable in it)"
}

# The committed dist/ is what `hub --dev` serves on a fresh clone: it must be this build.
demo_build() {
  cd "$DEMO_DIR"
  npm run --silent build
  if [[ ${HUB_SKIP_DIST_CHECK:-0} == 1 ]]; then
    echo "HUB_SKIP_DIST_CHECK=1: not comparing dist/ with the commit"
    return 0
  fi
  if ! git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "not a git checkout: dist/ rebuilt, not compared"
    return 0
  fi
  local changes
  changes="$(git -C "$ROOT" status --porcelain --untracked-files=all -- clients/demo/dist)"
  if [[ -n $changes ]]; then
    echo "clients/demo/dist differs from the committed build:" >&2
    echo "$changes" >&2
    echo "the rebuilt files are in place: review and commit clients/demo/dist with the source change" >&2
    return 1
  fi
  echo "clients/demo/dist matches the committed build"
}

check_hub() {
  [[ -x $HUB_BIN ]] || { echo "hub binary $HUB_BIN missing: cargo build -p hub" >&2; return 1; }
}

vue_tests() {
  check_hub
  mkdir -p "$REPORTS"
  cd "$VUE_DIR"
  npx vitest run --reporter=default --reporter=json --outputFile.json="$REPORTS/vue.json"
}

e2e_tests() {
  check_hub
  mkdir -p "$REPORTS"
  cd "$DEMO_DIR"
  npx vitest run --config vitest.e2e.config.ts --reporter=default --reporter=json --outputFile.json="$REPORTS/e2e.json"
  echo "screenshots: $DEMO_DIR/test-output/screenshots/"
}

# Totals of the Vitest JSON reports written by this run.
count_tests() {
  node -e '
    const fs = require("fs");
    let passed = 0, failed = 0, skipped = 0;
    for (const f of process.argv.slice(1)) {
      if (!fs.existsSync(f)) continue;
      const r = JSON.parse(fs.readFileSync(f, "utf8"));
      passed += r.numPassedTests; failed += r.numFailedTests;
      skipped += r.numPendingTests + (r.numTodoTests || 0);
    }
    console.log(`clients: ${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
  ' "$REPORTS/vue.json" "$REPORTS/e2e.json"
}

summary() {
  printf '\n==> clients: summary\n'
  local i
  for i in "${!STEP_NAMES[@]}"; do
    printf '  %-12s %-24s %5ss\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECONDS[$i]}"
  done
  count_tests || true
}

# --- main -------------------------------------------------------------------------------

main() {
  rm -f "$REPORTS/vue.json" "$REPORTS/e2e.json"
  run_step chromium ensure_chromium
  local chromium_rc=$STEP_RC
  run_step npm npm_install
  if [[ $STEP_RC -ne 0 ]]; then
    skip_step vue-build "npm ci failed"
    skip_step demo-build "npm ci failed"
    skip_step vue-tests "npm ci failed"
    skip_step e2e "npm ci failed"
  else
    run_step vue-build vue_build
    local vue_build_rc=$STEP_RC
    run_step demo-build demo_build
    local demo_build_rc=$STEP_RC
    if [[ $vue_build_rc -eq 0 ]]; then
      run_step vue-tests vue_tests
      run_step package bash "$CLIENTS/package-check.sh"
    else
      skip_step vue-tests "vue-build failed"
      skip_step package "vue-build failed"
    fi
    if [[ $chromium_rc -ne 0 ]]; then
      skip_step e2e "no chromium"
    elif [[ ! -f $DEMO_DIR/dist/index.html ]]; then
      skip_step e2e "no demo build"
    else
      # A stale committed dist/ fails demo-build, but the fresh build is in place: test it.
      [[ $demo_build_rc -eq 0 ]] || echo "(e2e runs on the rebuilt dist/)"
      run_step e2e e2e_tests
    fi
  fi
  summary
  if [[ $FAILED -ne 0 ]]; then
    printf '\nclients: FAILED\n'
    exit 1
  fi
  printf '\nclients: all tests passed\n'
}

main "$@"

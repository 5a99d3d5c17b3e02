#!/usr/bin/env bash
# Short fuzzing runs of every fuzz target (the `fuzz` step of scripts/test.sh):
#
#   scripts/fuzz.sh                 (FUZZ_SECONDS per target, default 30)
#
# Targets, each with its hand-written seeds:
#   protocol/fuzz  decode_frame    client protocol frames, commands and replies, JSON and Protobuf
#   protocol/fuzz  json_command    the JSON command decoder alone
#   hub/fuzz       api_request     server API bodies: /api/<method>, /api/batch, legacy POST /api
#   hub/fuzz       last_event_id   uni_sse's Last-Event-ID header
# Needs a nightly toolchain (cargo fuzz builds with sanitizers) and cargo-fuzz, which is
# installed with `cargo install cargo-fuzz --locked` when missing. Without a nightly
# toolchain it says so and exits 0 (the step is reported as skipped by the caller).
# The growing corpus is kept under ${CARGO_TARGET_DIR:-target}/fuzz-corpus/<target>, so
# later runs start where earlier ones stopped. A crash fails the run: libFuzzer prints
# the input, cargo fuzz saves it under <crate>/fuzz/artifacts/<target>/ and prints the
# command that replays it; turn it into a regression test before fixing.
#
# Environment:
#   FUZZ_SECONDS   time per target (default 30)
#   FUZZ_TARGETS   space-separated subset of the targets above

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-30}"
CORPUS_ROOT="${CARGO_TARGET_DIR:-$ROOT/target}/fuzz-corpus"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "FUZZ-SKIPPED: no nightly toolchain (rustup toolchain install nightly)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz not found: cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi

# crate-dir target dictionary(or -)
TARGETS=(
  "protocol decode_frame fuzz/decode_frame.dict"
  "protocol json_command fuzz/decode_frame.dict"
  "hub api_request -"
  "hub last_event_id -"
)

failed=()
for entry in "${TARGETS[@]}"; do
  read -r dir target dict <<<"$entry"
  if [[ -n ${FUZZ_TARGETS:-} && " $FUZZ_TARGETS " != *" $target "* ]]; then
    continue
  fi
  corpus="$CORPUS_ROOT/$target"
  mkdir -p "$corpus"
  args=(-max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  [[ $dict != - ]] && args+=(-dict="$dict")
  echo "==> $dir/fuzz $target for ${SECONDS_PER_TARGET}s (corpus $corpus)"
  if [[ $dir == hub ]]; then
    # hub/fuzz builds the hub with the versions the root workspace locked (its own
    # Cargo.lock is not committed: it would go stale with every dependency change).
    cp "$ROOT/Cargo.lock" "$ROOT/hub/fuzz/Cargo.lock"
  fi
  if (cd "$ROOT/$dir" && cargo +nightly fuzz run "$target" "$corpus" "fuzz/seeds/$target" -- "${args[@]}"); then
    echo "==> $target: no crash in ${SECONDS_PER_TARGET}s"
  else
    echo "==> $target: FAILED (a crash or a build error; see above)" >&2
    failed+=("$target")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzing failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing: every target ran without a crash"

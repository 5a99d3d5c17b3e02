#!/usr/bin/env bash
# Contract test of the server API's OpenAPI document against a live hub:
#
#   ./scripts/openapi-check.sh        (from any directory; build the hub first: cargo build -p hub)
#
# 1. starts the debug hub (${CARGO_TARGET_DIR:-target}/debug/hub) on a free loopback port
#    with a temporary configuration that has an API key and channels with history and
#    presence, and stops it on exit;
# 2. fetches GET /api/openapi.json and validates it with openapi-spec-validator;
# 3. runs schemathesis on every operation of the document with the API key: the
#    examples, coverage and fuzzing phases, positive and negative data, seeded, with
#    the checks in CHECKS below; any failure fails the script;
# 4. fails too when the hub died or logged a panic meanwhile.
# The tools come pinned from PyPI into a venv of their own (scripts/lib.sh).
#
# Environment:
#   CARGO_TARGET_DIR        honoured; logs and reports go to $CARGO_TARGET_DIR/openapi-check/
#   HUB_BIN                 the hub binary (default $CARGO_TARGET_DIR/debug/hub)
#   OPENAPI_MAX_EXAMPLES    test cases per operation and phase (default 100: about 1,800 cases,
#                           some 15 s on 2 cores)
#   OPENAPI_SEED            the seed of the generated data (default 17)

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
HUB_BIN="${HUB_BIN:-$TARGET_DIR/debug/hub}"
OUT="$TARGET_DIR/openapi-check"
MAX_EXAMPLES="${OPENAPI_MAX_EXAMPLES:-100}"
SEED="${OPENAPI_SEED:-17}"
API_KEY="openapi-check-key"
CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,positive_data_acceptance,ignored_auth"

[[ -x $HUB_BIN ]] || { echo "$HUB_BIN not found: build it with cargo build -p hub (or set HUB_BIN)" >&2; exit 1; }
bin="$(ensure_python_tools openapi openapi-spec-validator==0.9.0 schemathesis==4.32.5)"

rm -rf "$OUT"
mkdir -p "$OUT"
cat >"$OUT/hub.toml" <<EOF
listen = "127.0.0.1:0"
api_key = "$API_KEY"
log_level = "info"

[channel]
presence = true
join_leave = true
history_size = 20
history_ttl = "60s"

[namespaces.chat]
presence = true
history_size = 20
history_ttl = "60s"
EOF

HUB_PID=""
stop_hub() {
  if [[ -n $HUB_PID ]] && kill -0 "$HUB_PID" 2>/dev/null; then
    kill -TERM "$HUB_PID" 2>/dev/null || true
    wait "$HUB_PID" 2>/dev/null || true
  fi
  HUB_PID=""
}
trap stop_hub EXIT

# The log exists before the hub starts: the background job opens it only later.
: >"$OUT/hub.log"
NO_COLOR=1 "$HUB_BIN" --config "$OUT/hub.toml" >>"$OUT/hub.log" 2>&1 &
HUB_PID=$!
addr=""
for ((i = 0; i < 200; i++)); do
  addr="$(sed -n 's/.*listening on http:\/\/\([0-9.]*:[0-9]*\).*/\1/p' "$OUT/hub.log" | head -n 1)"
  [[ -n $addr ]] && break
  kill -0 "$HUB_PID" 2>/dev/null || { echo "the hub exited before listening; log:" >&2; cat "$OUT/hub.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $addr ]] || { echo "the hub did not listen within 20 s; log: $OUT/hub.log" >&2; exit 1; }
echo "hub listening on http://$addr (log: $OUT/hub.log)"

curl -sS --fail --max-time 10 "http://$addr/api/openapi.json" -o "$OUT/openapi.json"
echo "openapi-spec-validator $OUT/openapi.json"
"$bin/openapi-spec-validator" "$OUT/openapi.json"

echo "schemathesis run: every operation, $MAX_EXAMPLES examples, seed $SEED, checks $CHECKS"
# A hung hub fails each request after --request-timeout; `timeout` bounds the whole run.
# From $OUT: schemathesis keeps a cache (.schemathesis/) in its working directory.
# One worker: the operations share the hub's channels, and with two workers one's
# publish or history_remove could change what the other's replay of a failing case
# sees (hypothesis then reports a "flaky" failure instead of the failure itself).
(cd "$OUT" && timeout 600 "$bin/schemathesis" --no-color run "$OUT/openapi.json" \
  --url "http://$addr" \
  --header "X-API-Key: $API_KEY" \
  --checks "$CHECKS" \
  --phases examples,coverage,fuzzing \
  --mode all \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --generation-database none \
  --workers 1 \
  --request-timeout 10 \
  --continue-on-failure \
  --report junit --report-dir "$OUT")

kill -0 "$HUB_PID" 2>/dev/null || { echo "the hub died during the run; log: $OUT/hub.log" >&2; exit 1; }
if grep -n -i -E 'panicked|internal server error' "$OUT/hub.log" >&2; then
  echo "the hub logged the lines above during the run; log: $OUT/hub.log" >&2
  exit 1
fi
stop_hub
echo "OpenAPI document valid; schemathesis found no failure"

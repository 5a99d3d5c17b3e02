# Shell helpers shared by the test runners (scripts/test.sh, clients/test.sh,
# hub/tests/cluster/run.sh). Source it; it defines functions only. Each
# function returns non-zero on failure and says why on stderr.

# Runs a command as root: directly, or through sudo.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    echo "need root to run: $* (no sudo found)" >&2
    return 1
  fi
}

# Installs Debian packages with apt-get.
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-get not found: install $* with the OS package manager" >&2
    return 1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# RabbitMQ on 127.0.0.1:5672 with the consistent-hash exchange: installed when
# missing, started when stopped (also a node whose application was left
# stopped by `rabbitmqctl stop_app`), the plugin enabled.
ensure_rabbitmq() {
  export PATH="$PATH:/usr/sbin"
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "RabbitMQ is not installed: apt-get install rabbitmq-server"
    apt_install rabbitmq-server || return 1
  fi
  if ! as_root rabbitmqctl -q status >/dev/null 2>&1; then
    echo "RabbitMQ is not running: rabbitmq-server -detached"
    as_root rabbitmq-server -detached || { echo "rabbitmq-server -detached failed" >&2; return 1; }
    # -detached returns before the Erlang node exists, and await_startup fails at
    # once on a node it cannot reach: wait for the node to answer first.
    local n
    for ((n = 0; n < 120; n++)); do
      as_root rabbitmqctl -q ping >/dev/null 2>&1 && break
      sleep 1
    done
    as_root rabbitmqctl -q ping >/dev/null 2>&1 ||
      { echo "RabbitMQ's node did not come up within 120 s of rabbitmq-server -detached" >&2; return 1; }
  fi
  as_root rabbitmqctl -q await_startup --timeout 120 ||
    { echo "RabbitMQ did not start within 120 s (rabbitmqctl await_startup)" >&2; return 1; }
  if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    echo "RabbitMQ's application is stopped: rabbitmqctl start_app"
    as_root rabbitmqctl -q start_app || { echo "rabbitmqctl start_app failed" >&2; return 1; }
    as_root rabbitmqctl -q await_startup --timeout 120 || { echo "RabbitMQ did not start" >&2; return 1; }
  fi
  local k
  for ((k = 0; k < 60; k++)); do
    (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break
    sleep 1
  done
  (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null ||
    { echo "RabbitMQ runs but nothing listens on 127.0.0.1:5672" >&2; return 1; }
  if ! as_root rabbitmq-plugins list -e -m 2>/dev/null | grep -qx rabbitmq_consistent_hash_exchange; then
    echo "enabling rabbitmq_consistent_hash_exchange"
    as_root rabbitmq-plugins enable rabbitmq_consistent_hash_exchange >/dev/null ||
      { echo "rabbitmq-plugins enable rabbitmq_consistent_hash_exchange failed" >&2; return 1; }
  fi
  echo "RabbitMQ is up on 127.0.0.1:5672 with rabbitmq_consistent_hash_exchange"
}

# Debian's Chromium at $CHROMIUM_BIN (default /usr/bin/chromium): installed with
# apt-get when missing, never a downloaded browser build. Exports CHROMIUM_BIN.
ensure_chromium() {
  export CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
  if [[ ! -x $CHROMIUM_BIN ]]; then
    echo "installing chromium with apt-get (never a downloaded browser build)"
    apt_install chromium || return 1
  fi
  [[ -x $CHROMIUM_BIN ]] || { echo "$CHROMIUM_BIN still missing after the install" >&2; return 1; }
  echo "Chromium: $CHROMIUM_BIN ($("$CHROMIUM_BIN" --version 2>/dev/null || echo 'version unknown'))"
}

# Python command-line tools from PyPI in a virtual environment of their own:
#   ensure_python_tools NAME PACKAGE==VERSION...
# creates (or reuses) ${CARGO_TARGET_DIR:-<repo>/target}/python-tools/NAME, installs the
# pinned packages when the list changed since the last install, and prints the venv's
# bin directory on stdout (the log goes to stderr). Needs python3 with its venv module
# (Debian: python3-venv, installed with apt-get when missing).
ensure_python_tools() {
  local name="$1"
  shift
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  local venv="${CARGO_TARGET_DIR:-$root/target}/python-tools/$name"
  local want="$*"
  if [[ -f $venv/.installed && "$(cat "$venv/.installed")" == "$want" ]]; then
    echo "$venv/bin"
    return 0
  fi
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    echo "python3's venv module is missing: apt-get install python3-venv" >&2
    apt_install python3-venv >&2 || return 1
  fi
  rm -rf "$venv"
  python3 -m venv "$venv" >&2 || { echo "python3 -m venv $venv failed" >&2; return 1; }
  "$venv/bin/pip" install -q --disable-pip-version-check "$@" >&2 ||
    { echo "pip install $* failed (PyPI reachable?)" >&2; return 1; }
  echo "$want" >"$venv/.installed"
  echo "$venv/bin"
}

#!/usr/bin/env bash
# Builds the web assets compiled into the hub binary that are not committed: the API
# documentation page (GET /api/docs) in clients/api-docs/dist/, made of our own
# clients/api-docs/src/ and the Swagger UI files of the swagger-ui-dist npm package
# (pinned by clients/api-docs/package-lock.json; never copied into the repository).
# The demo's build (clients/demo/dist) is committed and not rebuilt here (clients/test.sh).
#
#   scripts/build-assets.sh      (from any directory; hub/build.rs runs it when npm is found)
#
# Cheap when nothing changed: npm ci runs only when node_modules is missing or was installed
# from another lock file, and dist/ is rewritten only when its inputs changed (a stamp of
# package.json, package-lock.json, src/ and this script). Needs Node.js with npm.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCS="$ROOT/clients/api-docs"
DIST="$DOCS/dist"
SWAGGER="$DOCS/node_modules/swagger-ui-dist"
# What dist/ holds: ours, then the package's (its license and notice travel with its code).
OURS=(index.html init.js)
THEIRS=(swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE)
# Under the names they are served as (/api/docs/<name>): the license texts as .txt.
SERVED=(swagger-ui-bundle.js swagger-ui.css swagger-ui-LICENSE.txt swagger-ui-NOTICE.txt)

command -v npm >/dev/null || { echo "npm not found: install Node.js with npm to build the API docs page" >&2; exit 1; }

# sha256 of the given files, in order.
digest() {
  node -e '
    const fs = require("fs"), crypto = require("crypto");
    const h = crypto.createHash("sha256");
    for (const f of process.argv.slice(1)) { h.update(f); h.update(fs.readFileSync(f)); }
    console.log(h.digest("hex"));
  ' "$@"
}

# npm ci when node_modules is missing or was installed from another lock file. Install
# scripts stay off: swagger-ui-dist needs none (its dependency's is a telemetry ping).
installed="$DOCS/node_modules/.hub-installed-lock"
want_installed="$(cd "$DOCS" && digest package.json package-lock.json)"
if [[ ! -f $installed || "$(cat "$installed")" != "$want_installed" ]]; then
  echo "npm ci in $DOCS"
  (cd "$DOCS" && npm ci --ignore-scripts --no-audit --no-fund)
  echo "$want_installed" >"$installed"
fi

built="$DOCS/node_modules/.hub-built-dist"
want_built="$(cd "$DOCS" && digest package.json package-lock.json "${OURS[@]/#/src/}" "$ROOT/scripts/build-assets.sh")"
complete=1
for file in "${OURS[@]}" "${SERVED[@]}"; do
  [[ -f $DIST/$file ]] || complete=0
done
if [[ $complete -eq 1 && -f $built && "$(cat "$built")" == "$want_built" ]]; then
  echo "$DIST is up to date"
  exit 0
fi
rm -rf "$DIST"
mkdir -p "$DIST"
for file in "${OURS[@]}"; do
  cp "$DOCS/src/$file" "$DIST/$file"
done
for i in "${!THEIRS[@]}"; do
  file="${THEIRS[$i]}"
  [[ -f $SWAGGER/$file ]] || { echo "$SWAGGER/$file missing: rm -rf $DOCS/node_modules and run again" >&2; exit 1; }
  cp "$SWAGGER/$file" "$DIST/${SERVED[$i]}"
done
echo "$want_built" >"$built"
echo "built $DIST (swagger-ui-dist $(node -p "require('$SWAGGER/package.json').version"))"

#!/usr/bin/env bash
# The page's third-party files, copied from node_modules (package-lock.json) into the package so
# the studio and /docs work offline. `--check`: fail if a committed copy differs instead.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=src/volcimage/web/static/vendor
files=(
  "@alpinejs/csp/dist/cdn.min.js alpine.min.js"
  "swagger-ui-dist/swagger-ui-bundle.js swagger-ui-bundle.js"
  "swagger-ui-dist/swagger-ui.css swagger-ui.css"
)
for pair in "${files[@]}"; do
  read -r source target <<<"$pair"
  if [ "${1:-}" = "--check" ]; then
    cmp "node_modules/$source" "$dest/$target" \
      || { echo "vendor/$target differs from package-lock.json: run 'make css' and commit" >&2; exit 1; }
  else
    cp "node_modules/$source" "$dest/$target"
  fi
done

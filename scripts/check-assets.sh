#!/usr/bin/env bash
# The built CSS and the vendored files (scripts/vendor.sh) are committed; fail if they differ from a fresh build.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund --loglevel=error
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx tailwindcss -i src/volcimage/web/styles/app.css -o "$tmp/app.css" --minify 2>/dev/null
cmp "$tmp/app.css" src/volcimage/web/static/css/app.css \
  || { echo "web/static/css/app.css is stale: run 'make css' and commit" >&2; exit 1; }
bash scripts/vendor.sh --check
echo "web assets are fresh"

#!/usr/bin/env bash
# requirements.lock: the runtime dependencies and the s3 extra, pinned with hashes, for the Docker
# image (python 3.11, any platform). Pins already there are kept while pyproject allows them;
# `scripts/lock.sh --upgrade` (or `--upgrade-package NAME`) moves them. Needs PyPI.
# `--check`: fail if pyproject asks for other pins than the lock has (hashes aside: a wheel
# uploaded later to a pinned release is no reason to fail).
set -euo pipefail
cd "$(dirname "$0")/.."
lock=requirements.lock out=requirements.lock
if [[ ${1:-} == --check ]]; then
  shift
  out=$(mktemp)
  trap 'rm -f "$out"' EXIT
  cp "$lock" "$out"
fi
"${VENV:-.venv}/bin/uv" pip compile --quiet pyproject.toml --extra s3 \
  --universal --python-version 3.11 --generate-hashes \
  --custom-compile-command "scripts/lock.sh" --output-file "$out" "$@"
if [[ $out != "$lock" ]]; then
  diff <(grep '^[^ #]' "$lock") <(grep '^[^ #]' "$out") >&2 \
    || { echo "$lock is stale: run 'make lock' and commit" >&2; exit 1; }
  echo "$lock matches pyproject.toml"
fi

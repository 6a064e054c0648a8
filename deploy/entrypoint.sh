#!/bin/sh
# Container entrypoint: `serve` listens on BACKEND_PORT behind nginx; other commands pass through.
set -eu
if [ "${1:-serve}" = "serve" ]; then
  shift || true
  exec volcimage serve --host 0.0.0.0 --port "${BACKEND_PORT:-8000}" "$@"
fi
exec volcimage "$@"

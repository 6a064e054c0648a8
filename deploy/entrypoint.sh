#!/bin/sh
# Container entrypoint: `serve` listens on BACKEND_PORT behind nginx; `prepare` (as root, the
# compose file's data-owner) makes the data folders the app's user's; other commands pass through.
set -eu
case "${1:-serve}" in
  serve)
    shift || true
    exec volcimage serve --host 0.0.0.0 --port "${BACKEND_PORT:-8000}" "$@"
    ;;
  prepare)
    # Docker creates a missing bind-mounted folder as root; a restored backup may be root's too.
    owner=10001:10001 # the Dockerfile's user
    for dir in "${DATA_DIR:-/app/data}" "${IMAGE_DIR:-/app/data/images}" \
      "${THUMBNAIL_DIR:-/app/data/thumbnails}" ${LOG_FILE:+"$(dirname "$LOG_FILE")"}; do
      mkdir -p "$dir"
      find "$dir" \( ! -user 10001 -o ! -group 10001 \) -exec chown "$owner" {} +
    done
    echo "data folders belong to $owner"
    exit 0
    ;;
esac
exec volcimage "$@"

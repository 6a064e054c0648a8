#!/usr/bin/env bash
# Base images for machines that reach no image registry (the test machines): stand-ins built
# from Debian bookworm packages and tagged with the names Dockerfile and docker-compose.yml use,
# so those files stay the ones users run. debootstrap (about a minute) gives the base; each
# stand-in adds its Debian packages (tests/docker/standins). Needs root, debootstrap and a
# running Docker engine; ROOTFS=DIR reuses a debootstrapped folder (development only).
set -euo pipefail
cd "$(dirname "$0")/.."
standins=tests/docker/standins
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The host's Debian mirror and suites (deb822 or one-line sources).
sources=/etc/apt/sources.list.d/debian.sources
mirror=$(awk '/^URIs:/ {print $2; exit}' "$sources" 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)

rootfs=${ROOTFS:-$work/rootfs}
if [ ! -x "$rootfs/usr/bin/apt-get" ]; then
  start=$(date +%s)
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  echo "debootstrap of bookworm in $(($(date +%s) - start)) s"
fi
# The stand-ins' apt reads the same sources as the host's (bookworm, updates, security).
rm -f "$rootfs/etc/apt/sources.list"
if [ -f "$sources" ]; then
  cp "$sources" "$rootfs/etc/apt/sources.list.d/debian.sources"
else
  grep -E '^deb .*debian' /etc/apt/sources.list >"$rootfs/etc/apt/sources.list"
fi
tar -C "$rootfs" --exclude=./var/cache/apt/archives/*.deb --exclude=./var/lib/apt/lists/* \
  --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -c . \
  | docker import -c 'CMD ["bash"]' - volcimage-standin/debian:bookworm >/dev/null

# pip inside a build reaches the index only through the host's TLS interception: its CA bundle.
cert=$(pip config list 2>/dev/null | sed -n "s/^global\.cert='\(.*\)'$/\1/p" | head -1)
cp "${cert:-/etc/ssl/certs/ca-certificates.crt}" "$standins/host-ca.crt"
trap 'rm -rf "$work" "$standins/host-ca.crt"' EXIT

# The names the deployment files use, read from them so the two cannot drift apart.
python_image=$(awk '/^FROM / {print $2; exit}' Dockerfile)
nginx_image=$(awk '$1 == "image:" && $2 ~ /^nginx:/ {print $2; exit}' docker-compose.yml)
postgres_image=$(awk '$1 == "image:" && $2 ~ /^postgres:/ {print $2; exit}' docker-compose.yml)
build() {
  local start
  start=$(date +%s)
  docker build --network host -q -f "$standins/$1.Dockerfile" -t "$2" "$standins" >"$work/$1.log" 2>&1 \
    || { cat "$work/$1.log" >&2; return 1; }
  echo "stand-in $2 built from $standins/$1.Dockerfile in $(($(date +%s) - start)) s"
}
# In parallel: most of each build is waiting for the mirror.
build python "$python_image" & p1=$!
build nginx "$nginx_image" & p2=$!
build postgres "$postgres_image" & p3=$!
wait $p1 && wait $p2 && wait $p3

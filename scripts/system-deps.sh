#!/usr/bin/env bash
# System packages the test suite needs: Chromium (browser tests), a CJK font, nginx (the
# proxy config is tested with the real binary) and npm (the web assets' freshness check).
# Installs them when missing and we are root (CI, containers); otherwise says what to run.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v npm >/dev/null || missing+=(npm)
fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk" || missing+=(fonts-wqy-microhei)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} ..."
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

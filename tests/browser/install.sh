#!/usr/bin/env bash
# Installs the pinned npm dependencies of the browser suite (npm ci) when node_modules
# is missing or older than package-lock.json. Chromium comes from Debian (apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.package-lock.json
if [[ ! -d node_modules || ! -f "$stamp" || package-lock.json -nt "$stamp" ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
if [[ ! -x "${CHROMIUM_BIN:-/usr/bin/chromium}" ]]; then
  echo "install.sh: ${CHROMIUM_BIN:-/usr/bin/chromium} is missing; install it with: apt-get install -y chromium" >&2
  exit 1
fi

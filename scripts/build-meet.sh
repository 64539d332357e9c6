#!/usr/bin/env bash
# Builds moim meet, the meeting web app (web/meet, TypeScript + livekit-client,
# bundled by Vite) into web/meet/dist, which `moim serve` serves at /.
# Installs Node.js and npm (Debian packages, needs root) when they are
# missing, and the app's npm packages at their locked versions. Does nothing
# when the build is newer than every source file.
set -euo pipefail
cd "$(dirname "$0")/../web/meet"

if ! command -v npm >/dev/null 2>&1; then
  echo "build-meet: installing nodejs and npm (Debian packages)"
  if [[ $(id -u) -ne 0 ]]; then
    echo "build-meet: npm is missing and this is not root: install Node.js 20 or newer and npm, then run this again" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [[ ! -d node_modules || ! node_modules/.package-lock.json -nt package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
newest_source=$(find index.html vite.config.ts tsconfig.json package-lock.json src -type f -newer dist/index.html 2>/dev/null | head -1 || true)
if [[ -f dist/index.html && -z $newest_source ]]; then
  echo "build-meet: web/meet/dist is up to date"
  exit 0
fi
npm run --silent build
echo "build-meet: built web/meet/dist"

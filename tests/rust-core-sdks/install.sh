#!/usr/bin/env bash
# Installs the pinned SDKs of this suite, idempotently: a Python venv in .venv
# (PyPI livekit, livekit-api, numpy, pytest from requirements.txt) and
# node/node_modules (npm @livekit/rtc-node, livekit-server-sdk from
# node/package-lock.json). Each is rebuilt only when its pin file changed.
# Needs python3 with venv (Debian: python3-venv) and npm; scripts/install-deps.sh
# installs those.
set -euo pipefail
cd "$(dirname "$0")"

if ! cmp -s requirements.txt .venv/requirements.txt 2>/dev/null; then
  echo "rust-core-sdks: creating .venv from requirements.txt"
  rm -rf .venv
  if ! python3 -m venv .venv; then
    echo "rust-core-sdks: python3 -m venv failed; on Debian install python3-venv (apt-get install -y python3-venv)" >&2
    exit 1
  fi
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/requirements.txt
fi

stamp=node/node_modules/.package-lock.json
if [[ ! -f "$stamp" || node/package-lock.json -nt "$stamp" ]]; then
  (cd node && npm ci --no-audit --no-fund --loglevel=error)
fi

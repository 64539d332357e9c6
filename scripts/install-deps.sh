#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: Chromium (browser
# tests), coturn's client tools (TURN tests), iproute2 and nftables (network
# namespace tests), the browser suite's npm packages, the Rust-core SDK
# suite's venv and npm packages, OpenSSL's headers (moim's DTLS) and GStreamer
# with webrtcbin (tests/gstreamer), PostgreSQL (the app's store tests),
# pebble (ACME).
# Idempotent: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The meet app's screenshots show its reaction buttons; Chromium needs a colour emoji font.
dpkg-query -W -f='${Status}' fonts-noto-color-emoji 2>/dev/null | grep -q 'install ok installed' || need+=(fonts-noto-color-emoji)
command -v turnutils_uclient >/dev/null 2>&1 || need+=(coturn)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
# The Rust-core SDK suite's venv: Debian's python3 needs python3-venv for ensurepip.
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
# moim-sfu builds str0m-openssl against the system OpenSSL.
dpkg-query -W -f='${Status}' libssl-dev 2>/dev/null | grep -q 'install ok installed' || need+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# The app's store tests run against a real PostgreSQL server (scripts/postgres.sh).
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
# ACME against Let's Encrypt's test CA (pebble, with pebble-challtestsrv as its DNS).
command -v pebble >/dev/null 2>&1 || need+=(pebble)
# The reverse proxies moim ships configs for (tests/deploy), and openssl for their certificates.
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The packages' checks: podman builds and runs the image on a Debian base made
# with debootstrap, podman-compose reads compose.yaml, systemd-analyze the unit.
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v podman-compose >/dev/null 2>&1 || need+=(podman-compose)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The Helm chart's render check (tests/deploy/chart-render): Go with Sprig and YAML.
command -v go >/dev/null 2>&1 || need+=(golang-go)
[[ -d /usr/share/gocode/src/github.com/Masterminds/sprig ]] || need+=(golang-github-masterminds-sprig-dev)
[[ -d /usr/share/gocode/src/gopkg.in/yaml.v3 ]] || need+=(golang-gopkg-yaml.v3-dev)
if ((${#need[@]})); then
  echo "install-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The coturn, nginx and caddy packages start their servers on some images; the tests
# run their own and need the ports free.
if command -v systemctl >/dev/null 2>&1; then systemctl stop coturn nginx caddy >/dev/null 2>&1 || true; fi
pkill -x turnserver >/dev/null 2>&1 || true

tests/browser/install.sh
# The Rust-core SDK suite (PyPI livekit in a venv, npm @livekit/rtc-node).
tests/rust-core-sdks/install.sh
# The server SDK suite (livekit-server-sdk).
(cd tests/sdk && { [[ -d node_modules && node_modules/.package-lock.json -nt package-lock.json ]] || npm ci --no-audit --no-fund --loglevel=error; })
# The login tests' OpenID Connect provider (npm oidc-provider).
(cd tests/oidc && { [[ -d node_modules && node_modules/.package-lock.json -nt package-lock.json ]] || npm ci --no-audit --no-fund --loglevel=error; })
# GStreamer webrtcbin suite: Debian packages and its virtual environment.
tests/gstreamer/install.sh

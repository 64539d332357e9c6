#!/usr/bin/env bash
# Runs every test moim has: formatting and lints, Rust unit and integration
# tests (including TURN against coturn's client), the browser suite
# (livekit-client in Chromium against a real moim server), LiveKit's
# Rust-core SDKs (Python, Node) and GStreamer's webrtcbin against moim.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

# A clean checkout builds once: incremental caches would only take disk
# (3 GB of target/ here) on a machine whose disk may be small.
if [[ -n "${CI:-}" ]]; then
  export CARGO_INCREMENTAL=0
fi

echo "== moim meet: TypeScript check and Vite build (web/meet)"
scripts/build-meet.sh
echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test (the app's store tests on SQLite and on a PostgreSQL server started here; logins against npm oidc-provider)"
pg_dir=$(mktemp -d /tmp/moim-postgres.XXXXXX)
trap 'scripts/postgres.sh stop "$pg_dir"' EXIT
MOIM_TEST_POSTGRES_URL=$(scripts/postgres.sh start "$pg_dir")
export MOIM_TEST_POSTGRES_URL
# The login tests run against npm oidc-provider, installed above; here its
# absence is a failure, not a skip.
export MOIM_TEST_OIDC=1
cargo test --workspace 2>&1 | tee target/cargo-test.log
scripts/postgres.sh stop "$pg_dir"
trap - EXIT
echo "== browser tests (livekit-client in Chromium; moim meet end to end)"
cargo build -p moim
(cd tests/browser && node --test --test-concurrency=1 run.mjs refusals.mjs shutdown.mjs long-meeting.mjs dynacast.mjs svc.mjs meet.mjs meet-failures.mjs meet-keyboard.mjs meet-auth-apart.mjs)
echo "== deployment tests (deploy/: nginx and Caddy in front of moim, the OCI image under podman, Compose, systemd; with Chromium)"
(cd tests/deploy && node --test --test-concurrency=1 proxies.test.mjs packages.test.mjs)
echo "== Rust-core SDK tests (PyPI livekit and npm @livekit/rtc-node against moim, both signalling paths)"
tests/rust-core-sdks/run.sh
echo "== server SDK tests (livekit-server-sdk against moim: RoomService JSON path, webhooks)"
(cd tests/sdk && node --experimental-websocket --test --test-concurrency=1)
echo "== GStreamer webrtcbin against moim (RSA DTLS certificate, no codec preference)"
tests/gstreamer/run.sh
echo "== network-namespace tests (UDP blocked, only port 443 open, server behind NAT; root)" && tests/netns/run.sh

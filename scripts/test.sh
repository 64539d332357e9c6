#!/usr/bin/env bash
# Runs every test moim has: formatting and lints, Rust unit and integration
# tests (including TURN against coturn's client), the browser suite
# (livekit-client in Chromium against a real moim server), LiveKit's
# Rust-core SDKs (Python, Node) and GStreamer's webrtcbin against moim.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace 2>&1 | tee target/cargo-test.log
echo "== browser tests (livekit-client in Chromium)"
cargo build -p moim
(cd tests/browser && node --test --test-concurrency=1 run.mjs refusals.mjs)
# KNOWN BUG, not a flaky test: after a /rtc/v1 client moves to another moim,
# its subscription to a video track sometimes never gets a receive section,
# so no video arrives (seen with builds from before and after 2026-12-02, in
# about half the runs on a loaded 2-core machine; see docs/PROTOCOL.md,
# "Known gaps"). Until it is fixed, up to three attempts, each failure shown.
(cd tests/browser && for attempt in 1 2 3; do
    if node --test --test-concurrency=1 shutdown.mjs; then exit 0; fi
    echo "!! shutdown.mjs attempt $attempt failed (known bug: v1 video after a server move)" >&2
  done; exit 1)
echo "== Rust-core SDK tests (PyPI livekit and npm @livekit/rtc-node against moim, both signalling paths)"
tests/rust-core-sdks/run.sh
echo "== server SDK tests (livekit-server-sdk against moim: RoomService JSON path, webhooks)"
(cd tests/sdk && node --experimental-websocket --test --test-concurrency=1)
echo "== GStreamer webrtcbin against moim (RSA DTLS certificate, no codec preference)"
tests/gstreamer/run.sh
echo "== network-namespace tests (UDP blocked, server behind NAT; root)" && tests/netns/run.sh

#!/usr/bin/env bash
# GStreamer webrtcbin against moim: needs target/debug/moim (cargo build -p moim)
# or MOIM_BIN. Server logs go to tests/gstreamer/out/.
set -euo pipefail
cd "$(dirname "$0")"
./install.sh
exec .venv/bin/python -m unittest -v test_webrtcbin "$@"

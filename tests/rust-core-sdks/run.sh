#!/usr/bin/env bash
# Runs the suite: the Python SDK (pytest) and the Node SDK (node --test), each on
# both signalling paths, against target/debug/moim (or $MOIM_BIN). Run
# ./install.sh first. Exits non-zero if either half failed; both always run.
set -uo pipefail
cd "$(dirname "$0")"
status=0
echo "== Python SDK (PyPI livekit $(.venv/bin/python -c 'import livekit.rtc as r; print(r.__version__)'))"
.venv/bin/python -m pytest -v -s -p no:cacheprovider python || status=1
echo "== Node SDK (npm @livekit/rtc-node $(node -p 'require("./node/node_modules/@livekit/rtc-node/package.json").version'))"
(cd node && node --test --test-concurrency=1 rtc_node.test.mjs) || status=1
exit $status

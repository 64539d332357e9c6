#!/usr/bin/env bash
# Network-namespace suite (issue 4): UDP blocked, server behind NAT. Needs root, iproute2,
# nftables, Chromium and the browser suite's npm packages (scripts/install-deps.sh).
# Builds the moim binary, then runs the tests with Node's test runner (closing summary:
# "# tests / # pass / # fail"). Every namespace is named moimnt<pid>-…; the trap removes any
# left behind, killing the processes inside them first.
#   MOIM_BIN               moim binary (default target/debug/moim, relative to the repository)
#   MOIM_NETNS_NO_BUILD=1  do not run cargo build
set -euo pipefail
cd "$(dirname "$0")"
export MOIM_NETNS_PREFIX="moimnt$$-"

runner=
# Kills a process and its descendants (by pid; only what this script started).
kill_tree() {
  local sig=$1 pid=$2 child
  for child in $(pgrep -P "$pid" 2>/dev/null); do kill_tree "$sig" "$child"; done
  kill "-$sig" "$pid" 2>/dev/null || true
}
cleanup() {
  local ns pid
  if [[ -n "$runner" ]] && kill -0 "$runner" 2>/dev/null; then
    kill_tree TERM "$runner" # the test files remove their namespaces on SIGTERM
    sleep 2
    kill_tree KILL "$runner"
  fi
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${MOIM_NETNS_PREFIX}" || true); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $(id -u) -ne 0 ]]; then echo "tests/netns: must run as root (ip netns, nftables)" >&2; exit 1; fi
for tool in ip nft node; do
  command -v "$tool" >/dev/null || { echo "tests/netns: $tool is missing; run scripts/install-deps.sh" >&2; exit 1; }
done
if [[ "${MOIM_NETNS_NO_BUILD:-}" != 1 ]]; then
  (cd ../.. && cargo build -q -p moim)
fi
../browser/install.sh
mkdir -p out
# The whole suite is bounded; each test also has its own timeout. The runner runs in the
# background so that a signal to this script triggers the cleanup at once.
timeout -k 10 900 node --test --test-concurrency=1 udp-blocked.test.mjs single-port.test.mjs nat.test.mjs quality.test.mjs bwe.test.mjs &
runner=$!
rc=0
wait "$runner" || rc=$?
runner=
exit "$rc"

#!/usr/bin/env bash
# moim benchmark harness: builds moim and moim-bench in release mode, raises the fd limit, and
# runs every scenario against a fresh `moim serve --dev` on loopback (7880/7881/7882 must be
# free). Results go to bench/results/latest.md and .json; docs/BENCHMARKS.md quotes them.
#
#   bench/run.sh                         # all scenarios, 20 s windows, 10,000 signal-only joins
#   bench/run.sh --duration 10 --scenarios fanout-10 --signal 0
#   SERVER_CPUS=0 TESTER_CPUS=1 bench/run.sh   # pinning (default on machines with >= 2 cores)
#
# Extra arguments go to moim-bench (see crates/moim-loadtest/src/bin/moim-bench.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release -p moim -p moim-loadtest --bin moim --bin moim-bench >&2
bin="$CARGO_TARGET_DIR/release"

# 10,000 signal-only participants need ~10,000 fds in the server and as many in the tester.
want=32768
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then want=$hard; fi
ulimit -n "$want" || true
echo "fd limit: $(ulimit -n)" >&2

pin=()
cpus=$(nproc)
server_cpus="${SERVER_CPUS:-}"
tester_cpus="${TESTER_CPUS:-}"
if [ -z "$server_cpus" ] && [ "$cpus" -ge 2 ]; then
  server_cpus=0
  tester_cpus="1-$((cpus - 1))"
fi
args=(--moim "$bin/moim")
if [ -n "$server_cpus" ]; then args+=(--server-cpus "$server_cpus"); fi
if [ -n "$tester_cpus" ]; then pin=(taskset -c "$tester_cpus"); fi
exec "${pin[@]}" "$bin/moim-bench" "${args[@]}" "$@"

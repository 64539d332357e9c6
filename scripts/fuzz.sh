#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for RUNS inputs each (default 10,000,000),
# one target at a time, and prints a summary table. `scripts/fuzz.sh 2000`
# is a quick smoke test. See docs/SECURITY.md, "Fuzzing".
#
# Only the stable toolchain is needed: cargo fuzz asks for nightly-only
# flags (-Z sanitizer, -Z build-std is not used), which RUSTC_BOOTSTRAP=1
# lets stable rustc accept.
#
# Environment:
#   FUZZ_TARGETS    targets to run (default: every target in fuzz/Cargo.toml)
#   FUZZ_SANITIZER  address (default) or none
#   CARGO_BUILD_JOBS  passed to cargo as usual (1 leaves room for other builds)
#
# Corpora go to fuzz/corpus/<target>, crashes to fuzz/artifacts/<target>,
# logs to fuzz/logs/<target>.log; none of them is committed.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${1:-10000000}"
SANITIZER="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

cd fuzz
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"

# The largest input worth trying, per target, and its dictionary.
max_len() {
    case "$1" in
        rtp_payload) echo 2048 ;;
        token) echo 8192 ;;
        turn_stream | ice_tcp) echo 131072 ;;
        *) echo 65535 ;;
    esac
}
dict() {
    case "$1" in
        sdp_munge) echo dict/sdp.dict ;;
        signal_decode | twirp_body | token) echo dict/json.dict ;;
        join_request) echo dict/query.dict ;;
    esac
}

echo "== building the fuzz targets (sanitizer: $SANITIZER)"
cargo fuzz build -s "$SANITIZER"

mkdir -p logs
summary=()
status=0
for t in $targets; do
    echo "== $t: $RUNS runs"
    mkdir -p "corpus/$t"
    args=(-runs="$RUNS" -timeout=1 -rss_limit_mb=2048 -max_len="$(max_len "$t")" -print_final_stats=1)
    d="$(dict "$t")"
    [ -n "$d" ] && args+=(-dict="$d")
    start=$(date +%s)
    if cargo fuzz run -s "$SANITIZER" "$t" "corpus/$t" -- "${args[@]}" >"logs/$t.log" 2>&1; then
        result=ok
    else
        result="FAILED (see fuzz/logs/$t.log and fuzz/artifacts/$t)"
        status=1
    fi
    secs=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
    # libFuzzer's own average is in whole seconds; this is runs / wall time.
    rate=$(awk -v n="${execs:-0}" -v s="$secs" 'BEGIN { printf "%d", (s > 0 ? n / s : n) }')
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "logs/$t.log" | tail -1)
    corpus=$(find "corpus/$t" -type f | wc -l)
    tail -3 "logs/$t.log"
    summary+=("$(printf '%-14s %10s %7ss %8s/s %6s MB %7s  %s' "$t" "${execs:-?}" "$secs" "${rate:-?}" "${rss:-?}" "$corpus" "$result")")
done

echo
printf '%-14s %10s %8s %10s %9s %7s  %s\n' target runs time exec/s peak_rss corpus result
printf '%s\n' "${summary[@]}"
exit "$status"

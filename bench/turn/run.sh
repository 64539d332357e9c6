#!/usr/bin/env bash
# TURN relay benchmark: moim-turn vs coturn's turnserver, same load generator
# (coturn's turnutils_uclient, client-to-client mode through the relay),
# loopback only. Prints one line per run and a median table.
#
# Usage: bench/turn/run.sh            (defaults below; each run < 60 s)
#   REPS=3 CLIENTS=100 MSGS=3000 LEN=120 INTERVAL=0 bench/turn/run.sh
#   SERVERS="moim coturn" to pick servers; EXTRA="-s" for Send indications.
# Needs: coturn (turnserver, turnutils_uclient), cargo, awk.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
CLIENTS=${CLIENTS:-100}      # uclient -m: sessions (each -y pair relays both ways)
MSGS=${MSGS:-3000}           # uclient -n: messages per session
LEN=${LEN:-120}              # uclient -l: payload bytes
INTERVAL=${INTERVAL:-0}      # uclient -z: per-session interval, ms
EXTRA=${EXTRA:-}             # extra uclient flags, e.g. -s
SERVERS=${SERVERS:-"moim coturn"}
SECRET=benchsecret
REALM=bench.test
MOIM_PORT=${MOIM_PORT:-3579}     # not 3478: a system coturn or a dev moim may hold it
COTURN_PORT=${COTURN_PORT:-3578}
OUT=${OUT:-/tmp/turnbench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-turnbench}
mkdir -p "$OUT"

command -v turnserver >/dev/null && command -v turnutils_uclient >/dev/null ||
  { echo "install coturn (apt-get install -y coturn)" >&2; exit 1; }

cargo build --release -q -p moim-turn --example turn_bench_server
MOIM_BIN=$CARGO_TARGET_DIR/release/examples/turn_bench_server
TCK=$(getconf CLK_TCK)

SRV_PID=
cleanup() { [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

start_server() { # $1 = moim|coturn; sets SRV_PID, PORT
  case $1 in
  moim)
    PORT=$MOIM_PORT
    "$MOIM_BIN" "$PORT" "$SECRET" "$REALM" >"$OUT/moim.log" 2>&1 &
    SRV_PID=$! ;;
  coturn)
    PORT=$COTURN_PORT
    # A system coturn (Debian auto-start) uses 3478; we use our own port and
    # leave it alone, but it would compete for CPU, so say so.
    pgrep -x turnserver >/dev/null && echo "note: another turnserver is running" >&2
    turnserver -n --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 \
      --listening-port "$PORT" --min-port 50000 --max-port 59999 \
      --use-auth-secret --static-auth-secret="$SECRET" --realm="$REALM" \
      --allow-loopback-peers --no-cli --no-tls --no-dtls \
      --no-stdout-log --log-file "$OUT/coturn.log" --simple-log \
      --pidfile "$OUT/coturn.pid" \
      >"$OUT/coturn.stdout" 2>&1 &
    SRV_PID=$! ;;
  esac
  sleep 1
  kill -0 "$SRV_PID" || { echo "$1 did not start" >&2; exit 1; }
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime

UC_ARGS=(-y -c -m "$CLIENTS" -n "$MSGS" -l "$LEN" -z "$INTERVAL" $EXTRA
         -W "$SECRET" -u bench -e 127.0.0.1)

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "uclient args: ${UC_ARGS[*]} -p PORT 127.0.0.1"
RESULTS=$OUT/results.tsv
: >"$RESULTS"
printf '%-7s %3s %9s %9s %8s %9s %6s %9s %10s %8s\n' server rep sent recv lost wall_s tx_s cpu_s us/pkt pkt/s
for srv in $SERVERS; do
  for rep in $(seq 1 "$REPS"); do
    start_server "$srv"
    c0=$(cpu_ticks "$SRV_PID"); t0=$(date +%s.%N)
    timeout 60 turnutils_uclient "${UC_ARGS[@]}" -p "$PORT" 127.0.0.1 \
      >"$OUT/uclient-$srv-$rep.log" 2>&1 || echo "uclient exit $? ($srv rep $rep)" >&2
    t1=$(date +%s.%N); c1=$(cpu_ticks "$SRV_PID")
    kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=
    log=$OUT/uclient-$srv-$rep.log
    tot=$(grep -E 'tot_send_msgs=[0-9]+, tot_recv_msgs=[0-9]+$' "$log" | tail -1)
    sent=$(sed -E 's/.*tot_send_msgs=([0-9]+).*/\1/' <<<"$tot")
    recv=$(sed -E 's/.*tot_recv_msgs=([0-9]+).*/\1/' <<<"$tot")
    lost=$(grep -oE 'Total lost packets [0-9]+' "$log" | awk '{print $4}')
    tx=$(grep -oE 'Total transmit time is [0-9]+' "$log" | awk '{print $5}')
    awk -v s="$srv" -v r="$rep" -v sent="${sent:-0}" -v recv="${recv:-0}" \
        -v lost="${lost:-NA}" -v w="$(echo "$t1 $t0" | awk '{print $1-$2}')" \
        -v tx="${tx:-NA}" -v c="$(( c1 - c0 ))" -v tck="$TCK" 'BEGIN {
      cpu = c / tck; us = recv ? cpu * 1e6 / recv : 0; pps = w ? recv / w : 0
      printf "%-7s %3d %9d %9d %8s %9.2f %6s %9.2f %10.2f %8.0f\n", s, r, sent, recv, lost, w, tx, cpu, us, pps
      printf "%s\t%d\t%d\t%d\t%s\t%f\t%f\t%f\t%f\t%s\n", s, r, sent, recv, lost, w, cpu, us, pps, tx >> "/dev/stderr"
    }' 2>>"$RESULTS"
  done
done

echo
echo "median of $REPS runs (us/pkt = server CPU per relayed packet; pkt/s = received / uclient wall time;"
echo " tx_s = uclient's own whole-second "Total transmit time", wall_s also covers allocation setup)"
printf '%-7s %9s %8s %9s %6s %9s %10s %8s\n' server recv lost wall_s tx_s cpu_s us/pkt pkt/s
for srv in $SERVERS; do
  med() { awk -F'\t' -v s="$srv" -v k="$1" '$1 == s {print $k}' "$RESULTS" | sort -g |
          awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
  printf '%-7s %9.0f %8s %9.2f %6s %9.2f %10.2f %8.0f\n' "$srv" "$(med 4)" "$(med 5)" \
    "$(med 6)" "$(med 10)" "$(med 7)" "$(med 8)" "$(med 9)"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

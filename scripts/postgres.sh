#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the store tests (Debian's
# postgresql package; scripts/install-deps.sh installs it).
#   scripts/postgres.sh start DIR   initdb in DIR, start on a free port, print
#                                   the database URL on stdout
#   scripts/postgres.sh stop DIR    stop it and remove DIR
# PostgreSQL refuses to run as root, so as root it runs as the `postgres`
# user the package creates. Trust authentication on 127.0.0.1 only: the
# server listens nowhere else and lives as long as the test run.
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?a directory}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x "$bin/postgres" ]] || { echo "postgres.sh: PostgreSQL is not installed; run scripts/install-deps.sh" >&2; exit 1; }
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$cmd" in
  start)
    mkdir -p "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
    as_pg "$bin/initdb" -D "$dir/data" -U moim --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-h 127.0.0.1 -p $port -k $dir" start >/dev/null ||
      { cat "$dir/server.log" >&2; exit 1; }
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U moim moim_test
    echo "postgres://moim@127.0.0.1:$port/moim_test"
    ;;
  stop)
    if [[ -d "$dir/data" ]]; then as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    ;;
  *) echo "postgres.sh: start or stop" >&2; exit 2 ;;
esac

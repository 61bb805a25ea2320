#!/usr/bin/env bash
# A private PostgreSQL primary and a streaming standby of it, for the read-replica
# tests (which pause, stop and start the standby) and the database-outage test (which
# stops and starts the primary): `initdb` a primary, then
# `pg_basebackup -R` a standby, each on a free port, under DIR.
#
#   scripts/pg-replica.sh start DIR   # prints "PRIMARY_PORT STANDBY_PORT"
#   scripts/pg-replica.sh stop DIR [primary|standby|all] [immediate|fast]
#     (immediate by default; with synchronous_commit off it loses the last commits,
#     so a test that starts the primary again and reads its data stops it `fast`)
#   scripts/pg-replica.sh restart-standby DIR
#   scripts/pg-replica.sh restart-primary DIR
#
# PostgreSQL refuses to run as root: as root the servers run as the `postgres` user.
set -euo pipefail

cmd="${1:?usage: pg-replica.sh start|stop|restart-standby|restart-primary DIR}"
dir="${2:?usage: pg-replica.sh $cmd DIR}"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
[ -x "$bin/initdb" ] || { echo "pg-replica: initdb not found under /usr/lib/postgresql" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

server_start() { # data port
  as_pg "$bin/pg_ctl" -D "$1" -o "-p $2 -k $dir -c listen_addresses=127.0.0.1" \
    -l "$1.log" -w -t 60 start >/dev/null
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
      chown postgres "$dir"
      chmod a+x "$(dirname "$dir")" # a private temporary directory: let postgres in
    fi
    p1="$(free_port)"; p2="$(free_port)"
    while [ "$p2" = "$p1" ]; do p2="$(free_port)"; done
    as_pg "$bin/initdb" -D "$dir/primary" -U postgres --auth=trust -E UTF8 >/dev/null
    cat >>"$dir/primary/postgresql.conf" <<EOF
wal_level = replica
max_wal_senders = 4
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    echo "host replication all 127.0.0.1/32 trust" >>"$dir/primary/pg_hba.conf"
    server_start "$dir/primary" "$p1"
    as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$p1" -U postgres -D "$dir/standby" -R -X stream >/dev/null
    echo "port = $p2" >>"$dir/standby/postgresql.auto.conf"
    server_start "$dir/standby" "$p2"
    echo "$p1 $p2" >"$dir/ports"
    echo "$p1 $p2"
    ;;
  stop)
    which="${3:-all}"
    mode="${4:-immediate}"
    for node in primary standby; do
      if [ "$which" = all ] || [ "$which" = "$node" ]; then
        [ -d "$dir/$node" ] && as_pg "$bin/pg_ctl" -D "$dir/$node" -m "$mode" stop >/dev/null 2>&1 || true
      fi
    done
    ;;
  restart-standby)
    read -r _ p2 <"$dir/ports"
    server_start "$dir/standby" "$p2"
    ;;
  restart-primary)
    read -r p1 _ <"$dir/ports"
    server_start "$dir/primary" "$p1"
    ;;
  *)
    echo "pg-replica: unknown command $cmd" >&2; exit 2 ;;
esac

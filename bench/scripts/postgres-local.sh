#!/bin/sh
# Starts a throwaway PostgreSQL server for joblog-bench on this machine and
# prints its address: the machine's own PostgreSQL binaries, a fresh cluster
# in DIR, loopback only, trust authentication, durable (fsync on,
# synchronous_commit on), 4 GB of shared buffers.
#
#   url=$(bench/scripts/postgres-local.sh /work/pg 55432)
#   cargo run --release -p joblog-bench --bin joblog-bench -- --postgres "$url"
#   bench/scripts/postgres-local.sh /work/pg 55432 stop
set -eu
dir=${1:?usage: postgres-local.sh DIR [PORT] [stop]}
port=${2:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/pg_ctl" ] || { echo "no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 1; }
# PostgreSQL refuses to run as root: run it as the postgres user then.
as() { if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else sh -c "$*"; fi; }
if [ "${3:-}" = stop ]; then
    as "'$bin/pg_ctl' -D '$dir/data' -m fast stop" >&2
    exit 0
fi
mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
if [ ! -f "$dir/data/PG_VERSION" ]; then
    as "'$bin/initdb' -D '$dir/data' -A trust -U postgres" >"$dir/initdb.log" 2>&1
fi
as "'$bin/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w start -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c shared_buffers=4GB -c max_wal_size=16GB -c checkpoint_timeout=30min -c maintenance_work_mem=1GB -c work_mem=64MB\"" >&2
echo "postgresql://postgres@127.0.0.1:$port/postgres"

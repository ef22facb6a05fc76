#!/usr/bin/env bash
# A private PostgreSQL server for the cluster tests (issue 14): Debian's postgresql package, a throwaway cluster in a
# mktemp -d folder, listening on 127.0.0.1 only on a free port, with an empty database torchtrials_cluster. The Orleans
# membership tables are not made here: workers and controllers create them themselves (ClusterSchema.EnsureAsync).
#
#   source .ci/postgres.sh; postgres_start; trap postgres_stop EXIT   # .ci/run: exports TORCHTRIALS_TEST_POSTGRES
#   bash .ci/postgres.sh                 # by hand: starts one, prints its connection string and how to stop it
#   bash .ci/postgres.sh stop DIR        # stops that one and removes DIR
set -euo pipefail

postgres_database=torchtrials_cluster
postgres_role=torchtrials
postgres_dir=
postgres_bin=

# Debian puts the server's programs under /usr/lib/postgresql/<major>/bin, off PATH; the newest major wins.
postgres_find_bin() {
  local dirs
  dirs=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -t/ -k4 -n | tail -1 || true)
  [ -n "$dirs" ] && [ -x "$dirs/initdb" ] && [ -x "$dirs/pg_ctl" ] && postgres_bin=$dirs
}

postgres_install() {
  postgres_find_bin && return 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql > /dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql > /dev/null; } \
    || { echo "ci: cannot install postgresql (apt-get install -y postgresql failed)" >&2; return 1; }
  postgres_find_bin || { echo "ci: postgresql installed but no initdb/pg_ctl under /usr/lib/postgresql/*/bin" >&2; return 1; }
}

# The server refuses to run as root: as root, run it as Debian's postgres user (the package creates it), else nobody.
postgres_as_server() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$postgres_user" -- "$@"
  else
    "$@"
  fi
}

# A port nothing listens on: bash's /dev/tcp connect is refused there. pg_ctl start is retried on another if it is taken meanwhile.
postgres_free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "ci: no free port found on 127.0.0.1" >&2
  return 1
}

postgres_start() {
  local began password port started=false
  began=$(date +%s%N)
  postgres_install
  postgres_user=$(id -un)
  if [ "$(id -u)" -eq 0 ]; then
    if id postgres > /dev/null 2>&1; then postgres_user=postgres; else postgres_user=nobody; fi
  fi
  # /tmp, not $TMPDIR: the server's user must be able to reach the folder.
  postgres_dir=$(mktemp -d /tmp/torchtrials-postgres.XXXXXX)
  password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  printf '%s\n' "$password" > "$postgres_dir/pwfile"
  mkdir "$postgres_dir/data"
  [ "$(id -u)" -eq 0 ] && chown -R "$postgres_user" "$postgres_dir"
  postgres_as_server "$postgres_bin/initdb" -D "$postgres_dir/data" -U "$postgres_role" --pwfile="$postgres_dir/pwfile" \
    --auth=scram-sha-256 --no-locale --encoding=UTF8 --no-sync > "$postgres_dir/initdb.log" 2>&1 \
    || { echo "ci: initdb failed:" >&2; cat "$postgres_dir/initdb.log" >&2; return 1; }
  rm -f "$postgres_dir/pwfile"
  for _ in 1 2 3; do
    port=$(postgres_free_port)
    # fsync off: a throwaway test server; its socket in its own folder, not /var/run/postgresql.
    if postgres_as_server "$postgres_bin/pg_ctl" start -w -t 60 -D "$postgres_dir/data" -l "$postgres_dir/server.log" \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$postgres_dir -c fsync=off" > /dev/null; then
      started=true
      break
    fi
  done
  $started || { echo "ci: PostgreSQL did not start:" >&2; tail -20 "$postgres_dir/server.log" >&2; return 1; }
  PGPASSWORD=$password "$postgres_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$postgres_role" -d postgres \
    -c "CREATE DATABASE $postgres_database" > /dev/null
  export TORCHTRIALS_TEST_POSTGRES="Host=127.0.0.1;Port=$port;Database=$postgres_database;Username=$postgres_role;Password=$password"
  echo "ci: PostgreSQL $("$postgres_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port as $postgres_user" \
       "in $postgres_dir, database $postgres_database ready in $(( ($(date +%s%N) - began) / 1000000 )) ms"
}

# Idempotent, for the EXIT trap and an explicit stop alike.
postgres_stop() {
  local dir=${1:-$postgres_dir}
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  postgres_find_bin || true
  if [ -z "${postgres_user:-}" ]; then postgres_user=$(stat -c %U "$dir"); fi
  if [ -f "$dir/data/postmaster.pid" ] && [ -n "$postgres_bin" ]; then
    postgres_as_server "$postgres_bin/pg_ctl" stop -m fast -w -D "$dir/data" > /dev/null || true
  fi
  rm -rf "$dir"
  [ "$dir" = "$postgres_dir" ] && postgres_dir=
  return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-start}" in
    start)
      trap '[ $? -eq 0 ] || postgres_stop' EXIT
      postgres_start
      echo "TORCHTRIALS_TEST_POSTGRES=\"$TORCHTRIALS_TEST_POSTGRES\""
      echo "stop it with: bash .ci/postgres.sh stop $postgres_dir"
      ;;
    stop)
      [ -n "${2:-}" ] || { echo "usage: bash .ci/postgres.sh stop DIR" >&2; exit 2; }
      postgres_stop "$2"
      ;;
    *)
      echo "usage: bash .ci/postgres.sh [start | stop DIR]" >&2
      exit 2
      ;;
  esac
fi

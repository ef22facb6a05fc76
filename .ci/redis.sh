#!/usr/bin/env bash
# A private Redis server for the cluster tests (issue 14, Redis clustering): Debian's redis-server package, listening on
# 127.0.0.1 only on a free port, nothing saved to disk, its pid and log in a mktemp -d folder.
#
#   source .ci/redis.sh; redis_start; trap redis_stop EXIT   # .ci/run: exports TORCHTRIALS_TEST_REDIS (HOST:PORT)
#   bash .ci/redis.sh                 # by hand: starts one, prints its address and how to stop it
#   bash .ci/redis.sh stop DIR        # stops that one and removes DIR
set -euo pipefail

redis_dir=

redis_install() {
  command -v redis-server > /dev/null && command -v redis-cli > /dev/null && return 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server > /dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server > /dev/null; } \
    || { echo "ci: cannot install redis-server (apt-get install -y redis-server failed)" >&2; return 1; }
}

redis_start() {
  local began port started=false
  began=$(date +%s%N)
  redis_install
  redis_dir=$(mktemp -d /tmp/torchtrials-redis.XXXXXX)
  for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null && continue
    if redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$redis_dir" --save '' --appendonly no \
        --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log" > /dev/null; then
      for _ in $(seq 1 50); do
        if redis-cli -h 127.0.0.1 -p "$port" ping 2> /dev/null | grep -q PONG; then started=true; break; fi
        sleep 0.1
      done
      $started && break
    fi
  done
  $started || { echo "ci: Redis did not start:" >&2; tail -20 "$redis_dir/redis.log" >&2 2> /dev/null; return 1; }
  echo "$port" > "$redis_dir/port"
  export TORCHTRIALS_TEST_REDIS="127.0.0.1:$port"
  echo "ci: Redis $(redis-server --version | awk '{print $3}' | cut -d= -f2) on 127.0.0.1:$port in $redis_dir," \
       "ready in $(( ($(date +%s%N) - began) / 1000000 )) ms"
}

# Idempotent, for the EXIT trap and an explicit stop alike.
redis_stop() {
  local dir=${1:-$redis_dir}
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  if [ -f "$dir/port" ]; then
    redis-cli -h 127.0.0.1 -p "$(cat "$dir/port")" shutdown nosave > /dev/null 2>&1 || true
  fi
  if [ -f "$dir/redis.pid" ]; then kill "$(cat "$dir/redis.pid")" 2> /dev/null || true; fi
  rm -rf "$dir"
  [ "$dir" = "$redis_dir" ] && redis_dir=
  return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-start}" in
    start)
      trap '[ $? -eq 0 ] || redis_stop' EXIT
      redis_start
      echo "TORCHTRIALS_TEST_REDIS=$TORCHTRIALS_TEST_REDIS"
      echo "stop it with: bash .ci/redis.sh stop $redis_dir"
      ;;
    stop)
      [ -n "${2:-}" ] || { echo "usage: bash .ci/redis.sh stop DIR" >&2; exit 2; }
      redis_stop "$2"
      ;;
    *)
      echo "usage: bash .ci/redis.sh [start | stop DIR]" >&2
      exit 2
      ;;
  esac
fi

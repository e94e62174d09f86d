#!/usr/bin/env bash
# Scripting load: EVAL under redis-benchmark, Shardis beside redis-server 7.0 in the
# same run, for ROUNDS rounds alternating which server goes first.
#
# Two scripts, each called with random keys (`__rand_int__`), 50 clients, unpipelined:
#   one   `return redis.call('incr', KEYS[1])`: one key, one shard.
#   tag   `redis.call('incr', KEYS[1]) return redis.call('incr', KEYS[2])` with both
#         keys under hash tag {a}: one shard.
#   two   the same script with the keys under hash tags {a} and {b}, which live on
#         different shards at 2 shards.
#   fcall `one` as a function (FUNCTION LOAD once, then FCALL incr1 1 key).
# Prints requests/s and the server's CPU microseconds per script (utime+stime from
# /proc/PID/stat around each run), one line per server, workload and round.
#
# Environment (defaults in brackets):
#   THREADS      Shardis shards [2]
#   RUNTIME      auto, io_uring or epoll [auto]
#   N            scripts per run [50000]
#   ROUNDS       rounds [2]
#   SHARDIS_BIN  the binary [target/release/shardis]
#   WORKLOADS    which scripts to run [one tag two fcall]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
RUNTIME=${RUNTIME:-auto}
N=${N:-50000}
ROUNDS=${ROUNDS:-2}
BIN=${SHARDIS_BIN:-target/release/shardis}
WORKLOADS=${WORKLOADS:-one tag two fcall}
PORT=${PORT:-7781}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

one=(EVAL "return redis.call('incr', KEYS[1])" 1 "{a}k:__rand_int__")
tag=(EVAL "redis.call('incr', KEYS[1]) return redis.call('incr', KEYS[2])" 2 "{a}k:__rand_int__" "{a}j:__rand_int__")
two=(EVAL "redis.call('incr', KEYS[1]) return redis.call('incr', KEYS[2])" 2 "{a}k:__rand_int__" "{b}k:__rand_int__")
lib="#!lua name=bench
redis.register_function('incr1', function(keys) return redis.call('incr', keys[1]) end)"
fcall=(FCALL incr1 1 "{a}k:__rand_int__")

start() {
    case $1 in
        shardis) "$BIN" --port "$PORT" --threads "$THREADS" --runtime "$RUNTIME" --save "" --dir "$DIR" >"$DIR/log" 2>&1 & ;;
        redis) redis-server --port "$PORT" --save "" --appendonly no --dir "$DIR" >"$DIR/log" 2>&1 & ;;
    esac
    PID=$!
    for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
    echo "server did not start" >&2; exit 1
}

cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }

measure() {
    local server=$1 name=$2; shift 2
    local c0 c1 rps
    c0=$(cpu)
    rps=$(redis-benchmark -p "$PORT" -n "$N" -r 100000 -c 50 -P 1 -q "$@" 2>/dev/null \
        | tr '\r' '\n' | grep "requests per second" | tail -1 \
        | awk '{for (i = 1; i <= NF; i++) if ($i == "requests") print $(i - 1)}')
    c1=$(cpu)
    printf "| %s | %s | %s | %.1f |\n" "$server" "$name" "$rps" \
        "$(echo "($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / $N" | bc -l)"
}

echo "| server | script | scripts/s | CPU µs per script |"
echo "|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
    order="shardis redis"
    if [ $((round % 2)) -eq 0 ]; then order="redis shardis"; fi
    for server in $order; do
        start "$server"
        redis-cli -p "$PORT" FUNCTION LOAD "$lib" >/dev/null
        for w in $WORKLOADS; do
            declare -n args=$w
            measure "$server" "$w" "${args[@]}"
            unset -n args
        done
        kill "$PID"; wait "$PID" 2>/dev/null || true
    done
done

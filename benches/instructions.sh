#!/usr/bin/env bash
# Instructions per request of one or more Shardis builds, and of redis-server, counted
# with callgrind: steady enough to see a change of 1% where timings on a shared VM
# swing by 10%.
#
#   benches/instructions.sh OLD_BIN NEW_BIN            # GET and SET, P16 and P1
#   TESTS=get PIPELINES=16 benches/instructions.sh A B C
#   TESTS="evalsha multi5" benches/instructions.sh target/release/shardis redis
#
# A build is a Shardis binary, or `redis` for the redis-server on the PATH. Each runs
# under valgrind (Shardis: one shard on the epoll backend; SHARDS for more); the load
# is sent twice, N and then 5N requests, and the difference of the two runs'
# instruction totals divided by 4N is the cost of one request, start-up and shut-down
# left out. TESTS are redis-benchmark tests (4 connections, random keys, 16-byte
# values), and two of this file's own:
#   evalsha  EVALSHA of `redis.call('get', KEYS[1]) return redis.call('set', KEYS[1],
#            ARGV[1])` through redis-benchmark (4 connections, random keys);
#   multi5   benches/txload.rs: MULTI, five commands over five slot ranges, EXEC, 4
#            connections (with SHARDS=2 or more they span shards; instructions of the
#            whole process, every shard's, per transaction).
# Needs valgrind, redis-benchmark, redis-cli (and rustc for multi5).
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,22p "$0"; exit 1; }
N=${N:-10000}
TESTS=${TESTS:-get set}
PIPELINES=${PIPELINES:-16 1}
SHARDS=${SHARDS:-1}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case " $TESTS " in
    *" multi5 "*) rustc --edition 2021 -O "$(dirname "$0")/txload.rs" -o "$dir/txload" ;;
esac

# The load of `test` at `pipeline`, `n` requests, against the server on `port`.
load() {
    local port=$1 n=$2 pipeline=$3 test=$4 sha
    case $test in
        evalsha)
            sha=$(redis-cli -p "$port" script load \
                "redis.call('get', KEYS[1]) return redis.call('set', KEYS[1], ARGV[1])")
            redis-benchmark -p "$port" -c 4 -P "$pipeline" -n "$n" -r 100000 -q \
                evalsha "$sha" 1 'k:__rand_int__' v ;;
        multi5)
            "$dir/txload" --port "$port" --conns 4 --txs "$n" --pipeline "$pipeline" ;;
        *)
            redis-benchmark -p "$port" -t "$test" -c 4 -P "$pipeline" -n "$n" -r 100000 \
                -d 16 -q ;;
    esac
}

# Total instructions of one run of `bin` serving `n` requests of `test` at `pipeline`.
run() {
    local bin=$1 n=$2 pipeline=$3 test=$4 port pid
    port=$(free_port)
    rm -rf "$dir/data" && mkdir -p "$dir/data"
    if [ "$bin" = redis ]; then
        valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" redis-server \
            --port "$port" --save "" --dir "$dir/data" >"$dir/log" 2>&1 &
    else
        valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$bin" --port "$port" \
            --threads "$SHARDS" --save "" --dir "$dir/data" --runtime epoll >"$dir/log" 2>&1 &
    fi
    pid=$!
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
    load "$port" "$n" "$pipeline" "$test" >/dev/null 2>&1
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait "$pid" || true
    grep -o "Collected : [0-9]*" "$dir/log" | awk '{print $3}'
}

for test in $TESTS; do
    for pipeline in $PIPELINES; do
        for bin in "$@"; do
            small=$(run "$bin" "$N" "$pipeline" "$test")
            large=$(run "$bin" $((5 * N)) "$pipeline" "$test")
            echo "$test P$pipeline $bin: $(((large - small) / (4 * N))) instructions/request"
        done
    done
done

#!/usr/bin/env bash
# Instructions per request of one or more Shardis builds, counted with callgrind:
# steady enough to see a change of 1% where timings on a shared VM swing by 10%.
#
#   benches/instructions.sh OLD_BIN NEW_BIN            # GET and SET, P16 and P1
#   TESTS=get PIPELINES=16 benches/instructions.sh A B C
#
# Each build runs with one shard on the epoll backend under valgrind; redis-benchmark
# (4 connections, random keys, 16-byte values) sends N and then 5N requests, and the
# difference of the two runs' instruction totals divided by 4N is the cost of one
# request, start-up and shut-down left out. Needs valgrind, redis-benchmark, redis-cli.
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,11p "$0"; exit 1; }
N=${N:-10000}
TESTS=${TESTS:-get set}
PIPELINES=${PIPELINES:-16 1}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Total instructions of one run of `bin` serving `n` requests of `test` at `pipeline`.
run() {
    local bin=$1 n=$2 pipeline=$3 test=$4 port
    port=$(free_port)
    rm -rf "$dir/data" && mkdir -p "$dir/data"
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$bin" --port "$port" \
        --threads 1 --save "" --dir "$dir/data" --runtime epoll >"$dir/log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
    redis-benchmark -p "$port" -t "$test" -c 4 -P "$pipeline" -n "$n" -r 100000 -d 16 -q \
        >/dev/null 2>&1
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

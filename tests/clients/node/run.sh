#!/usr/bin/env bash
# Real client libraries beside redis-server: the same ioredis / node-redis scenario
# (check.js: scripts through EVALSHA with the NOSCRIPT fallback, pipelines, MULTI and
# WATCH, five clients blocked on one list, pub/sub with patterns, MONITOR, streams,
# SCAN, functions, RESP3 maps and doubles, sharded pub/sub, large values, LRANGE of 600,
# a DUMP payload) runs against redis-server
# and against Shardis on each backend, and what each saw must be identical.
# By hand, not in `.ci/run`: it needs npm and the registry (`npm install` here).
#   tests/clients/node/run.sh [path/to/shardis]   (default: target/release/shardis)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../../../target/release/shardis}"
cd "$here"
[ -d node_modules ] || npm install --no-audit --no-fund --silent
work="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.05; done; echo "no server on $1" >&2; exit 1; }

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
wait_up "$rport"
node check.js "$rport" >"$work/redis.json"
status=0
for runtime in io_uring epoll; do
    for threads in 1 2; do
        port=$(free_port)
        "$bin" --port "$port" --bind 127.0.0.1 --threads "$threads" --runtime "$runtime" \
            --save "" --dir "$work" >"$work/shardis-$runtime-$threads.log" 2>&1 &
        pids+=($!)
        wait_up "$port"
        node check.js "$port" >"$work/shardis.json" || true
        if diff -u "$work/redis.json" "$work/shardis.json"; then
            echo "$runtime, $threads shard(s): same as redis-server"
        else
            echo "$runtime, $threads shard(s): DIFFERENT from redis-server"
            status=1
        fi
    done
done
exit $status

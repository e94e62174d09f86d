#!/usr/bin/env bash
# SET with the AOF on: Shardis beside redis-server 7.0 in the same run.
#
# For each appendfsync policy and pipeline depth: redis-benchmark -c CLIENTS -n N
# -r 100000 -t set against each server, ROUNDS times, the servers alternating which
# goes first. Prints requests/s and the server's CPU per request (user + system time
# of the whole process, writer threads included, from /proc/PID/stat).
#
# Environment: THREADS [2], RUNTIME [auto], CLIENTS [50], N [60000], ROUNDS [2],
# FSYNCS ["everysec always"], PIPELINES ["1 16"], SHARDIS_BIN [target/release/shardis],
# SKIP_BUILD=1, DIR (scratch dir, on the disk to measure) [mktemp -d].
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-2}
CLIENTS=${CLIENTS:-50}
N=${N:-60000}
ROUNDS=${ROUNDS:-2}
FSYNCS=${FSYNCS:-everysec always}
PIPELINES=${PIPELINES:-1 16}
for tool in redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
if [ -z "${SHARDIS_BIN:-}" ]; then
    [ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --quiet
    SHARDIS_BIN=target/release/shardis
fi
DIR=${DIR:-$(mktemp -d)}
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT
TICK=$(getconf CLK_TCK)

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run KIND FSYNC PIPELINE -> "req/s cpu-us-per-request"
run() {
    local kind=$1 fsync=$2 pipe=$3 p d pid c0 c1 rps
    p=$(port); d="$DIR/$kind-$fsync-$pipe"; rm -rf "$d"; mkdir -p "$d"
    if [ "$kind" = shardis ]; then
        "$SHARDIS_BIN" --port "$p" --threads "$THREADS" --runtime "${RUNTIME:-auto}" --dir "$d" \
            --save "" --appendonly yes --appendfsync "$fsync" >"$d/log" 2>&1 &
    else
        redis-server --port "$p" --dir "$d" --save "" --appendonly yes --appendfsync "$fsync" \
            >"$d/log" 2>&1 &
    fi
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 200); do
        redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break
        sleep 0.05
    done
    c0=$(cpu_ticks "$pid")
    rps=$(redis-benchmark -p "$p" -c "$CLIENTS" -n "$N" -r 100000 -P "$pipe" -t set --csv 2>/dev/null |
        awk -F, 'NR == 2 { gsub("\"", "", $2); print $2 }')
    c1=$(cpu_ticks "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    awk -v r="$rps" -v t=$((c1 - c0)) -v hz="$TICK" -v n="$N" \
        'BEGIN { printf "%.0f %.1f", r, t * 1e6 / hz / n }'
}

echo "| appendfsync | pipeline | round | Shardis ($THREADS shards) req/s | CPU µs/req | Redis req/s | CPU µs/req |"
echo "|---|---|---|---|---|---|---|"
for fsync in $FSYNCS; do
    for pipe in $PIPELINES; do
        for r in $(seq 1 "$ROUNDS"); do
            if [ $((r % 2)) = 1 ]; then
                s=$(run shardis "$fsync" "$pipe"); x=$(run redis "$fsync" "$pipe")
            else
                x=$(run redis "$fsync" "$pipe"); s=$(run shardis "$fsync" "$pipe")
            fi
            read -r srps scpu <<<"$s"; read -r xrps xcpu <<<"$x"
            echo "| $fsync | $pipe | $r | $srps | $scpu | $xrps | $xcpu |"
        done
    done
done

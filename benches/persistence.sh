#!/usr/bin/env bash
# Persistence comparison: Shardis vs redis-server 7.0, in the same run.
#
# 1. SAVE and load: KEYS keys `key:NNNNNNNNNNNN` (redis-benchmark's key names) with VALUE_SIZE-byte
#    values (`value-NNNNNNNNNN`, then `:` and numbers up to the size) are loaded through
#    `redis-cli --pipe`; SAVE is timed from the client; the server is restarted on the
#    file and the load time is taken from its own log line ("DB loaded from disk: X
#    seconds", which both servers print).
# 2. BGSAVE under writes: on the same data set, BGSAVE starts while redis-benchmark
#    rewrites half of the keys (its SET key:__rand_int__ over the first KEYS/2 keys, -P 16).
#    Reported: the server's rdb_last_cow_size (Redis: the fork child's copied pages;
#    Shardis: its snapshot's peak buffered bytes) and the peak growth of the server's
#    VmRSS (plus the fork child's for Redis) sampled every 10 ms, as a share of the
#    data set's RSS.
# 3. AOF: SET throughput with appendonly yes and appendfsync always / everysec,
#    redis-benchmark -c CLIENTS -n AOF_N -d 16 -r 100000 (no pipelining), on each server.
#
# Values over 20 bytes are LZF-compressed in the file: VALUE_SIZE=100 measures that.
# Environment: THREADS [online CPUs], RUNTIME [auto], KEYS [1000000], VALUE_SIZE [16],
# CLIENTS [50], AOF_N [50000],
# SKIP_BUILD=1, SHARDIS_BIN, DIR (scratch dir, on the disk to measure) [mktemp -d].
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-$(getconf _NPROCESSORS_ONLN)}
KEYS=${KEYS:-1000000}
CLIENTS=${CLIENTS:-50}
AOF_N=${AOF_N:-50000}
VALUE_SIZE=${VALUE_SIZE:-16}
for tool in redis-server redis-benchmark redis-cli awk; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
if [ -z "${SHARDIS_BIN:-}" ]; then
    [ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --quiet
    SHARDIS_BIN=target/release/shardis
fi
DIR=${DIR:-$(mktemp -d)}
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start KIND DIR PORT [extra args...] -> sets SPID
start() {
    local kind=$1 dir=$2 p=$3; shift 3
    mkdir -p "$dir"
    if [ "$kind" = shardis ]; then
        "$SHARDIS_BIN" --port "$p" --threads "$THREADS" --runtime "${RUNTIME:-auto}" --dir "$dir" --save "" "$@" >"$dir/log" 2>&1 &
    else
        redis-server --port "$p" --dir "$dir" --save "" --daemonize no "$@" >"$dir/log" 2>&1 &
    fi
    SPID=$!
    PIDS+=("$SPID")
    for _ in $(seq 1 600); do
        if redis-cli -p "$p" ping 2>/dev/null | grep -q PONG; then return 0; fi
        sleep 0.05
    done
    echo "$kind did not start; log:" >&2; cat "$dir/log" >&2; exit 1
}
stop() { redis-cli -p "$1" shutdown nosave >/dev/null 2>&1 || true; sleep 0.3; }
rss_kb() { local v; v=$(awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || true); echo "${v:-0}"; }
children_rss_kb() {
    local total=0
    for c in $(pgrep -P "$1" 2>/dev/null); do total=$((total + $(rss_kb "$c"))); done
    echo "$total"
}
fill() {
    awk -v n="$KEYS" -v size="$VALUE_SIZE" 'BEGIN {
        for (i = 0; i < n; i++) {
            v = sprintf("value-%010d", i)
            while (length(v) < size) v = v ":" (i * 7919 + length(v)) % 1000003
            v = substr(v, 1, size)
            printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$%d\r\n%s\r\n", i, length(v), v
        }
    }' |
        redis-cli -p "$1" --pipe >/dev/null
}
now() { date +%s.%N; }

echo "## Persistence: Shardis ($THREADS shards) vs redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2), $KEYS keys of $VALUE_SIZE bytes"
echo
echo "| measure | Shardis | Redis |"
echo "|---|---|---|"
declare -A R
for kind in shardis redis; do
    d="$DIR/$kind"; rm -rf "$d"; p=$(port)
    start "$kind" "$d" "$p"
    fill "$p"
    t0=$(now); redis-cli -p "$p" save >/dev/null; t1=$(now)
    R[$kind.save]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f s", b - a }')
    R[$kind.size]=$(( $(stat -c %s "$d/dump.rdb") / 1024 / 1024 ))
    stop "$p"
    start "$kind" "$d" "$p"
    R[$kind.load]=$(grep -o 'DB loaded from disk: [0-9.]* seconds' "$d/log" | awk '{printf "%.2f s", $5}')
    base=$(rss_kb "$SPID")
    # BGSAVE while half of the keys are rewritten.
    redis-benchmark -p "$p" -c 50 -P 16 -n $((KEYS / 2)) -r $((KEYS / 2)) -d "$VALUE_SIZE" -t set -q >/dev/null 2>&1 &
    bench=$!
    redis-cli -p "$p" bgsave >/dev/null
    peak=0
    while redis-cli -p "$p" info persistence | grep -q 'rdb_bgsave_in_progress:1'; do
        cur=$(( $(rss_kb "$SPID") + $(children_rss_kb "$SPID") ))
        [ "$cur" -gt "$peak" ] && peak=$cur
        sleep 0.01
    done
    wait "$bench" || true
    extra=$(( peak > base ? peak - base : 0 ))
    cow=$(redis-cli -p "$p" info persistence | awk -F: '/rdb_last_cow_size/ {gsub("\r",""); print $2}')
    R[$kind.cow]="$((cow / 1024)) KiB"
    R[$kind.rss]="$((extra / 1024)) MiB of $((base / 1024)) MiB ($(awk -v e="$extra" -v b="$base" 'BEGIN { printf "%.0f%%", 100 * e / b }'))"
    stop "$p"
    # AOF throughput.
    for fsync in always everysec; do
        d2="$DIR/$kind-aof-$fsync"; rm -rf "$d2"; p=$(port)
        start "$kind" "$d2" "$p" --appendonly yes --appendfsync "$fsync"
        rps=$(redis-benchmark -p "$p" -c "$CLIENTS" -n "$AOF_N" -r 100000 -d "$VALUE_SIZE" -t set --csv 2>/dev/null |
            awk -F, 'NR == 2 { gsub("\"", "", $2); print $2 }')
        R[$kind.aof.$fsync]="$rps req/s"
        stop "$p"
    done
done
row() { echo "| $1 | ${R[shardis.$2]} | ${R[redis.$2]} |"; }
row "SAVE $KEYS keys" save
row "RDB file size (MiB)" size
row "load at start" load
row "BGSAVE while half the keys are rewritten: rdb_last_cow_size" cow
row "BGSAVE: peak RSS growth (server + fork child)" rss
row "SET, appendfsync always, $CLIENTS clients" aof.always
row "SET, appendfsync everysec, $CLIENTS clients" aof.everysec
rm -rf "$DIR"

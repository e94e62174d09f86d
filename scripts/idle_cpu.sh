#!/bin/sh
# Idle CPU of Shardis and redis-server: start both with their default settings (Shardis
# with config.toml and 2 shards), wait 10 s without clients, and print each one's CPU
# time (utime + stime from /proc/<pid>/stat) over those 10 s. No threshold: a figure to
# compare. Usage: scripts/idle_cpu.sh [path to the shardis binary] (default: the debug
# build, target/debug/shardis).
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/shardis}
SECS=10
TMP=$(mktemp -d)
SPID=; RPID=
cleanup() { kill -9 $SPID $RPID 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
"$BIN" config.toml --threads 2 --port 17391 --dir "$TMP" >"$TMP/shardis.log" 2>&1 &
SPID=$!
redis-server --port 17392 --dir "$TMP" >"$TMP/redis.log" 2>&1 &
RPID=$!
# Let both finish starting before measuring.
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
S0=$(ticks $SPID); R0=$(ticks $RPID)
sleep $SECS
S1=$(ticks $SPID); R1=$(ticks $RPID)
HZ=$(getconf CLK_TCK)
secs() { awk -v a="$1" -v b="$2" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }'; }
cleanup
echo "idle CPU over ${SECS}s: shardis (2 shards) $(secs "$S0" "$S1") s, redis-server $(secs "$R0" "$R1") s"

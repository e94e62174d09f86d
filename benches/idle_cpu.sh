#!/bin/sh
# Idle CPU of Shardis and redis-server: start both with their default settings (Shardis
# with config.toml and 2 shards), wait 10 s without clients, and print each one's CPU
# time (utime + stime from /proc/<pid>/stat) over those 10 s. No threshold: a figure to
# compare. Usage: benches/idle_cpu.sh [path to the shardis binary] (default: the debug
# build, target/debug/shardis); RUNTIME=epoll or io_uring picks the event loop.
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/shardis}
SECS=10
TMP=$(mktemp -d)
SPID=; RPID=
cleanup() { kill -9 $SPID $RPID 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
"$BIN" config.toml --threads 2 --runtime "${RUNTIME:-auto}" --port ${SPORT:-17391} --dir "$TMP" >"$TMP/shardis.log" 2>&1 &
SPID=$!
redis-server --port ${RPORT:-17392} --dir "$TMP" >"$TMP/redis.log" 2>&1 &
RPID=$!
# Let both finish starting before measuring.
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# schedstat: nanoseconds on CPU per thread, finer than stat's 10 ms ticks.
nanos() { cat /proc/"$1"/task/*/schedstat | awk '{ n += $1 } END { print n }'; }
S0=$(ticks $SPID); R0=$(ticks $RPID); SN0=$(nanos $SPID); RN0=$(nanos $RPID)
sleep $SECS
S1=$(ticks $SPID); R1=$(ticks $RPID); SN1=$(nanos $SPID); RN1=$(nanos $RPID)
HZ=$(getconf CLK_TCK)
secs() { awk -v a="$1" -v b="$2" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }'; }
cleanup
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }
echo "idle CPU over ${SECS}s (utime+stime): shardis (2 shards) $(secs "$S0" "$S1") s, redis-server $(secs "$R0" "$R1") s"
echo "idle CPU over ${SECS}s (schedstat):   shardis (2 shards) $(ms "$SN0" "$SN1") ms, redis-server $(ms "$RN0" "$RN1") ms"

#!/bin/bash
# Run Redis's own integration tests (tests/integration of a Redis 7.0 source tree:
# replication, PSYNC2, AOF, RDB, SHUTDOWN...) with Shardis as the server they start.
#
# usage: tests/redis-suite/integration.sh REDIS_SRC [unit ...]
#   REDIS_SRC  a scratch redis 7.0.15 source tree (git archive of the tag): this script
#              writes src/redis-server into it, a wrapper that starts Shardis with the
#              config file the harness wrote (nothing is built)
#   unit       e.g. integration/replication (default: every tests/integration unit)
# env: BIN (target/release/shardis), RUNTIME (epoll), SHARDS (2), OUT
#      (/tmp/redis-integration), UNIT_TIMEOUT (900 s), BASEPORT (30000)
#
# Unlike run.sh (external mode, one server), the harness here starts and restarts its
# own servers, several at once, so the units that need a master and replicas run.
# Compare with BIN=redis-server. Not in .ci/run: it needs the Redis source tree, and
# some units exercise what has no counterpart here (fork children, diskless load).
set -u
SRC=$(cd "$1" && pwd); shift
BIN=${BIN:-target/release/shardis}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
OUT=${OUT:-/tmp/redis-integration}
mkdir -p "$OUT"
: >"$OUT/summary"
if [ "$(basename "$BIN")" = redis-server ]; then
  ln -sf "$BIN" "$SRC/src/redis-server"
else
  # The harness waits for " PID: <pid>" in the server's output (Redis's logo).
  cat >"$SRC/src/redis-server" <<EOF
#!/bin/bash
echo " PID: \$\$"
exec "$BIN" "\$@" --threads ${SHARDS:-2} --runtime ${RUNTIME:-epoll}
EOF
  chmod +x "$SRC/src/redis-server"
fi
for tool in redis-cli redis-benchmark redis-check-aof redis-check-rdb; do
  ln -sf "$(command -v $tool)" "$SRC/src/$tool"
done
if [ $# -eq 0 ]; then
  set -- $(cd "$SRC/tests" && ls integration/*.tcl | sed 's/\.tcl$//')
fi
cd "$SRC"
for u in "$@"; do
  rm -rf tests/tmp/*
  log="$OUT/$(echo "$u" | tr / _).log"
  timeout "${UNIT_TIMEOUT:-900}" ./runtest --single "$u" --clients 1 \
    --baseport "${BASEPORT:-30000}" >"$log" 2>&1
  rc=$?
  pkill -9 -f "tests/tmp/redis.conf" 2>/dev/null  # servers a unit left behind
  text=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
  echo "$u rc=$rc ok=$(echo "$text" | grep -c '^\[ok\]') err=$(echo "$text" | grep -c '^\[err\]')" >>"$OUT/summary"
  echo "$text" | grep -A2 '^\[err\]\|^\[exception\]' >>"$OUT/summary"
done
cat "$OUT/summary"

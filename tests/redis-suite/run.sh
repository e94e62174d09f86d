#!/bin/bash
# Run Redis's own unit tests (tests/unit of a Redis 7.0 source tree, in external
# mode) against a Shardis binary, one unit at a time, each on a fresh server.
#
# usage: tests/redis-suite/run.sh REDIS_SRC [unit ...]
#   REDIS_SRC  a redis 7.0.15 source tree (git archive of the tag; nothing to build)
#   unit       e.g. unit/type/list (default: every unit test_helper.tcl lists)
# env: BIN (target/release/shardis), RUNTIME (epoll), SHARDS (2), OUT (/tmp/redis-suite),
#      PORT (7001) and BASEPORT (21079: the suite's own ports) to run two at once
#
# Not part of .ci/run: it needs the Redis source tree (no network in CI). Tests that
# need a DEBUG subcommand Shardis lacks (README) are skipped by name; a unit that
# still stops on an exception has that test added to the skip list and runs again.
# The summary (OUT/summary) gives ok / err per unit; compare it with the same
# script run against redis-server (BIN=redis-server).
set -u
SRC=$(cd "$1" && pwd); shift
BIN=${BIN:-target/release/shardis}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")   # absolute, links kept: redis-server is one
OUT=${OUT:-/tmp/redis-suite}
PORT=${PORT:-7001}
mkdir -p "$OUT"
SKIP="$OUT/skip.txt"
# Tests that use DEBUG subcommands Shardis does not have.
python3 - "$SRC" "$SKIP" <<'PY'
import glob, re, sys
src, out = sys.argv[1], sys.argv[2]
debug = re.compile(r'debug (loadaof|quicklist-packed-threshold|htstats|listpack|'
                   r'stringmatch-len|jmap|ziplist|sdslen|replybuffer|pause-cron|'
                   r'set-skip-checksum|script|mallctl|'
                   r'dict-resizing|client-eviction)', re.I)
names = set()
for f in glob.glob(src + '/tests/unit/**/*.tcl', recursive=True):
    test = None
    for line in open(f, errors='replace'):
        m = re.match(r'\s*test\s+(?:\{(.+?)\}|"(.+?)")\s+\{', line)
        if m:
            test = m.group(1) or m.group(2)
        if test and debug.search(line):
            names.add(test)
open(out, 'w').write(''.join(n + '\n' for n in sorted(names)))
PY
if [ $# -eq 0 ]; then
  set -- $(sed -n '/^set ::all_tests/,/^}/p' "$SRC/tests/test_helper.tcl" | grep -o 'unit/[a-z0-9/_-]*')
fi
start() {
  rm -rf "$OUT/dir"; mkdir -p "$OUT/dir"
  if [ "$(basename "$BIN")" = redis-server ]; then
    "$BIN" --port "$PORT" --save "" --enable-debug-command yes --dir "$OUT/dir" >"$OUT/server.log" 2>&1 &
  else
    "$BIN" --port "$PORT" --threads "${SHARDS:-2}" --runtime "${RUNTIME:-epoll}" --save "" \
      --appendonly no --enable-debug-command yes --dir "$OUT/dir" >"$OUT/server.log" 2>&1 &
  fi
  SERVER=$!
  for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
}
cd "$SRC"
for u in "$@"; do
  log="$OUT/$(echo "$u" | tr / _).log"
  for _ in 1 2 3 4 5 6 7 8; do
    start
    timeout "${TIMEOUT:-400}" ./runtest --host 127.0.0.1 --port "$PORT" --single "$u" \
      --skipfile "$SKIP" --baseport "${BASEPORT:-21079}" >"$log" 2>&1
    rc=$?
    kill -9 "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null
    text=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
    name=$(echo "$text" | grep -A40 '^\[exception\]' | grep -oP '^"test \{\K.*(?=\} \{)|^"test "\K[^"]*' | head -1)
    if [ -n "$name" ]; then
      echo "$name" >>"$SKIP"
      echo "$u: skipped [$name]: $(echo "$text" | grep -A1 '^\[exception\]' | tail -1 | cut -c1-120)" >>"$OUT/summary"
      continue
    fi
    echo "$u rc=$rc ok=$(echo "$text" | grep -c '^\[ok\]') err=$(echo "$text" | grep -c '^\[err\]')" >>"$OUT/summary"
    echo "$text" | grep -A2 '^\[err\]' >>"$OUT/summary"
    break
  done
done
cat "$OUT/summary"

#!/usr/bin/env bash
# Builds side by side: for ROUNDS rounds, each server in turn (Shardis binaries given as
# arguments, and `redis` for redis-server 7.0) runs one redis-benchmark test, and the
# script prints its requests/s, the server's CPU µs per request (utime + stime from
# /proc/PID/stat around the test, every thread) and its threads' voluntary and
# involuntary context switches per request. A figure per round, no threshold.
#
#   benches/ab.sh BIN... [redis]
#
# Environment (defaults in brackets):
#   THREADS   shards [2]
#   RUNTIME   epoll or io_uring [epoll]
#   ARGS      redis-benchmark arguments [-c 50 -r 100000 -n 200000 -t get]
#   ROUNDS    rounds [3]
#   SERVER_CPUS / CLIENT_CPUS  optional taskset CPU lists for the servers / redis-benchmark
#   SETUP     optional redis-cli arguments run against each server first, e.g.
#             SETUP="script load \"return 1\"" for an EVALSHA test (word-split by eval)
# Each server starts afresh on a free port below the ephemeral range, takes 20,000
# requests to warm up, then the measured test.
set -u
THREADS=${THREADS:-2}
RUNTIME=${RUNTIME:-epoll}
ARGS=${ARGS:--c 50 -r 100000 -n 200000 -t get}
ROUNDS=${ROUNDS:-3}
SERVER_PREFIX=(); CLIENT_PREFIX=()
[ -n "${SERVER_CPUS:-}" ] && SERVER_PREFIX=(taskset -c "$SERVER_CPUS")
[ -n "${CLIENT_CPUS:-}" ] && CLIENT_PREFIX=(taskset -c "$CLIENT_CPUS")
[ $# -gt 0 ] || { sed -n 2,17p "$0"; exit 2; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

one() {
    local bin=$1 port dir pid
    port=$(free_port)
    dir=$(mktemp -d)
    if [ "$bin" = redis ]; then
        "${SERVER_PREFIX[@]}" redis-server --port "$port" --save '' --appendonly no --dir "$dir" >"$dir/log" 2>&1 &
    else
        "${SERVER_PREFIX[@]}" "$bin" --port "$port" --threads "$THREADS" --runtime "$RUNTIME" --save '' \
            --appendonly no --dir "$dir" >"$dir/log" 2>&1 &
    fi
    pid=$!
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "$bin did not start:" >&2; cat "$dir/log" >&2; rm -rf "$dir"; return 1
    fi
    [ -n "${SETUP:-}" ] && eval "redis-cli -p $port $SETUP" >/dev/null
    # shellcheck disable=SC2086
    timeout 120 "${CLIENT_PREFIX[@]}" redis-benchmark -p "$port" -q $ARGS -n 20000 >/dev/null 2>&1
    cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
    switches() {
        cat /proc/"$pid"/task/*/status |
            awk '/^voluntary_ctxt/ { v += $2 } /^nonvoluntary_ctxt/ { n += $2 } END { print v, n }'
    }
    local c0 c1 s0 s1 out
    c0=$(cpu); s0=$(switches)
    # shellcheck disable=SC2086
    out=$(timeout 300 "${CLIENT_PREFIX[@]}" redis-benchmark -p "$port" -q $ARGS 2>&1 | tr '\r' '\n' | grep "per second" | tail -1)
    c1=$(cpu); s1=$(switches)
    kill "$pid"; wait "$pid" 2>/dev/null; rm -rf "$dir"
    local n tests
    n=$(echo "$ARGS" | grep -o -- '-n [0-9]*' | tail -1 | awk '{print $2}')
    tests=$(echo "$ARGS" | grep -o -- '-t [a-z,]*' | awk '{print $2}' | tr ',' '\n' | grep -c .)
    [ "$tests" -gt 0 ] || tests=1 # a command given in full
    awk -v bin="$bin" -v out="$out" -v c0="$c0" -v c1="$c1" -v s0="$s0" -v s1="$s1" \
        -v req=$((n * tests)) -v hz="$(getconf CLK_TCK)" 'BEGIN {
        split(s0, a, " "); split(s1, b, " ")
        match(out, /[0-9.]+ requests per second/)
        rps = substr(out, RSTART, RLENGTH - 20)
        printf "| %s | %.0f | %.2f | %.2f | %.3f |\n", bin, rps, (c1 - c0) * 1e6 / hz / req,
            (b[1] - a[1]) / req, (b[2] - a[2]) / req
    }'
}

echo "threads $THREADS, runtime $RUNTIME, redis-benchmark $ARGS${SERVER_CPUS:+, servers on CPUs $SERVER_CPUS}${CLIENT_CPUS:+, client on $CLIENT_CPUS}"
echo
echo "| server | req/s | CPU µs/req | voluntary switches/req | involuntary/req |"
echo "|---|---|---|---|---|"
for _ in $(seq "$ROUNDS"); do
    for bin in "$@"; do one "$bin"; done
done

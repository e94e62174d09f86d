#!/usr/bin/env bash
# Load comparison: Shardis vs redis-server 7.0 under redis-benchmark, in the same run.
#
# For ROUNDS alternating rounds (Shardis then Redis, then Redis then Shardis, ...) it
# runs `redis-benchmark -t {set,get} -c 50 -n N -r 100000 -P {1,16} -d 16 --csv`
# against each server, samples the server's CPU time (utime+stime from /proc/PID/stat)
# around each run, and prints medians over the rounds as a markdown table: requests/s,
# p50 and p99 latency, and server CPU microseconds per request. In the same rounds it
# runs two multi-shard workloads on both servers:
#   MSET10  redis-benchmark sending `MSET {s10}:__rand_int__ v ... {s1}:__rand_int__ v`,
#           ten keys whose hash tags (printed by `txload --tags 10`) have slots in ten
#           evenly spaced ranges, so every MSET spans min(THREADS, 10) shards;
#   MULTI5  benches/txload.rs: MULTI; SET; INCR; GET; SET; INCR; EXEC over TX_CONNS
#           connections, keys in five evenly spaced slot ranges (same idea); req/s is
#           then transactions/s, latency the round trip of one write (PIPELINE blocks),
#           and CPU µs is per transaction.
# Collections (TESTS lpush lpop sadd hset zadd zrange): redis-benchmark's own LPUSH /
# LPOP / SADD / HSET tests, `ZADD zs __rand_int__ m:__rand_int__` (random scores over
# 100k members) and `ZRANGE zs 0 99` on the set those ZADDs built (run after them).
# Then it starts both servers afresh, loads 1,000,000 keys `key:NNNNNNNN` with 16-byte values through
# `redis-cli --pipe`, and reports each server's VmRSS; likewise for HASHES_RSS hashes of
# 10 fields (listpack-encoded in both) and ZSETS_RSS sorted sets of 100 members.
#
# Environment (defaults in brackets):
#   THREADS   Shardis shards [number of online CPUs]
#   RUNTIME   Shardis's event loop: auto, io_uring or epoll [auto]
#   N         requests per redis-benchmark run [200000]
#   ROUNDS    rounds, alternating the order of the servers [4]
#   CLIENTS   redis-benchmark connections [50]
#   KEYS_RSS  keys loaded for the memory figures [1000000]
#   MSET_N    MSET requests per run [N/10]
#   TX_N      transactions per txload run [N/10]
#   TX_CONNS  txload connections (one thread each) [16]
#   TESTS     which workloads, any of "set get mset tx lpush lpop sadd hset zadd zrange"
#             [all]
#   HASHES_RSS / ZSETS_RSS  collections loaded for the memory figures [100000 / 10000]
#   SKIP_BUILD=1  use the existing target/release/shardis
#   SHARDIS_BIN   run this binary instead (e.g. a debug build for a quick check of the
#                 script; never for recorded numbers)
#   SERVER_CPUS / CLIENT_CPUS  optional taskset CPU lists for servers / redis-benchmark
# Default total runtime is about 3-5 minutes on a small machine.
set -euo pipefail

cd "$(dirname "$0")/.."

THREADS=${THREADS:-$(getconf _NPROCESSORS_ONLN)}
RUNTIME=${RUNTIME:-auto}
N=${N:-200000}
ROUNDS=${ROUNDS:-4}
CLIENTS=${CLIENTS:-50}
KEYS_RSS=${KEYS_RSS:-1000000}
MSET_N=${MSET_N:-$((N / 10))}
TX_N=${TX_N:-$((N / 10))}
TX_CONNS=${TX_CONNS:-16}
TESTS=${TESTS:-set get mset tx lpush lpop sadd hset zadd zrange}
HASHES_RSS=${HASHES_RSS:-100000}
ZSETS_RSS=${ZSETS_RSS:-10000}
CLK_TCK=$(getconf CLK_TCK)

for tool in redis-server redis-benchmark redis-cli awk rustc; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
redis_version=$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')
case "$redis_version" in
    7.0.*) ;;
    *) echo "warning: redis-server is $redis_version, the comparison is meant for 7.0" >&2 ;;
esac

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release >&2
fi
SHARDIS=${SHARDIS_BIN:-target/release/shardis}

WORK=$(mktemp -d /tmp/shardis-load.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# txload uses only std: a plain rustc build takes seconds and needs no crate build.
TXLOAD="$WORK/txload"
rustc --edition 2021 -O benches/txload.rs -o "$TXLOAD" >&2
# MSET10: ten keys, one per tenth of the slot space.
MSET_ARGS=(mset)
for tag in $("$TXLOAD" --tags 10); do
    MSET_ARGS+=("{$tag}:__rand_int__" vvvvvvvvvvvvvvvv)
done

free_port() {
    local p
    while :; do
        # Below the kernel's ephemeral range (32768+), where redis-benchmark's own
        # client sockets could already hold the port for a wildcard bind.
        p=$(( (RANDOM % 12000) + 20000 ))
        # A refused connection means nothing listens there.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

# Optional CPU pinning; taskset execs the program, so $! stays the server's PID.
SERVER_PREFIX=()
CLIENT_PREFIX=()
if [ -n "${SERVER_CPUS:-}" ]; then SERVER_PREFIX=(taskset -c "$SERVER_CPUS"); fi
if [ -n "${CLIENT_CPUS:-}" ]; then CLIENT_PREFIX=(taskset -c "$CLIENT_CPUS"); fi

wait_ready() {
    local port=$1 pid=$2 name=$3
    for _ in $(seq 1 200); do
        if redis-cli -p "$port" PING 2>/dev/null | grep -q PONG; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited at start-up:" >&2
            cat "$WORK/$name.log" >&2
            exit 1
        fi
        sleep 0.05
    done
    echo "$name did not answer PING on port $port" >&2
    cat "$WORK/$name.log" >&2
    exit 1
}

# start_server NAME -> sets PORT_<NAME> and PID_<NAME>
start_server() {
    local name=$1 port
    port=$(free_port)
    mkdir -p "$WORK/$name"
    if [ "$name" = shardis ]; then
        "${SERVER_PREFIX[@]}" "$SHARDIS" --port "$port" --threads "$THREADS" \
            --runtime "$RUNTIME" --save '' --appendonly no --dir "$WORK/$name" \
            >"$WORK/$name.log" 2>&1 &
    else
        "${SERVER_PREFIX[@]}" redis-server --port "$port" --save '' --appendonly no \
            --daemonize no --dir "$WORK/$name" >"$WORK/$name.log" 2>&1 &
    fi
    local pid=$!
    PIDS+=("$pid")
    wait_ready "$port" "$pid" "$name"
    printf -v "PORT_$name" '%s' "$port"
    printf -v "PID_$name" '%s' "$pid"
}

stop_server() {
    local name=$1 pid_var="PID_$1"
    local pid=${!pid_var}
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Server CPU time so far, in microseconds (all threads of the process).
cpu_us() {
    local stat
    stat=$(cat "/proc/$1/stat")
    # Fields after the ")" that closes the command name: utime is the 12th, stime the 13th.
    echo "${stat##*) }" | awk -v hz="$CLK_TCK" '{ printf "%d\n", ($12 + $13) * 1000000 / hz }'
}

rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

threads_of() {
    if [ "$1" = shardis ]; then echo "$THREADS"; else echo 1; fi
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

run_one() {
    local name=$1 test=$2 pipeline=$3
    local port_var="PORT_$name" pid_var="PID_$name"
    local port=${!port_var} pid=${!pid_var}
    local before after csv n label
    local -a custom
    case "$test" in
        tx) run_tx "$name" "$pipeline"; return ;;
        mset) n=$MSET_N label=MSET10 custom=("${MSET_ARGS[@]}") ;;
        zadd) n=$N label=ZADD custom=(zadd zs __rand_int__ m:__rand_int__) ;;
        zrange) n=$((N / 10)) label=ZRANGE100 custom=(zrange zs 0 99) ;;
        *) n=$N label=${test^^} custom=() ;;
    esac
    before=$(cpu_us "$pid")
    if [ "${#custom[@]}" -gt 0 ]; then
        csv=$("${CLIENT_PREFIX[@]}" redis-benchmark -p "$port" -c "$CLIENTS" -n "$n" \
            -r 100000 -P "$pipeline" --csv "${custom[@]}" 2>/dev/null)
    else
        csv=$("${CLIENT_PREFIX[@]}" redis-benchmark -p "$port" -t "$test" -c "$CLIENTS" \
            -n "$n" -r 100000 -P "$pipeline" -d 16 --csv 2>/dev/null)
    fi
    after=$(cpu_us "$pid")
    # CSV: "test","rps","avg","min","p50","p95","p99","max" (a custom command's test
    # name is the command line itself, which has no commas here).
    echo "$csv" | awk -F, -v s="$name" -v t="$label" -v p="$pipeline" -v th="$(threads_of "$name")" \
        -v cpu="$((after - before))" -v n="$n" '
        NR > 1 {
            gsub(/"/, "")
            printf "%s\t%s\t%s\t%s\t%.0f\t%.3f\t%.3f\t%.2f\n", s, th, t, p, $2, $5, $7, cpu / n
        }' >>"$RESULTS"
}

# MULTI/EXEC of 5 commands through txload; "req/s" is transactions/s here.
run_tx() {
    local name=$1 pipeline=$2
    local port_var="PORT_$name" pid_var="PID_$name"
    local port=${!port_var} pid=${!pid_var}
    local before after line
    before=$(cpu_us "$pid")
    line=$("${CLIENT_PREFIX[@]}" "$TXLOAD" --port "$port" --conns "$TX_CONNS" --txs "$TX_N" \
        --pipeline "$pipeline" 2>"$WORK/txload.err") || {
        echo "txload against $name failed:" >&2
        cat "$WORK/txload.err" >&2
        exit 1
    }
    after=$(cpu_us "$pid")
    # txload: tx_per_s p50_ms p99_ms txs errors secs
    echo "$line" | awk -F'\t' -v s="$name" -v p="$pipeline" -v th="$(threads_of "$name")" \
        -v cpu="$((after - before))" '
        { printf "%s\t%s\tMULTI5\t%s\t%.0f\t%.3f\t%.3f\t%.2f\n", s, th, p, $1, $2, $3, cpu / $4 }' >>"$RESULTS"
}

start_server shardis
start_server redis
echo "Shardis $THREADS shard(s) on port $PORT_shardis, redis-server $redis_version on port $PORT_redis;" \
    "$ROUNDS rounds of $N requests per run ($MSET_N MSETs, $TX_N transactions), $CLIENTS clients" >&2

for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="shardis redis"; else order="redis shardis"; fi
    echo "round $round/$ROUNDS ($order)" >&2
    for pipeline in 1 16; do
        for test in $TESTS; do
            for name in $order; do
                run_one "$name" "$test" "$pipeline"
            done
        done
    done
done
stop_server shardis
stop_server redis

echo
echo "### Throughput and latency (median of $ROUNDS rounds, $N requests per run, $CLIENTS clients, 16-byte values)"
echo
echo "MSET10: $MSET_N MSETs of 10 keys on spread slots per run; MULTI5: $TX_N MULTI/EXEC blocks of"
echo "5 commands per run over $TX_CONNS connections (req/s = transactions/s, latency = one write's"
echo "round trip, CPU µs per MSET / per transaction)."
echo
echo "| server | threads | test | pipeline | req/s | p50 ms | p99 ms | CPU µs/req |"
echo "|---|---|---|---|---|---|---|---|"
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for name in shardis redis; do
    for pipeline in 1 16; do
        for test in SET GET MSET10 MULTI5 LPUSH LPOP SADD HSET ZADD ZRANGE100; do
            rows=$(awk -F'\t' -v s="$name" -v t="$test" -v p="$pipeline" '$1 == s && $3 == t && $4 == p' "$RESULTS")
            [ -n "$rows" ] || continue
            rps=$(echo "$rows" | cut -f5 | median)
            p50=$(echo "$rows" | cut -f6 | median)
            p99=$(echo "$rows" | cut -f7 | median)
            cpu=$(echo "$rows" | cut -f8 | median)
            printf "| %s | %s | %s | %s | %.0f | %.3f | %.3f | %.2f |\n" \
                "$name" "$(threads_of "$name")" "$test" "$pipeline" "$rps" "$p50" "$p99" "$cpu"
        done
    done
done

# Memory: fresh servers, 1M keys key:NNNNNNNN with 16-byte values.
echo
echo "### Memory after loading $KEYS_RSS keys (key:NNNNNNNN, 16-byte values)"
echo
echo "| server | threads | RSS empty MiB | RSS loaded MiB | keys |"
echo "|---|---|---|---|---|"
for name in shardis redis; do
    start_server "$name"
    port_var="PORT_$name"
    pid_var="PID_$name"
    port=${!port_var}
    pid=${!pid_var}
    empty=$(rss_kb "$pid")
    awk -v n="$KEYS_RSS" 'BEGIN {
        for (i = 0; i < n; i++)
            printf "*3\r\n$3\r\nSET\r\n$12\r\nkey:%08d\r\n$16\r\n%016d\r\n", i, i
    }' | redis-cli -p "$port" --pipe >"$WORK/$name.pipe.log" 2>&1 || {
        echo "loading $name failed:" >&2
        cat "$WORK/$name.pipe.log" >&2
    }
    keys=$(redis-cli -p "$port" DBSIZE)
    loaded=$(rss_kb "$pid")
    printf "| %s | %s | %.1f | %.1f | %s |\n" "$name" "$(threads_of "$name")" \
        "$(echo "$empty / 1024" | awk '{ print $1 / $3 }')" \
        "$(echo "$loaded / 1024" | awk '{ print $1 / $3 }')" "$keys"
    stop_server "$name"
done

# Memory of small collections: HASHES_RSS hashes of 10 fields, ZSETS_RSS sorted sets of
# 100 members, each loaded into fresh servers through `redis-cli --pipe`.
echo
echo "### Memory of collections ($HASHES_RSS hashes of 10 fields; $ZSETS_RSS sorted sets of 100 members)"
echo
echo "| server | threads | data | RSS empty MiB | RSS loaded MiB | keys | encoding |"
echo "|---|---|---|---|---|---|---|"
for data in hashes zsets; do
    for name in shardis redis; do
        start_server "$name"
        port_var="PORT_$name"
        pid_var="PID_$name"
        port=${!port_var}
        pid=${!pid_var}
        empty=$(rss_kb "$pid")
        if [ "$data" = hashes ]; then
            awk -v n="$HASHES_RSS" 'BEGIN {
                for (i = 0; i < n; i++) {
                    printf "*22\r\n$4\r\nHSET\r\n$13\r\nhash:%08d\r\n", i
                    for (f = 0; f < 10; f++)
                        printf "$7\r\nfield:%d\r\n$8\r\n%08d\r\n", f, i + f
                }
            }' | redis-cli -p "$port" --pipe >"$WORK/$name.pipe.log" 2>&1
            probe=hash:00000000
        else
            awk -v n="$ZSETS_RSS" 'BEGIN {
                for (i = 0; i < n; i++) {
                    printf "*202\r\n$4\r\nZADD\r\n$13\r\nzset:%08d\r\n", i
                    for (m = 0; m < 100; m++) {
                        s = sprintf("%d", (i * 7 + m * 13) % 1000)
                        printf "$%d\r\n%s\r\n$10\r\nmember:%03d\r\n", length(s), s, m
                    }
                }
            }' | redis-cli -p "$port" --pipe >"$WORK/$name.pipe.log" 2>&1
            probe=zset:00000000
        fi
        keys=$(redis-cli -p "$port" DBSIZE)
        enc=$(redis-cli -p "$port" OBJECT ENCODING "$probe")
        loaded=$(rss_kb "$pid")
        printf "| %s | %s | %s | %.1f | %.1f | %s | %s |\n" "$name" "$(threads_of "$name")" "$data" \
            "$(echo "$empty / 1024" | awk '{ print $1 / $3 }')" \
            "$(echo "$loaded / 1024" | awk '{ print $1 / $3 }')" "$keys" "$enc"
        stop_server "$name"
    done
done

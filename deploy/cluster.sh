#!/usr/bin/env bash
# A local Shardis cluster to try cluster mode: MASTERS masters with REPLICAS replicas
# each, on consecutive ports from PORT, made by `redis-cli --cluster create`.
#
#   deploy/cluster.sh start     # 3 masters, 1 replica each, ports 7000-7005
#   deploy/cluster.sh stop      # stop them (their files stay in $DIR)
#   deploy/cluster.sh clean     # stop them and remove $DIR
#
# Settings (environment): MASTERS=3 REPLICAS=1 PORT=7000 THREADS=2
# BIN=target/release/shardis DIR=./cluster-demo. Bus ports are PORT+10000 and up.
# Then: redis-cli -c -p 7000, or redis-cli --cluster check 127.0.0.1:7000.
set -euo pipefail

MASTERS=${MASTERS:-3}
REPLICAS=${REPLICAS:-1}
PORT=${PORT:-7000}
THREADS=${THREADS:-2}
BIN=${BIN:-target/release/shardis}
DIR=${DIR:-./cluster-demo}
COUNT=$((MASTERS * (REPLICAS + 1)))

ports() { seq "$PORT" $((PORT + COUNT - 1)); }

# SIGTERM (each node saves, as redis-server does), then wait for them to exit.
stop() {
    local pids=()
    for p in $(ports); do
        if [ -f "$DIR/$p/pid" ]; then
            pids+=("$(cat "$DIR/$p/pid")")
            kill "${pids[-1]}" 2>/dev/null || true
            rm -f "$DIR/$p/pid"
        fi
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && echo "node $pid still running (see its log)" >&2
    done
    return 0
}

start() {
    command -v redis-cli >/dev/null || { echo "redis-cli is needed (apt-get install -y redis-tools)" >&2; exit 1; }
    [ -x "$BIN" ] || { echo "$BIN not found: cargo build --release first, or set BIN" >&2; exit 1; }
    [ "$MASTERS" -ge 3 ] || { echo "redis-cli --cluster create needs at least 3 masters" >&2; exit 1; }
    local nodes=()
    for p in $(ports); do
        mkdir -p "$DIR/$p"
        "$BIN" --port "$p" --threads "$THREADS" --dir "$DIR/$p" \
            --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-port $((p + 10000)) --appendonly yes \
            >"$DIR/$p/server.log" 2>&1 &
        echo $! >"$DIR/$p/pid"
        nodes+=("127.0.0.1:$p")
    done
    for p in $(ports); do
        for _ in $(seq 100); do
            redis-cli -p "$p" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
        redis-cli -p "$p" ping >/dev/null || { echo "node $p did not start: $DIR/$p/server.log" >&2; stop; exit 1; }
    done
    # A restarted cluster already knows its slots (nodes.conf): create only a new one.
    if redis-cli -p "$PORT" cluster info | grep -q "cluster_slots_assigned:0"; then
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$REPLICAS" --cluster-yes
    fi
    echo "cluster of $COUNT nodes on ports $PORT-$((PORT + COUNT - 1)); logs and data in $DIR"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    clean) stop; rm -rf "$DIR" ;;
    *) sed -n '2,11p' "$0"; exit 2 ;;
esac

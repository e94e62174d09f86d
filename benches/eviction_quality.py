#!/usr/bin/env python3
"""How well eviction keeps what a cache needs (issue 17): the hit ratio of a
read-through cache under a Zipf workload, Shardis against redis-server 7.0 in the
same run, for LRU, LFU and random eviction.

A client GETs keys drawn from a Zipf distribution (exponent ZIPF over KEYS keys) and
SETs each miss (VALUE bytes), in pipelined batches of 100. The server's limit is
LIMIT_MB above its start-up use, a fraction of what all the keys would take, so
what stays cached is what eviction chose. After WARMUP requests, the hit ratio over
the next OPS requests is reported. Shardis runs with several shards, so this also
shows what evicting per shard (see src/shard/evict.rs) costs in hit ratio.

Environment: SHARDIS_BIN [target/release/shardis], THREADS [2], KEYS [1000000],
ZIPF [0.99], VALUE [100], LIMIT_MB [24], WARMUP [300000], OPS [300000], SEED [1].
"""
import bisect, os, random, sys

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import Conn, free_port, start

BIN = os.environ.get("SHARDIS_BIN", "target/release/shardis")
THREADS = os.environ.get("THREADS", "2")
KEYS = int(os.environ.get("KEYS", "1000000"))
ZIPF = float(os.environ.get("ZIPF", "0.99"))
VALUE = int(os.environ.get("VALUE", "100"))
LIMIT_MB = int(os.environ.get("LIMIT_MB", "24"))
WARMUP = int(os.environ.get("WARMUP", "300000"))
OPS = int(os.environ.get("OPS", "300000"))
SEED = int(os.environ.get("SEED", "1"))


def zipf_cdf():
    weights = [1.0 / (i ** ZIPF) for i in range(1, KEYS + 1)]
    total, acc, cdf = sum(weights), 0.0, []
    for w in weights:
        acc += w / total
        cdf.append(acc)
    return cdf


def run(kind, policy, cdf):
    port = free_port()
    if kind == "shardis":
        cmd = [BIN, "--port", str(port), "--threads", THREADS]
    else:
        cmd = ["redis-server", "--port", str(port)]
    proc = start(cmd + ["--save", "", "--appendonly", "no", "--maxmemory-policy", policy], port)
    try:
        c = Conn(port)
        base = c.info("used_memory")
        c.pipeline([("CONFIG", "SET", "maxmemory", str(base + (LIMIT_MB << 20)))])
        rng = random.Random(SEED)
        # Keys are ranked, then scattered over names so rank does not follow slots.
        value = b"v" * VALUE
        hits = gets = 0
        for done in range(0, WARMUP + OPS, 100):
            keys = [f"key:{(bisect.bisect_left(cdf, rng.random()) * 2654435761) % (1 << 32)}"
                    for _ in range(100)]
            got = c.pipeline([("GET", k) for k in keys])
            misses = [k for k, v in zip(keys, got) if v is None]
            if misses:
                c.pipeline([("SET", k, value) for k in misses])
            if done >= WARMUP:
                gets += len(keys)
                hits += len(keys) - len(misses)
        keys_kept = int(c.call("DBSIZE"))
        return hits / gets, keys_kept
    finally:
        proc.kill()
        proc.wait()


def main():
    cdf = zipf_cdf()
    print(f"# Zipf {ZIPF} over {KEYS} keys of {VALUE} B, limit {LIMIT_MB} MiB above start-up, "
          f"{OPS} requests after {WARMUP}; Shardis {THREADS} shards")
    print("| policy | Shardis hit ratio (keys kept) | Redis hit ratio (keys kept) |")
    print("|---|---|---|")
    for policy in ["allkeys-lru", "allkeys-lfu", "allkeys-random"]:
        r = run("redis", policy, cdf)
        s = run("shardis", policy, cdf)
        print(f"| {policy} | {s[0]:.3f} ({s[1]}) | {r[0]:.3f} ({r[1]}) |", flush=True)


if __name__ == "__main__":
    main()

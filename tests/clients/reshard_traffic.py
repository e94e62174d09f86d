"""redis-py's RedisCluster while slots move: load keys of several types, then INCR
counters (following MOVED, ASK and TRYAGAIN) until the stop file appears, then read
everything back. Prints one line: what was done and what did not match."""

import os
import sys
import time

from redis.cluster import RedisCluster

port, stop = int(sys.argv[1]), sys.argv[2]
cluster = RedisCluster(host="127.0.0.1", port=port, cluster_error_retry_attempts=10)
KEYS = 600
for i in range(KEYS):
    cluster.set(f"str:{i}", f"v{i}")
    cluster.rpush(f"list:{i}", "a", "b", i)
    cluster.hset(f"hash:{i}", mapping={"f": i})
    if i % 3 == 0:
        cluster.expire(f"str:{i}", 3600)
print("loaded", flush=True)

incrs, errors, i = {}, 0, 0
while not os.path.exists(stop):
    key = f"counter:{i % 300}"
    try:
        cluster.incr(key)
        incrs[key] = incrs.get(key, 0) + 1
    except Exception as e:  # noqa: BLE001 - counted, shown below
        errors += 1
        print("error", type(e).__name__, e, file=sys.stderr, flush=True)
        time.sleep(0.05)
    i += 1

bad = 0


def check(ok, what):
    """Count a mismatch, and say which on stderr (the test shows it)."""
    global bad
    if not ok:
        bad += 1
        print("mismatch", what, file=sys.stderr, flush=True)


for i in range(KEYS):
    v = cluster.get(f"str:{i}")
    check(v == f"v{i}".encode(), f"str:{i} = {v!r}")
    v = cluster.lrange(f"list:{i}", 0, -1)
    check(v == [b"a", b"b", str(i).encode()], f"list:{i} = {v!r}")
    v = cluster.hget(f"hash:{i}", "f")
    check(v == str(i).encode(), f"hash:{i} f = {v!r}")
    ttl = cluster.ttl(f"str:{i}")
    check((ttl > 0) == (i % 3 == 0), f"str:{i} ttl = {ttl}")
for k, n in incrs.items():
    v = int(cluster.get(k) or 0)
    check(v == n, f"{k} = {v}, {n} INCRs acknowledged")
print(f"incrs={sum(incrs.values())} errors={errors} mismatches={bad}", flush=True)

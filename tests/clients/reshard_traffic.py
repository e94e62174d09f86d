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
for i in range(KEYS):
    bad += cluster.get(f"str:{i}") != f"v{i}".encode()
    bad += cluster.lrange(f"list:{i}", 0, -1) != [b"a", b"b", str(i).encode()]
    bad += cluster.hget(f"hash:{i}", "f") != str(i).encode()
    bad += (cluster.ttl(f"str:{i}") > 0) != (i % 3 == 0)
bad += sum(int(cluster.get(k) or 0) != n for k, n in incrs.items())
print(f"incrs={sum(incrs.values())} errors={errors} mismatches={bad}", flush=True)

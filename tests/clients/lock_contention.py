"""redis-py's Lock under contention against a server on the port given as argv[1].

Lock.acquire is SET NX PX; release, extend and reacquire are Lua scripts that
redis-py registers with EVALSHA and falls back to EVAL on NOSCRIPT. Threads
increment a counter with a read-modify-write that is only correct under the
lock, so any lost or doubled grant shows in the final count. Prints
`counter=<n> extended=<n> reacquired=<n> stolen=<n>` and exits 0.
"""
import sys
import threading

import redis
from redis.exceptions import LockNotOwnedError

port = int(sys.argv[1])
THREADS, ROUNDS = 4, 40
pool = redis.ConnectionPool(host="127.0.0.1", port=port)
setup = redis.Redis(connection_pool=pool)
setup.delete("counter", "lock:{c}", "lock:{s}", "lock:{f}")
counts = {"extended": 0, "reacquired": 0}
guard = threading.Lock()


def worker():
    r = redis.Redis(connection_pool=pool)
    for i in range(ROUNDS):
        lock = r.lock("lock:{c}", timeout=10, blocking_timeout=30, sleep=0.001)
        assert lock.acquire(), "no lock within 30 s"
        try:
            v = int(r.get("counter") or 0)
            if i % 10 == 0:
                assert lock.extend(5)
                assert lock.reacquire()
                with guard:
                    counts["extended"] += 1
                    counts["reacquired"] += 1
            r.set("counter", v + 1)
        finally:
            lock.release()


threads = [threading.Thread(target=worker) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()

# A lock taken over by someone else cannot be released or extended by its old owner.
r = redis.Redis(connection_pool=pool)
a = r.lock("lock:{s}", timeout=10)
assert a.acquire()
r.set("lock:{s}", "someone else")
stolen = 0
try:
    a.extend(5)
except LockNotOwnedError:
    stolen += 1
try:
    a.release()
except LockNotOwnedError:
    stolen += 1
# SCRIPT FLUSH: redis-py's EVALSHA gets NOSCRIPT and falls back to EVAL.
r.script_flush()
b = r.lock("lock:{f}", timeout=10)
assert b.acquire()
b.release()
print(
    "counter=%s extended=%d reacquired=%d stolen=%d"
    % (r.get("counter").decode(), counts["extended"], counts["reacquired"], stolen)
)

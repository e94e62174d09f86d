"""redis-py's Sentinel client against one Sentinel: find the master, write through
it, read the write back from a replica it lists. Prints one line for the test to
compare."""

import sys
import time

from redis.sentinel import Sentinel

port = int(sys.argv[1])
sentinel = Sentinel([("127.0.0.1", port)], socket_timeout=2)
_, master_port = sentinel.discover_master("mymaster")
replicas = sentinel.discover_slaves("mymaster")
master = sentinel.master_for("mymaster", socket_timeout=2)
master.set("via-sentinel", "yes")
replica = sentinel.slave_for("mymaster", socket_timeout=2)
value = None
for _ in range(100):
    value = replica.get("via-sentinel")
    if value == b"yes":
        break
    time.sleep(0.1)
print(f"master={master_port} replicas_listed={len(replicas) > 0} read={value.decode()}")

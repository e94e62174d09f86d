"""redis-py's RedisCluster against a cluster: write 1000 keys spread over every
node, read them back (following MOVED), and a pipeline. Prints one line."""

import sys

from redis.cluster import RedisCluster

cluster = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]))
for i in range(1000):
    cluster.set(f"key:{i}", i)
read = sum(1 for i in range(1000) if cluster.get(f"key:{i}") == str(i).encode())
nodes = {cluster.get_node_from_key(f"key:{i}").port for i in range(1000)}
pipe = cluster.pipeline()
for i in range(100):
    pipe.incr(f"counter:{i}")
pipe.execute()
counted = sum(int(cluster.get(f"counter:{i}")) for i in range(100))
print(f"read={read} nodes={len(nodes)} counted={counted}")

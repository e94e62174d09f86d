"""Slot migration speed: a 3-master cluster of each kind (Shardis, redis-server) in
the same run, loaded with the same keys by redis-benchmark --cluster, then
`redis-cli --cluster reshard` moves every slot of one master to another. Prints the
keys moved, the seconds taken and the keys per second, and the CPU seconds the two
nodes involved spent, for each kind.

    python3 benches/reshard.py [KEYS] [PIPELINE] [THREADS]

KEYS (default 1,000,000) is what redis-benchmark writes (random names, so a few
repeat); PIPELINE is redis-cli's --cluster-pipeline (keys per MIGRATE, default 10,
redis-cli's own default); THREADS is Shardis's shards per node (default 2)."""
import os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import cpu_s, free_port, start

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARDIS = os.path.join(ROOT, "target/release/shardis")
KEYS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
PIPELINE = sys.argv[2] if len(sys.argv) > 2 else "10"
THREADS = sys.argv[3] if len(sys.argv) > 3 else "2"


def cli(*args):
    return subprocess.run(["redis-cli", *args], capture_output=True, text=True, check=True).stdout


def node(kind, tmp):
    port, bus = free_port(), free_port()
    d = os.path.join(tmp, f"{kind}-{port}")
    os.makedirs(d)
    common = ["--port", str(port), "--cluster-enabled", "yes", "--cluster-port", str(bus),
              "--dir", d, "--save", "", "--appendonly", "no"]
    if kind == "shardis":
        cmd = [SHARDIS, "--threads", THREADS, *common]
    else:
        cmd = ["redis-server", *common]
    return port, start(cmd, port)


def run(kind):
    tmp = tempfile.mkdtemp(prefix=f"reshard-{kind}-")
    nodes = [node(kind, tmp) for _ in range(3)]
    try:
        ports = [p for p, _ in nodes]
        cli("--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-yes")
        for _ in range(200):
            if all("cluster_state:ok" in cli("-p", str(p), "cluster", "info") for p in ports):
                break
            time.sleep(0.1)
        subprocess.run(["redis-benchmark", "--cluster", "-p", str(ports[0]), "-t", "set",
                        "-n", str(KEYS), "-r", str(KEYS * 100), "-P", "32", "-c", "20", "-q"],
                       capture_output=True, check=True)
        src, dst = ports[0], ports[1]
        moved = int(cli("-p", str(src), "dbsize"))
        ids = [cli("-p", str(p), "cluster", "myid").strip() for p in (src, dst)]
        before = [cpu_s(proc.pid) for _, proc in nodes[:2]]
        t0 = time.time()
        cli("--cluster", "reshard", f"127.0.0.1:{src}", "--cluster-from", ids[0],
            "--cluster-to", ids[1], "--cluster-slots", "5461", "--cluster-yes",
            "--cluster-pipeline", PIPELINE)
        took = time.time() - t0
        cpu = sum(cpu_s(proc.pid) for _, proc in nodes[:2]) - sum(before)
        left = int(cli("-p", str(src), "dbsize"))
        print(f"{kind:8} moved {moved - left:>8} keys in {took:6.2f} s: "
              f"{(moved - left) / took:>9.0f} keys/s, {cpu:6.2f} CPU s on the two nodes")
    finally:
        for _, proc in nodes:
            proc.kill(); proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for kind in ("redis", "shardis", "redis", "shardis"):
        run(kind)

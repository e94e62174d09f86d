#!/usr/bin/env python3
"""Eviction under load (issue 17): SET throughput and server CPU per request with
`maxmemory` set, against redis-server 7.0 in the same run, rounds alternating.

Three settings per server:
  nolimit   no maxmemory (the baseline);
  under     maxmemory far above the data set (the check's cost on every command);
  evicting  maxmemory LIMIT_MB with POLICY, while redis-benchmark writes 3x that
            (every SET past the limit evicts).
Each: redis-benchmark -t set -n N -r KEYSPACE -d SIZE -c 50, at P1 and P16.
Reported: requests/s and server CPU µs per request (median of ROUNDS), and for
`evicting` the final used_memory over maxmemory.

Environment: SHARDIS_BIN [target/release/shardis], THREADS [2], RUNTIME [auto],
POLICY [allkeys-lru], LIMIT_MB [64], SIZE [100], N [300000], ROUNDS [3].
"""
import os, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import cpu_s, free_port, start

BIN = os.environ.get("SHARDIS_BIN", "target/release/shardis")
THREADS = os.environ.get("THREADS", "2")
RUNTIME = os.environ.get("RUNTIME", "auto")
POLICY = os.environ.get("POLICY", "allkeys-lru")
LIMIT_MB = int(os.environ.get("LIMIT_MB", "64"))
SIZE = int(os.environ.get("SIZE", "100"))
N = int(os.environ.get("N", "300000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
# Keys enough for three times the limit (each key costs its value plus ~60 bytes).
KEYSPACE = 3 * LIMIT_MB * (1 << 20) // (SIZE + 60)


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                          text=True).stdout.strip()


def info(port, field):
    for line in cli(port, "INFO", "memory").splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":")[1])
    return 0


def server(kind, setting):
    port = free_port()
    if kind == "shardis":
        cmd = [BIN, "--port", str(port), "--threads", THREADS, "--runtime", RUNTIME]
    else:
        cmd = ["redis-server", "--port", str(port)]
    cmd += ["--save", "", "--appendonly", "no", "--maxmemory-policy", POLICY]
    proc = start(cmd, port)
    if setting == "under":
        cli(port, "CONFIG", "SET", "maxmemory", str(64 << 30))
    elif setting == "evicting":
        base = info(port, "used_memory")
        cli(port, "CONFIG", "SET", "maxmemory", str(base + (LIMIT_MB << 20)))
    return proc, port


def run(kind, setting, pipeline):
    proc, port = server(kind, setting)
    try:
        if setting == "evicting":
            # Fill to the limit first, so the measured run evicts throughout.
            subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-n",
                            str(KEYSPACE), "-r", str(KEYSPACE), "-d", str(SIZE), "-P",
                            "16", "-q"], capture_output=True)
        before = cpu_s(proc.pid)
        t = time.time()
        subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-n", str(N),
                        "-r", str(KEYSPACE), "-d", str(SIZE), "-c", "50", "-P",
                        str(pipeline), "-q"], capture_output=True)
        wall = time.time() - t
        cpu = cpu_s(proc.pid) - before
        over = info(port, "used_memory") - info(port, "maxmemory")
        return N / wall, cpu * 1e6 / N, over
    finally:
        proc.kill()
        proc.wait()


def main():
    print(f"# {POLICY}, limit {LIMIT_MB} MiB, values {SIZE} B, {KEYSPACE} keys, "
          f"Shardis {THREADS} shards ({RUNTIME}), {ROUNDS} rounds, medians")
    print("| setting | P | Shardis req/s (CPU µs) | Redis req/s (CPU µs) | "
          "over maxmemory at end (Shardis / Redis) |")
    print("|---|---|---|---|---|")
    for setting in ["nolimit", "under", "evicting"]:
        for p in [1, 16]:
            res = {"shardis": [], "redis": []}
            for _ in range(ROUNDS):
                for kind in ["redis", "shardis"]:
                    res[kind].append(run(kind, setting, p))
            med = {k: [statistics.median(x[i] for x in v) for i in range(3)]
                   for k, v in res.items()}
            over = (f"{int(med['shardis'][2])} / {int(med['redis'][2])}"
                    if setting == "evicting" else "-")
            print(f"| {setting} | {p} | {med['shardis'][0]/1000:.1f}k "
                  f"({med['shardis'][1]:.1f}) | {med['redis'][0]/1000:.1f}k "
                  f"({med['redis'][1]:.1f}) | {over} |", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Lazy free (issue 17): how long UNLINK and DEL of one big set take to answer, and how
long a PING waits right after, against redis-server 7.0 in the same run.

For each server and each of DEL and UNLINK: a set of MEMBERS members is built with
pipelined SADDs of 1000, then the command's round trip is timed from the client,
then 200 PINGs are sent one by one and the slowest is reported (it shows whether
the server still frees the set on its main thread). Medians of ROUNDS.

Environment: SHARDIS_BIN [target/release/shardis], THREADS [2], RUNTIME [auto],
MEMBERS [5000000], ROUNDS [3].
"""
import os, statistics, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import Conn, encode, free_port, start

BIN = os.environ.get("SHARDIS_BIN", "target/release/shardis")
THREADS = os.environ.get("THREADS", "2")
RUNTIME = os.environ.get("RUNTIME", "auto")
MEMBERS = int(os.environ.get("MEMBERS", "5000000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))


def build(c, n):
    batch = 1000
    for start_at in range(0, n, batch * 50):
        payload = b"".join(
            encode("SADD", "big", *(f"m:{i}" for i in range(j, min(j + batch, n))))
            for j in range(start_at, min(start_at + batch * 50, n), batch))
        c.s.sendall(payload)
        for _ in range(start_at, min(start_at + batch * 50, n), batch):
            c.read()


def one(kind, command):
    port = free_port()
    if kind == "shardis":
        cmd = [BIN, "--port", str(port), "--threads", THREADS, "--runtime", RUNTIME]
    else:
        cmd = ["redis-server", "--port", str(port)]
    proc = start(cmd + ["--save", "", "--appendonly", "no"], port)
    try:
        c = Conn(port)
        build(c, MEMBERS)
        t = time.perf_counter()
        c.call(command, "big")
        answer = time.perf_counter() - t
        worst = 0.0
        for _ in range(200):
            t = time.perf_counter()
            c.call("PING")
            worst = max(worst, time.perf_counter() - t)
        return answer * 1000, worst * 1000
    finally:
        proc.kill()
        proc.wait()


def main():
    print(f"# a set of {MEMBERS} members; Shardis {THREADS} shards ({RUNTIME}); "
          f"medians of {ROUNDS}; ms")
    print("| command | Shardis answer | Shardis slowest PING after | Redis answer | "
          "Redis slowest PING after |")
    print("|---|---|---|---|---|")
    for command in ["DEL", "UNLINK"]:
        res = {"shardis": [], "redis": []}
        for _ in range(ROUNDS):
            for kind in ["redis", "shardis"]:
                res[kind].append(one(kind, command))
        m = {k: [statistics.median(x[i] for x in v) for i in range(2)] for k, v in res.items()}
        print(f"| {command} | {m['shardis'][0]:.2f} | {m['shardis'][1]:.2f} | "
              f"{m['redis'][0]:.2f} | {m['redis'][1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()

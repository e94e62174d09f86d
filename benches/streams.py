#!/usr/bin/env python3
"""Streams (issue 18): server CPU per call and throughput of XADD and XRANGE, and the
memory a stream of small entries takes, against redis-server 7.0 in the same run.

Workloads, each driven by redis-benchmark (50 clients) with the two servers started
in alternating order every round (`set`, a plain `SET k v`, is the baseline: what any
request costs on each server):
- `xadd`: `XADD s MAXLEN ~ 10000 * f1 v f2 v f3 v` at pipeline P16 and P1.
- `xrange`: `XRANGE s - + COUNT 100` on a stream of 10,000 such entries, P16 and P1.
Then `memory`: used_memory grown by ENTRIES entries of three small fields added with
pipelined `XADD * ...` (each server fresh).

Shardis runs one shard (one key: a second shard would only idle). CPU is the server
process's utime + stime over the benchmark, divided by the requests sent. Figures are
medians of ROUNDS.

Environment: SHARDIS_BIN [target/release/shardis], RUNTIME [auto], N [200000],
ROUNDS [3], ENTRIES [1000000].
"""
import os, statistics, subprocess, sys

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import Conn, cpu_s, encode, free_port, start

BIN = os.environ.get("SHARDIS_BIN", "target/release/shardis")
RUNTIME = os.environ.get("RUNTIME", "auto")
N = int(os.environ.get("N", "200000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
ENTRIES = int(os.environ.get("ENTRIES", "1000000"))

XADD = ["XADD", "s", "MAXLEN", "~", "10000", "*", "f1", "v", "f2", "v", "f3", "v"]
XRANGE = ["XRANGE", "s", "-", "+", "COUNT", "100"]
# The same harness on a plain SET, to tell the streams' own cost from the request path's.
SET = ["SET", "k", "v"]


def server(kind):
    port = free_port()
    if kind == "shardis":
        cmd = [BIN, "--port", str(port), "--threads", "1", "--runtime", RUNTIME]
    else:
        cmd = ["redis-server", "--port", str(port)]
    return start(cmd + ["--save", "", "--appendonly", "no"], port), port


def fill(c, n, batch=1000):
    sent = 0
    while sent < n:
        k = min(batch, n - sent)
        c.s.sendall(b"".join(encode("XADD", "s", "*", "f1", "v", "f2", "v", "f3", "v") for _ in range(k)))
        for _ in range(k):
            c.read()
        sent += k


def bench(kind, command, pipeline, prefill):
    proc, port = server(kind)
    try:
        c = Conn(port)
        if prefill:
            fill(c, prefill)
        before = cpu_s(proc.pid)
        out = subprocess.run(
            ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(N), "-P", str(pipeline), "-q", "--csv"]
            + command,
            capture_output=True, text=True, check=True).stdout
        cpu = cpu_s(proc.pid) - before
        rps = float(out.strip().splitlines()[-1].split(",")[1].strip('"'))
        return rps, cpu * 1e6 / N
    finally:
        proc.kill()
        proc.wait()


def memory(kind):
    proc, port = server(kind)
    try:
        c = Conn(port)
        base = c.info("used_memory")
        fill(c, ENTRIES)
        return (c.info("used_memory") - base) / ENTRIES
    finally:
        proc.kill()
        proc.wait()


def main():
    rows = {}
    for r in range(ROUNDS):
        order = ["shardis", "redis"] if r % 2 == 0 else ["redis", "shardis"]
        for name, command, prefill in [("set", SET, 0), ("xadd", XADD, 0), ("xrange", XRANGE, 10000)]:
            for p in (16, 1):
                for kind in order:
                    rows.setdefault((name, p, kind), []).append(bench(kind, command, p, prefill))
    print("| workload | server | req/s | CPU µs/call |")
    print("|---|---|---|---|")
    for (name, p, kind), vals in sorted(rows.items()):
        rps = statistics.median(v[0] for v in vals)
        cpu = statistics.median(v[1] for v in vals)
        print(f"| {name} P{p} | {kind} | {rps:,.0f} | {cpu:.2f} |")
    for kind in ("shardis", "redis"):
        per = statistics.median(memory(kind) for _ in range(max(1, ROUNDS // 2)))
        print(f"memory, {ENTRIES} entries of 3 small fields, {kind}: {per:.1f} bytes per entry")


if __name__ == "__main__":
    main()

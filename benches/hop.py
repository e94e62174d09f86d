#!/usr/bin/env python3
"""Cost of a hop, and of an unpipelined request, beside redis-server in the same run.

One redis-benchmark connection sends `SET {tag}:__rand_int__ v` (P16 and P1) for two
tags, one owned by each of Shardis's two shards: whichever shard accepted the
connection, one tag is local and the other remote (INFO shards' hops_served tells
which, or moved_in when the connection moved to the remote tag's core after its first
reads: connection affinity, src/runtime/connection.rs). Then 50 connections at P1
(SET and GET, keys spread over both shards). For each workload and server:
requests/s and server CPU microseconds per request (utime+stime of the process from
/proc around the run), median of ROUNDS rounds, the servers alternating which goes
first.

usage: benches/hop.py [shardis-binary]   env: RUNTIMES="io_uring epoll" ROUNDS=3 N=100000
"""
import os, re, statistics, subprocess, sys
from benchlib import cpu_s, free_port, start, tag_on

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/shardis"
RUNTIMES = os.environ.get("RUNTIMES", "io_uring epoll").split()
ROUNDS = int(os.environ.get("ROUNDS", "3"))
N = int(os.environ.get("N", "100000"))








def shard_counts(port):
    """Hops served and connections moved in, summed over the shards."""
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "shards"], capture_output=True, text=True).stdout
    hops = sum(int(x) for x in re.findall(r"hops_served=(\d+)", out))
    moved = sum(int(x) for x in re.findall(r"moved_in=(\d+)", out))
    return hops, moved


def bench(port, pid, args):
    c0 = cpu_s(pid)
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-q", "--csv"] + args, capture_output=True, text=True).stdout
    c1 = cpu_s(pid)
    rps = float(out.strip().splitlines()[-1].split(",")[1].strip('"'))
    n = int(args[args.index("-n") + 1])
    return rps, (c1 - c0) * 1e6 / n


def c1_args(p, tag):
    n = N if p == "16" else N // 5
    return ["-c", "1", "-P", p, "-n", str(n), "-r", "100000", "SET", f"{{{tag}}}:__rand_int__", "v"]


def main():
    tags = [tag_on(0), tag_on(1)]
    results = {}
    add = lambda key, v: results.setdefault(key, []).append(v)
    for rt in RUNTIMES:
        sp, rp = free_port(), free_port()
        sh = start([BIN, "--port", str(sp), "--threads", "2", "--runtime", rt, "--save", "", "--appendonly", "no"], sp)
        rd = start(["redis-server", "--port", str(rp), "--save", "", "--appendonly", "no"], rp)
        try:
            for r in range(ROUNDS):
                for p in ("16", "1"):
                    # Each run is a new connection, accepted by either shard: run the two
                    # tags in turn until both a local and a remote run are measured.
                    need, attempt = {"local", "remote"}, 0
                    while need and attempt < 8:
                        args = c1_args(p, tags[attempt % 2])
                        attempt += 1
                        hops0, moved0 = shard_counts(sp)
                        rps, us = bench(sp, sh.pid, args)
                        hops1, moved1 = shard_counts(sp)
                        # A P16 run that hops sends n/16 of them; INFO itself hops once.
                        # A connection that moved to its keys' core (connection
                        # affinity) hopped only until it moved: remote too.
                        far = hops1 - hops0 > int(args[5]) // 32 or moved1 > moved0
                        kind = "remote" if far else "local"
                        if kind in need:
                            need.discard(kind)
                            add((rt, "shardis", f"P{p} c1 {kind}"), (rps, us))
                    add((rt, "redis", f"P{p} c1"), bench(rp, rd.pid, c1_args(p, tags[0])))
                for t in ("set", "get"):
                    args = ["-c", "50", "-P", "1", "-n", str(N), "-r", "100000", "-t", t]
                    order = [("shardis", sp, sh), ("redis", rp, rd)]
                    for srv, port, proc in order if r % 2 == 0 else order[::-1]:
                        add((rt, srv, f"P1 c50 {t.upper()}"), bench(port, proc.pid, args))
        finally:
            sh.kill(); rd.kill(); sh.wait(); rd.wait()
    print("| workload | server | req/s | CPU µs/req |")
    print("|---|---|---|---|")
    for (rt, srv, label), v in sorted(results.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
        rps = statistics.median(x[0] for x in v)
        us = statistics.median(x[1] for x in v)
        who = f"shardis {rt}" if srv == "shardis" else f"redis (with {rt} run)"
        print(f"| {label} | {who} | {rps:,.0f} | {us:.2f} |")


main()

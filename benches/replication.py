#!/usr/bin/env python3
"""Replication cost: Shardis master/replica pairs beside redis-server pairs in the same
run (issue 13's benchmark).

Measured per pair (both ends the same server, Shardis with THREADS shards each):
  full sync   time from REPLICAOF until the replica's link is up and its offset is the
              master's, with KEYS keys of 16 bytes, diskless (EOF transfer) and disk
              (through a file); Redis runs with repl-diskless-sync-delay 0.
  CPU         master CPU µs per SET (redis-benchmark, 50 clients, P16) with no replica
              and with one; the overhead is the difference.
  lag         bytes the replica is behind when the load stops, and the time it takes to
              catch up.
Rounds alternate the servers' order; medians are printed as a markdown table.

Environment: THREADS (2), KEYS (1000000), REQUESTS (1000000), ROUNDS (3),
SHARDIS_BIN (target/release/shardis), RUNTIME (auto).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_s, free_port, start  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREADS = os.environ.get("THREADS", "2")
KEYS = int(os.environ.get("KEYS", "1000000"))
REQUESTS = int(os.environ.get("REQUESTS", "1000000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SHARDIS = os.environ.get("SHARDIS_BIN", os.path.join(ROOT, "target/release/shardis"))
RUNTIME = os.environ.get("RUNTIME", "auto")


def server(kind, extra=()):
    port = free_port()
    d = tempfile.mkdtemp(prefix=f"repl-bench-{kind}-")
    if kind == "shardis":
        argv = [SHARDIS, "--threads", THREADS, "--runtime", RUNTIME]
    else:
        argv = ["redis-server", "--repl-diskless-sync-delay", "0"]
    argv += ["--port", str(port), "--save", "", "--appendonly", "no", "--dir", d, *extra]
    return start(argv, port), port


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *map(str, args)],
                          capture_output=True, text=True).stdout.strip()


def info(port, field):
    for line in cli(port, "INFO", "replication").splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def fill(port):
    lines = "".join(f"SET key:{i:012d} {'v' * 16}\r\n" for i in range(KEYS))
    subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=lines.encode(),
                   capture_output=True, check=True)


def synced(master, replica, timeout=600):
    end = time.time() + timeout
    while time.time() < end:
        if info(replica, "master_link_status") == "up":
            mo = info(master, "master_repl_offset")
            if mo and mo == info(replica, "master_repl_offset"):
                return True
        time.sleep(0.005)
    return False


def full_sync(kind, mport, diskless):
    cli(mport, "CONFIG", "SET", "repl-diskless-sync", "yes" if diskless else "no")
    proc, rport = server(kind)
    try:
        t0 = time.time()
        cli(rport, "REPLICAOF", "127.0.0.1", mport)
        if not synced(mport, rport):
            raise SystemExit(f"{kind}: the replica never synced")
        return time.time() - t0
    finally:
        proc.kill(); proc.wait()


def bench_set(port):
    subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-n", str(REQUESTS),
                    "-P", "16", "-c", "50", "-r", "1000000", "-q"],
                   capture_output=True, check=True)


def cpu_per_request(mpid, mport):
    c0 = cpu_s(mpid)
    bench_set(mport)
    return (cpu_s(mpid) - c0) * 1e6 / REQUESTS


def run(kind):
    out = {}
    mproc, mport = server(kind)
    try:
        fill(mport)
        out["full sync, diskless, s"] = full_sync(kind, mport, True)
        out["full sync, disk, s"] = full_sync(kind, mport, False)
        out["master CPU per SET, no replica, µs"] = cpu_per_request(mproc.pid, mport)
        rproc, rport = server(kind)
        try:
            cli(rport, "REPLICAOF", "127.0.0.1", mport)
            synced(mport, rport)
            out["master CPU per SET, one replica, µs"] = cpu_per_request(mproc.pid, mport)
            behind = int(info(mport, "master_repl_offset")) - int(info(rport, "master_repl_offset"))
            t0 = time.time()
            synced(mport, rport)
            out["lag when the load stops, bytes"] = behind
            out["catch-up time, ms"] = (time.time() - t0) * 1000
        finally:
            rproc.kill(); rproc.wait()
    finally:
        mproc.kill(); mproc.wait()
    return out


def main():
    results = {}
    for r in range(ROUNDS):
        for kind in (["shardis", "redis"] if r % 2 == 0 else ["redis", "shardis"]):
            for k, v in run(kind).items():
                results.setdefault((k, kind), []).append(v)
    print(f"| measure | Shardis ({THREADS} shards) | Redis |")
    print("|---|---|---|")
    for k in dict.fromkeys(k for k, _ in results):
        s = statistics.median(results[(k, "shardis")])
        r = statistics.median(results[(k, "redis")])
        print(f"| {k} | {s:.3f} | {r:.3f} |")


if __name__ == "__main__":
    main()

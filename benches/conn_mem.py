#!/usr/bin/env python3
"""Memory per idle connection: RSS of the server before and after N clients connect,
each having sent one PING (so its connection is set up and has been served), for
Shardis and redis-server started side by side.

usage: benches/conn_mem.py [shardis-binary] [N]   (env: RUNTIME=epoll|io_uring)
"""
import os, socket, sys, time

from benchlib import free_port, start

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def measure(cmd, port, n):
    proc = start(cmd, port)
    try:
        before = rss_kib(proc.pid)
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"PING\r\n")
            socks.append(s)
        for s in socks:
            assert s.recv(16) == b"+PONG\r\n"
        time.sleep(float(os.environ.get("SETTLE", "1.0")))
        after = rss_kib(proc.pid)
        for s in socks:
            s.close()
        return before, after
    finally:
        proc.kill(); proc.wait()

def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/shardis"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rt = os.environ.get("RUNTIME", "auto")
    p = free_port()
    sh = measure([binary, "--port", str(p), "--threads", "2", "--save", "", "--runtime", rt, "--maxclients", str(n + 100)], p, n)
    p = free_port()
    rd = measure(["redis-server", "--port", str(p), "--save", "", "--maxclients", str(n + 100)], p, n)
    for name, (b, a) in (("shardis (" + rt + ")", sh), ("redis-server", rd)):
        print(f"{name:22} {n} idle clients: RSS {b} KiB -> {a} KiB, {(a - b) / n:.1f} KiB per connection")

main()

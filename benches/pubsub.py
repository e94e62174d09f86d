#!/usr/bin/env python3
"""Pub/Sub cost: Shardis beside redis-server 7.0 in the same run (issue 12's targets).

Two workloads, each measured as server CPU (utime + stime from /proc) per message:
  cross-core  one subscriber and one publisher sending PUBLISH in pipelines of 16; on
              Shardis the subscriber's connection is on another core than the
              publisher's (read from CLIENT INFO's shard=), so every message hops.
              CPU µs per published message.
  fan-out     SUBSCRIBERS subscribers of one channel (spread over every core by the
              kernel), one publisher (P16); CPU µs per *delivered* message.
Subscribers are drained by one thread with a selector, so no output buffer fills.
Rounds alternate the servers' order; medians are printed as a markdown table.

Environment: THREADS (Shardis shards, 2), N (cross-core messages, 200000),
FANOUT_N (fan-out messages, 2000), SUBSCRIBERS (1000), ROUNDS (3),
SHARDIS_BIN (target/release/shardis), RUNTIME (auto).
"""
import os
import selectors
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Conn, cpu_s, encode, free_port, start  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREADS = int(os.environ.get("THREADS", "2"))
N = int(os.environ.get("N", "200000"))
FANOUT_N = int(os.environ.get("FANOUT_N", "2000"))
SUBSCRIBERS = int(os.environ.get("SUBSCRIBERS", "1000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SHARDIS = os.environ.get("SHARDIS_BIN", os.path.join(ROOT, "target/release/shardis"))
RUNTIME = os.environ.get("RUNTIME", "auto")


def core_of(c):
    info = c.call("CLIENT", "INFO") or b""
    for field in info.split():
        if field.startswith(b"shard="):
            return int(field[6:])
    return None


class Drain:
    """Reads every subscriber socket until `stop`, counting bytes."""

    def __init__(self, socks):
        self.sel = selectors.DefaultSelector()
        for s in socks:
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
        self.bytes = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            for key, _ in self.sel.select(0.05):
                try:
                    self.bytes += len(key.fileobj.recv(1 << 20))
                except BlockingIOError:
                    pass

    def until(self, nbytes, timeout=120):
        end = time.time() + timeout
        while self.bytes < nbytes and time.time() < end:
            time.sleep(0.01)
        self.stop = True
        self.t.join()


def publish(c, n, channel=b"ch", msg=b"x" * 16, pipeline=16):
    batch = encode(b"PUBLISH", channel, msg) * pipeline
    for _ in range(n // pipeline):
        c.s.sendall(batch)
        for _ in range(pipeline):
            c.read()


def subscriber(port):
    c = Conn(port)
    c.call("SUBSCRIBE", "ch")
    return c


def message_bytes(channel=b"ch", msg=b"x" * 16):
    return len(b"*3\r\n$7\r\nmessage\r\n") + len(b"$%d\r\n%s\r\n" % (len(channel), channel)) + len(
        b"$%d\r\n%s\r\n" % (len(msg), msg)
    )


def cross_core(port, pid):
    sub = Conn(port)
    pub = Conn(port)
    if core_of(sub) is not None:
        while core_of(pub) == core_of(sub):
            pub = Conn(port)
    sub.call("SUBSCRIBE", "ch")
    drain = Drain([sub.s])
    publish(pub, 2000)  # warm-up
    c0 = cpu_s(pid)
    publish(pub, N)
    drain.until(message_bytes() * (N + 2000))
    c1 = cpu_s(pid)
    return (c1 - c0) * 1e6 / N


def fan_out(port, pid):
    subs = [subscriber(port) for _ in range(SUBSCRIBERS)]
    pub = Conn(port)
    drain = Drain([s.s for s in subs])
    c0 = cpu_s(pid)
    publish(pub, FANOUT_N)
    drain.until(message_bytes() * FANOUT_N * SUBSCRIBERS)
    c1 = cpu_s(pid)
    for s in subs:
        s.s.close()
    return (c1 - c0) * 1e6 / (FANOUT_N * SUBSCRIBERS)


def server(name):
    port = free_port()
    if name == "shardis":
        argv = [SHARDIS, "--port", str(port), "--threads", str(THREADS), "--save", "",
                "--appendonly", "no", "--runtime", RUNTIME, "--maxclients", "10000"]
    else:
        argv = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                "--maxclients", "10000"]
    return start(argv, port), port


def main():
    results = {}
    for r in range(ROUNDS):
        order = ["shardis", "redis"] if r % 2 == 0 else ["redis", "shardis"]
        for work, fn in [("cross-core PUBLISH P16, µs/message", cross_core),
                         (f"fan-out to {SUBSCRIBERS}, µs/delivered message", fan_out)]:
            for name in order:
                proc, port = server(name)
                try:
                    results.setdefault((work, name), []).append(fn(port, proc.pid))
                finally:
                    proc.kill()
                    proc.wait()
    print(f"| workload | Shardis ({THREADS} shards) | Redis | ratio |")
    print("|---|---|---|---|")
    for work in dict.fromkeys(w for w, _ in results):
        s = statistics.median(results[(work, "shardis")])
        r = statistics.median(results[(work, "redis")])
        print(f"| {work} | {s:.3f} | {r:.3f} | {s / r:.2f}x |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Active expiry against redis-server 7.0 in the same run: how much of a mass of keys
with short TTLs is still held (DBSIZE counts expired keys the cycles have not
reclaimed yet) and INFO's expired_stale_perc, at fixed times after writing.

KEYS keys are written with SET ... PX <random 500-1500 ms>, pipelined; then every
STEP seconds until WAIT seconds: DBSIZE, expired_keys, expired_stale_perc. Each server
starts in an empty scratch directory (no dump.rdb is loaded). With AT_ONCE=1 every
key expires at the same instant (SET ... PXAT, LEAD seconds after the start, which
must leave time to write them) and the times count from that instant: how fast a
mass expiry is reclaimed.

Environment: SHARDIS_BIN [target/release/shardis], THREADS [2], RUNTIME [auto],
KEYS [200000], STEP [0.5], WAIT [4], EFFORT (active-expire-effort) [1], AT_ONCE [0],
LEAD [8].
"""
import os, random, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from benchlib import Conn, encode, free_port, start

BIN = os.environ.get("SHARDIS_BIN", "target/release/shardis")
THREADS = os.environ.get("THREADS", "2")
RUNTIME = os.environ.get("RUNTIME", "auto")
KEYS = int(os.environ.get("KEYS", "200000"))
STEP = float(os.environ.get("STEP", "0.5"))
WAIT = float(os.environ.get("WAIT", "4"))
EFFORT = os.environ.get("EFFORT", "1")
AT_ONCE = os.environ.get("AT_ONCE", "0") == "1"
LEAD = float(os.environ.get("LEAD", "8"))


def run(name, cmd, port):
    proc = start(cmd, port)
    try:
        c = Conn(port)
        rng = random.Random(1)
        batch = 10000
        instant = int((time.time() + LEAD) * 1000)
        ttl = (lambda: ("PXAT", instant)) if AT_ONCE else (
            lambda: ("PX", rng.randint(500, 1500)))
        for at in range(0, KEYS, batch):
            c.pipeline([("SET", f"k{i}", "v", *ttl())
                        for i in range(at, min(at + batch, KEYS))])
        written = time.monotonic()
        if AT_ONCE:
            left = instant / 1000 - time.time()
            if left < 0.2:
                raise SystemExit(f"writing took longer than LEAD={LEAD} s")
            written += left
        rows = []
        t = STEP
        while t <= WAIT + 1e-9:
            time.sleep(max(0.0, written + t - time.monotonic()))
            size = int(c.call("DBSIZE"))
            expired = c.info("expired_keys", "stats")
            text = c.call("INFO", "stats").decode()
            stale = next(l.split(":")[1] for l in text.split("\r\n")
                         if l.startswith("expired_stale_perc:"))
            rows.append((t, size, expired, stale))
            t += STEP
        for t, size, expired, stale in rows:
            print(f"| {name} | {t:.1f} | {size} | {expired} | {stale} |")
    finally:
        proc.kill()
        proc.wait()


def main():
    after = "s after the instant" if AT_ONCE else "s after writing"
    print(f"| server | {after} | keys held | expired_keys | expired_stale_perc |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        run("shardis", [BIN, "--port", str(port), "--threads", THREADS, "--runtime",
                        RUNTIME, "--save", "", "--dir", d, "--active-expire-effort",
                        EFFORT], port)
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        run("redis", ["redis-server", "--port", str(port), "--save", "", "--dir", d,
                      "--active-expire-effort", EFFORT], port)


if __name__ == "__main__":
    main()

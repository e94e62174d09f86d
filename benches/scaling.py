#!/usr/bin/env python3
"""How throughput scales with shards, beside redis-server, on a many-core machine.

For each shard count S in SHARDS: Shardis runs with `--threads S` pinned to cores
0..S-1, redis-benchmark (multi-threaded, `--threads` = the remaining cores, at most 8)
is pinned to the cores after them, and drives pipelined GET and SET (P16, CLIENTS
connections) and unpipelined SET (P1). redis-server runs on core 0 with the same load
generator for the baseline. Output: a markdown table (req/s, server CPU µs/req, p99)
and a PNG plot of req/s against shards (stdlib only: the device machine has no pip).

usage: benches/scaling.py [shardis-binary] [out.png]
env: SHARDS="1 2 4 8 12" RUNTIME=auto N=2000000 CLIENTS=200 ROUNDS=1
"""
import os, struct, subprocess, sys, zlib
from benchlib import cpu_s, free_port, start

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/shardis"
PNG = sys.argv[2] if len(sys.argv) > 2 else "benches/scaling.png"
NCPU = os.cpu_count()
SHARDS = [int(s) for s in os.environ.get("SHARDS", "1 2 4 8 12").split() if int(s) < NCPU]
RUNTIME = os.environ.get("RUNTIME", "auto")
N = int(os.environ.get("N", "2000000"))
CLIENTS = int(os.environ.get("CLIENTS", "200"))
WORKLOADS = [("GET P16", ["-t", "get", "-P", "16"]), ("SET P16", ["-t", "set", "-P", "16"]),
             ("SET P1", ["-t", "set", "-P", "1"])]








def bench(port, pid, first_client_cpu, args):
    threads = max(1, min(8, NCPU - first_client_cpu))
    cpus = f"{first_client_cpu}-{NCPU - 1}"
    n = N if "16" in args[3] else N // 8
    c0 = cpu_s(pid)
    out = subprocess.run(["taskset", "-c", cpus, "redis-benchmark", "-p", str(port), "--threads", str(threads),
                          "-c", str(CLIENTS), "-n", str(n), "-r", "1000000", "-d", "16", "--csv"] + args,
                         capture_output=True, text=True).stdout
    c1 = cpu_s(pid)
    row = out.strip().splitlines()[-1].replace('"', "").split(",")
    return float(row[1]), (c1 - c0) * 1e6 / n, float(row[6])


def run_server(kind, shards):
    port = free_port()
    if kind == "redis":
        cmd = ["taskset", "-c", "0", "redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    else:
        cmd = ["taskset", "-c", f"0-{shards - 1}", BIN, "--port", str(port), "--threads", str(shards),
               "--runtime", RUNTIME, "--save", "", "--appendonly", "no"]
    proc = start(cmd, port)
    try:
        # Fill the keyspace GET reads.
        subprocess.run(["redis-benchmark", "-p", str(port), "-q", "-t", "set", "-P", "64", "-n", "1000000",
                        "-r", "1000000", "-d", "16"], capture_output=True)
        return {name: bench(port, proc.pid, shards, args) for name, args in WORKLOADS}
    finally:
        proc.kill(); proc.wait()


def png(path, series, xs):
    """A minimal line chart (one colour per series), written with zlib and struct."""
    W, H, M = 640, 400, 40
    img = [[(255, 255, 255)] * W for _ in range(H)]
    ymax = max(v for s in series.values() for v in s if v) * 1.1
    colours = [(200, 30, 30), (30, 90, 200), (30, 150, 60), (150, 80, 180), (230, 140, 0), (0, 0, 0)]
    X = lambda x: M + int((x - xs[0]) / max(1, xs[-1] - xs[0]) * (W - 2 * M))
    Y = lambda y: H - M - int(y / ymax * (H - 2 * M))

    def line(x0, y0, x1, y1, c):
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            x = x0 + (x1 - x0) * i // steps; y = y0 + (y1 - y0) * i // steps
            for dx in (0, 1):
                for dy in (0, 1):
                    if 0 <= x + dx < W and 0 <= y + dy < H:
                        img[y + dy][x + dx] = c
    line(M, H - M, W - M, H - M, (0, 0, 0)); line(M, M, M, H - M, (0, 0, 0))
    for x in xs:
        line(X(x), H - M, X(x), H - M + 6, (0, 0, 0))
    for i, (name, ys) in enumerate(series.items()):
        c = colours[i % len(colours)]
        pts = [(X(x), Y(y)) for x, y in zip(xs, ys) if y]
        for (a, b), (p, q) in zip(pts, pts[1:]):
            line(a, b, p, q, c)
        for a, b in pts:
            for d in range(-3, 4):
                line(a - 3, b + d, a + 3, b + d, c)
        line(W - M - 120, M + 12 * i, W - M - 100, M + 12 * i, c)  # legend swatch, order as the table
    raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in img)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    redis = run_server("redis", 1)
    rows = {s: run_server("shardis", s) for s in SHARDS}
    print(f"cores: {NCPU}, runtime {RUNTIME}, {CLIENTS} clients, redis-benchmark pinned after the server's cores\n")
    print("| server | shards | workload | req/s | x Redis | CPU µs/req | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, _ in WORKLOADS:
        r = redis[name]
        print(f"| redis | 1 | {name} | {r[0]:,.0f} | 1.00 | {r[1]:.2f} | {r[2]:.3f} |")
        for s in SHARDS:
            v = rows[s][name]
            print(f"| shardis | {s} | {name} | {v[0]:,.0f} | {v[0] / r[0]:.2f} | {v[1]:.2f} | {v[2]:.3f} |")
    series = {f"shardis {n}": [rows[s][n][0] for s in SHARDS] for n, _ in WORKLOADS}
    series.update({f"redis {n}": [redis[n][0]] * len(SHARDS) for n, _ in WORKLOADS})
    png(PNG, series, SHARDS)
    print(f"\nplot: {PNG} (legend order: {', '.join(series)})")


main()

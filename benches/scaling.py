#!/usr/bin/env python3
"""How throughput scales with shards, beside redis-server, on a many-core machine.

For each shard count S in SHARDS: Shardis runs with `--threads S` pinned to cores
0..S-1, redis-benchmark (multi-threaded, `--threads` = the remaining cores, at most 8)
is pinned to the cores after them, and drives GET and SET at P16 and P1 (CLIENTS
connections), MSET of ten keys spread over min(S, 10) shards at P16 and, when TXLOAD
names a built benches/txload.rs, MULTI of 5 commands over min(S, 5) shards (16
connections, 16 blocks per write). redis-server runs on core 0 with the same load
generator for the baseline. Output: a markdown table (req/s as the server counts them,
server CPU µs/req, p99 as redis-benchmark reports it)
and a PNG plot of req/s against shards (stdlib only: the device machine has no pip).

usage: benches/scaling.py [shardis-binary] [out.png]
       benches/scaling.py --plot TABLE.md out.png   (redraw the plot from a printed table)
env: SHARDS="1 2 4 8 12" RUNTIME=auto N=2000000 CLIENTS=200 TXLOAD=path/to/txload
     ONLY="MSET10 P16,MULTI5 P16" (a comma-separated subset of the workloads)
"""
import os, re, struct, subprocess, sys, threading, time, zlib
from benchlib import Conn, cpu_s, free_port, start, tag_on

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/shardis"
PNG = sys.argv[2] if len(sys.argv) > 2 else "benches/scaling.png"
NCPU = os.cpu_count()
SHARDS = [int(s) for s in os.environ.get("SHARDS", "1 2 4 8 12").split() if int(s) < NCPU]
RUNTIME = os.environ.get("RUNTIME", "auto")
N = int(os.environ.get("N", "2000000"))
CLIENTS = int(os.environ.get("CLIENTS", "200"))
TXLOAD = os.environ.get("TXLOAD", "")
LIMIT = 90  # seconds for one load-generator run; a slower one is reported as 0


# Ten hash tags in ten evenly spaced slot ranges: one MSET touches min(shards, 10) shards.
MSET10 = ["mset"] + [a for i in range(10) for a in ("{%s}:__rand_int__" % tag_on(i, 10), "v" * 16)]
# (name, redis-benchmark arguments or "txload", requests per run as a fraction of N)
WORKLOADS = [("GET P16", ["-t", "get", "-P", "16"], 1), ("SET P16", ["-t", "set", "-P", "16"], 1),
             ("GET P1", ["-t", "get", "-P", "1"], 1 / 4), ("SET P1", ["-t", "set", "-P", "1"], 1 / 4),
             ("MSET10 P16", ["-P", "16"] + MSET10, 1 / 20)]
if TXLOAD:
    WORKLOADS.append(("MULTI5 P16", "txload", 1 / 40))
if os.environ.get("ONLY"):  # e.g. ONLY="MSET10 P16,MULTI5 P16"
    WORKLOADS = [w for w in WORKLOADS if w[0] in os.environ["ONLY"].split(",")]


def bench(port, pid, first_client_cpu, args, share):
    """(req/s, server CPU µs per request, p99 ms) of one load-generator run."""
    threads = max(1, min(8, NCPU - first_client_cpu))
    cpus = f"{first_client_cpu}-{NCPU - 1}"
    n = int(N * share)
    c0 = cpu_s(pid)
    if args == "txload":
        # MULTI; SET; INCR; GET; SET; INCR; EXEC over 16 connections, 16 blocks per write.
        out = subprocess.run(["taskset", "-c", cpus, TXLOAD, "--port", str(port), "--conns", "16",
                              "--txs", str(n), "--pipeline", "16"], capture_output=True, text=True, timeout=LIMIT).stdout
        c1 = cpu_s(pid)
        row = out.split()
        return float(row[0]), (c1 - c0) * 1e6 / n, float(row[2])
    samples = Sampler(port)
    out = subprocess.run(["taskset", "-c", cpus, "redis-benchmark", "-p", str(port), "--threads", str(threads),
                          "-c", str(CLIENTS), "-n", str(n), "-r", "1000000", "-d", "16", "--csv"] + args,
                         capture_output=True, text=True, timeout=LIMIT).stdout
    c1 = cpu_s(pid)
    row = out.strip().splitlines()[-1].replace('"', "").split(",")
    return samples.rate(n), (c1 - c0) * 1e6 / n, float(row[6])


class Sampler:
    """Requests/s of a redis-benchmark run, read off the server. With --threads,
    redis-benchmark ends its runs on a 250 ms timer and divides by that time, so a
    1-second run can read 25% slow. Instead, INFO's total_commands_processed is polled
    every 10 ms during the run, and the rate is taken between 10% and 90% of it
    (steady state, without connection set-up or the last stragglers)."""

    def __init__(self, port):
        self.conn = Conn(port)
        self.points = [self.sample()]
        self.done = False
        self.thread = threading.Thread(target=self.poll)
        self.thread.start()

    def sample(self):
        t0 = time.perf_counter()
        info = self.conn.call("INFO", "stats")
        t = (t0 + time.perf_counter()) / 2
        return t, int(re.search(rb"total_commands_processed:(\d+)", info).group(1))

    def poll(self):
        while not self.done:
            self.points.append(self.sample())
            time.sleep(0.01)

    def rate(self, requests):
        self.done = True
        self.thread.join()
        pts = self.points + [self.sample()]
        base, total = pts[0][1], pts[-1][1] - pts[0][1]
        inside = [(t, c) for t, c in pts if 0.1 * total <= c - base <= 0.9 * total]
        if len(inside) < 3:
            raise ValueError("run too short to sample")
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0) * requests / total


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
        results = {}
        for name, args, share in WORKLOADS:
            try:
                results[name] = bench(port, proc.pid, shards, args, share)
            except (subprocess.TimeoutExpired, IndexError, ValueError) as e:
                print(f"# {kind} {shards}: {name} failed: {e!r}", file=sys.stderr, flush=True)
                results[name] = (0.0, 0.0, 0.0)
            print(f"# {kind} {shards}: {name} {results[name]}", file=sys.stderr, flush=True)
        return results
    finally:
        proc.kill(); proc.wait()


# A 3x5 pixel font for the plot's labels (upper case, digits, '.', ' '), row bits.
FONT = {"0": "75557", "1": "26227", "2": "71747", "3": "71717", "4": "55711", "5": "74717", "6": "74757",
        "7": "71111", "8": "75757", "9": "75717", ".": "00002", " ": "00000", "A": "25755", "D": "65556",
        "E": "74647", "G": "74557", "H": "55755", "I": "72227", "L": "44447", "M": "57755", "P": "75744",
        "R": "65655", "S": "34216", "T": "72222", "U": "55557", "X": "55255", "=": "07070"}


def png(path, series, xs):
    """A line chart of each workload's throughput as a multiple of Redis's against the
    shard count, with a grey line at 1 (Redis), labelled axes and a legend; written with
    zlib and struct only."""
    W, H, M, S = 720, 440, 50, 2
    img = [[(255, 255, 255)] * W for _ in range(H)]
    ymax = max(2, int(max(v for ys in series.values() for v in ys) + 1))
    colours = [(200, 30, 30), (30, 90, 200), (230, 140, 0), (30, 150, 60), (150, 80, 180), (0, 0, 0)]
    X = lambda x: M + int((x - xs[0]) / max(1, xs[-1] - xs[0]) * (W - 2 * M - 170))
    Y = lambda y: H - M - int(y / ymax * (H - 2 * M))

    def dot(x, y, c):
        if 0 <= x < W and 0 <= y < H:
            img[y][x] = c

    def line(x0, y0, x1, y1, c, width=2):
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            x = x0 + (x1 - x0) * i // steps; y = y0 + (y1 - y0) * i // steps
            for d in range(width * width):
                dot(x + d % width, y + d // width, c)

    def text(x, y, words, c=(0, 0, 0)):
        for k, ch in enumerate(words.upper()):
            for row, bits in enumerate(FONT.get(ch, FONT[" "])):
                for col in range(3):
                    if int(bits) >> (2 - col) & 1:
                        for d in range(S * S):
                            dot(x + (4 * k + col) * S + d % S, y + row * S + d // S, c)

    line(M, H - M, X(xs[-1]), H - M, (0, 0, 0)); line(M, M, M, H - M, (0, 0, 0))
    for x in xs:
        line(X(x), H - M, X(x), H - M + 6, (0, 0, 0))
        text(X(x) - 4, H - M + 10, str(x))
    text(X(xs[-1]) // 2, H - M + 26, "SHARDS")
    for y in range(ymax + 1):
        line(M - 6, Y(y), M, Y(y), (0, 0, 0))
        text(M - 20, Y(y) - 5, str(y))
    text(8, M - 24, "X REDIS")
    line(M, Y(1), X(xs[-1]), Y(1), (160, 160, 160), 1)
    for i, (name, ys) in enumerate(series.items()):
        c = colours[i % len(colours)]
        pts = [(X(x), Y(y)) for x, y in zip(xs, ys) if y]
        for (a, b), (p, q) in zip(pts, pts[1:]):
            line(a, b, p, q, c)
        for a, b in pts:
            line(a - 3, b - 3, a - 3, b + 3, c, 7)
        line(W - 200, M + 20 * i + 4, W - 180, M + 20 * i + 4, c)
        text(W - 172, M + 20 * i, name, c)
    raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in img)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def plot_table(table, path):
    """Draw `path` from a table this script printed (`--plot TABLE PNG`)."""
    ratios = {}
    for row in open(table):
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] == "shardis":
            ratios.setdefault(cells[2], {})[int(cells[1])] = float(cells[4])
    xs = sorted({s for r in ratios.values() for s in r})
    png(path, {name: [r.get(s, 0) for s in xs] for name, r in ratios.items()}, xs)


def main():
    redis = run_server("redis", 1)
    rows = {s: run_server("shardis", s) for s in SHARDS}
    print(f"cores: {NCPU}, runtime {RUNTIME}, {CLIENTS} clients, redis-benchmark pinned after the server's cores\n")
    print("| server | shards | workload | req/s | x Redis | CPU µs/req | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, _, _ in WORKLOADS:
        r = redis[name]
        print(f"| redis | 1 | {name} | {r[0]:,.0f} | 1.00 | {r[1]:.2f} | {r[2]:.3f} |")
        for s in SHARDS:
            v = rows[s][name]
            print(f"| shardis | {s} | {name} | {v[0]:,.0f} | {v[0] / r[0] if r[0] else 0:.2f} | {v[1]:.2f} | {v[2]:.3f} |")
    series = {n: [rows[s][n][0] / redis[n][0] if redis[n][0] else 0 for s in SHARDS] for n, _, _ in WORKLOADS}
    png(PNG, series, SHARDS)
    print(f"\nplot: {PNG}")


if len(sys.argv) == 4 and sys.argv[1] == "--plot":
    plot_table(sys.argv[2], sys.argv[3])
else:
    main()

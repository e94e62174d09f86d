"""What the Python benchmarks (hop.py, scaling.py, conn_mem.py, pubsub.py, lazyfree.py,
eviction_quality.py) share: a free port, starting a server and waiting until it
accepts, a process's CPU time, and a minimal RESP client."""
import os, socket, subprocess, time

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def start(cmd, port):
    """Start `cmd` (a server listening on `port`) and return it once it accepts."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            time.sleep(0.3)
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill(); proc.wait()
    raise SystemExit(f"{cmd} did not start")


def cpu_s(pid):
    """utime + stime of process `pid`, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def crc16(data):
    """CRC16-XMODEM, the hash Redis Cluster (and Shardis) map keys to slots with."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def tag_on(shard, nshards=2):
    """A hash tag whose slot the given shard owns (slots split in equal ranges)."""
    for i in range(10000):
        t = f"t{i}".encode()
        if (crc16(t) & 16383) * nshards // 16384 == shard:
            return t.decode()


def encode(*args):
    """One command in RESP, its arguments bytes or anything str() can render."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Conn:
    """A blocking RESP connection. Replies: bytes for bulk, status, integer and error
    (without their type byte), None for a null, lists for arrays."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")

    def call(self, *args):
        self.s.sendall(encode(*args))
        return self.read()

    def pipeline(self, cmds):
        """Send every command of `cmds` (argument tuples) at once; their replies."""
        self.s.sendall(b"".join(encode(*c) for c in cmds))
        return [self.read() for _ in cmds]

    def read(self):
        line = self.f.readline()
        kind, body = line[:1], line[1:-2]
        if kind == b"$":
            n = int(body)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if kind == b"*":
            return [self.read() for _ in range(int(body))]
        return body

    def info(self, field, section="memory"):
        """An integer field of INFO `section`."""
        text = self.call("INFO", section).decode()
        return int(next(l for l in text.split("\r\n") if l.startswith(field + ":")).split(":")[1])

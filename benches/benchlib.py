"""What the Python benchmarks (hop.py, scaling.py, conn_mem.py) share: a free port,
starting a server and waiting until it accepts, and a process's CPU time."""
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

"""``tapgrid serve`` as a child process, for the tests' fixtures and for the
load scripts and benchmarks in perf/ (which import it from here: tests never
import perf). ``LoadServer`` lifts the per-player limits (so they do not
distort a load test); all get a raised fd limit and /proc readings (CPU
seconds, RSS, peak RSS).

    from tests.serverproc import LoadServer
    with LoadServer("/tmp/lt/tapgrid.db") as s:
        print(s.url, s.cpu_seconds(), s.rss_mb())

Restarting on the same database keeps the SQLite sessions, so clients can
reconnect with the tokens they had.
"""
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

__all__ = ["ServerProcess", "LoadServer", "LOAD_ENV", "raise_nofile", "free_port", "listen_drops",
           "MarketProcess", "GatewayProcess", "ClusterProcess", "children", "exited",
           "proc_cpu_seconds"]


def listen_drops():
    """The kernel's TcpExt ListenDrops counter (SYNs dropped on full accept queues)."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenDrops", 0))
    return None

# Limits that would otherwise turn a load test into a test of the limits.
LOAD_ENV = {
    "TAPGRID_MAX_OPEN_BETS": "10000000",
    "TAPGRID_CELL_LIABILITY_CAP": "1000000000000",
    "TAPGRID_GUEST_CREDIT": "1000000000000",
    "TAPGRID_TAP_RATE": "100000",
    "TAPGRID_TAP_BURST": "100000",
    "TAPGRID_AUTH_RATE": "100000",
    "TAPGRID_AUTH_BURST": "100000",
    "TAPGRID_HANDSHAKE_RATE_PER_ADDRESS": "1000000",
    "TAPGRID_MAX_CONNS_PER_ADDRESS": "1000000",
    "TAPGRID_MAX_CONNS_PER_USER": "1000000",
    "TAPGRID_GUEST_RATE": "1000000",
    "TAPGRID_GUEST_BURST": "1000000",
}


def raise_nofile(want=65536):
    """Lift RLIMIT_NOFILE towards ``want`` (the hard limit caps it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``tapgrid serve`` in a child process on a loopback port; the tests'
    fixtures and the benchmarks both use it. ``env`` adds TAPGRID_*
    settings over ``base_env``."""

    base_env = {}
    command = "serve"

    def __init__(self, db, *args, env=None, port=None, log_path=None):
        self.db = db
        self.args = list(args)
        self.env = dict(os.environ, PYTHONPATH=ROOT, **self.base_env)
        self.env.update(env or {})
        self.port = port or free_port()
        self.log_path = log_path or db + ".log"
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=30, wait_open=True):
        """Start and wait until /healthz says ok (or, with ``wait_open``
        false, until the server answers at all: a suspended market is 503)."""
        os.makedirs(os.path.dirname(os.path.abspath(self.db)), exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "web.cli", self.command, "--port", str(self.port), "--db", self.db,
             *self.args], cwd=ROOT, env=self.env, stdout=log, stderr=log,
            preexec_fn=lambda: raise_nofile(65536))
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log()[-2000:]}")
            if self._ready():
                return self
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except urllib.error.HTTPError:
                if not wait_open:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("server did not become healthy: " + self.log()[-2000:])
            time.sleep(0.05)

    def _ready(self):
        return False            # /healthz decides, below

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _proc_status(self, field):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) / 1024      # kB -> MB
        except OSError:
            return None
        return None

    def rss_mb(self):
        return self._proc_status("VmRSS")

    def peak_rss_mb(self):
        return self._proc_status("VmHWM")

    def cpu_seconds(self):
        """utime + stime of the server process so far."""
        return proc_cpu_seconds(self.proc.pid)

    def stop(self, timeout=15):
        """SIGTERM (graceful), SIGKILL if it hangs. Returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class LoadServer(ServerProcess):
    """A server for load: the per-player limits lifted (``LOAD_ENV``)."""
    base_env = LOAD_ENV


class GatewayProcess(ServerProcess):
    """``tapgrid gateway --redis URL``: HTTP and WebSocket in front of a
    market reached over Redis (``--db`` only names its log file here)."""
    command = "gateway"


class MarketProcess(ServerProcess):
    """``tapgrid market --redis URL``: ready once its heartbeat (with its
    own pid) is in Redis. It listens on no port."""
    command = "market"

    def __init__(self, db, redis_url, *args, **kw):
        super().__init__(db, "--redis", redis_url, *args, **kw)
        self.redis_url = redis_url

    def _ready(self):
        import json
        import redis
        try:
            r = redis.Redis.from_url(self.redis_url, socket_timeout=1)
            try:
                beat = r.get("tapgrid:bus:market")
            finally:
                r.close()
        except redis.RedisError:
            return False
        return beat is not None and json.loads(beat).get("pid") == self.proc.pid


def children(pid):
    """The pids of a process's children (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def exited(pid):
    """Whether a process has exited (reaped, or a zombie its parent has not waited for)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def proc_cpu_seconds(pid):
    """utime + stime of any process, from /proc (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ClusterProcess(ServerProcess):
    """``tapgrid serve --gateways N``: the supervisor, with its market, its
    gateways and (without ``--redis``) its private redis-server as children.
    ``roles()`` names them: {"market": pid, "gateway-0": pid, ..., "redis": pid}."""

    def __init__(self, db, *args, gateways=2, **kw):
        super().__init__(db, "--gateways", str(gateways), *args, **kw)
        self.n_gateways = gateways

    def roles(self):
        out, gw = {}, 0
        for pid in children(self.proc.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if any(a.endswith(b"redis-server") for a in argv[:1]) or b"redis-server" in argv[0]:
                out["redis"] = pid
            elif b"market" in argv:
                out["market"] = pid
            elif b"gateway" in argv:
                out[f"gateway-{gw}"] = pid
                gw += 1
        return out

    def start(self, timeout=60, wait_open=True):
        super().start(timeout, wait_open)
        # /healthz answers once one gateway does; the supervisor says when all are ready
        deadline = time.monotonic() + timeout
        while '"logger": "tapgrid.supervisor", "msg": "serving on' not in self.log():
            if not self.alive() or time.monotonic() > deadline:
                raise RuntimeError("gateways did not all start: " + self.log()[-2000:])
            time.sleep(0.05)
        return self

    def cpu_by_role(self):
        return {name: proc_cpu_seconds(pid) for name, pid in self.roles().items()}

"""Reconnect storm and fan-out at 10,000 connections (SPEC section 8).

1. Start ``tapgrid serve`` on a fresh database (fd limit raised, player
   limits lifted, a Unix-socket backdoor for reading its counters).
2. Connect ``--clients`` WebSocket players from ``--procs`` worker
   processes (perf/_storm_clients.py; guests share a few tokens), plus one
   steady player in its own process tapping ``--steady-rate`` taps/s.
3. Fan-out: for ``--fanout-s`` seconds every client times each ``tick``
   frame: lag = receipt wall clock - the tick's ``t`` (the sim feed's
   wall clock when the tick was made), i.e. waiting for the next broadcast
   (at most 1/fanout_hz) + the fan-out itself. ``spread`` is receipt - the
   first receipt of the same tick by any client: the fan-out alone.
4. Storm: drop every crowd connection at once (the steady player stays).
   From the crowd's side, as the server sees a network failure or a mass
   client restart, with no statement run in the server: ``--drop reset``
   (the default: SO_LINGER 0 and close, an RST on each socket), ``--drop
   fin`` (a plain close), ``--drop client`` (``shutdown(SHUT_RDWR)``, the fd
   kept until the server closes its end). Through the server's backdoor:
   ``--drop shutdown`` (every server-side socket shut in one statement, a
   loop stall of its own), ``--drop close`` (a 1012 close frame each), or
   ``--drop kill`` (SIGKILL, restart on the same DB and port: sessions
   survive). Every client reconnects with web.client's full-jitter backoff
   (first window 0-5 s). Measured: time until all are back (hello
   received), handshakes shed (503s seen by clients, the gateway's count),
   server peak RSS, the steady player's ack latency while it lasts.

    python perf/bench_storm.py --clients 10000 --procs 2 --grid 2
    python perf/bench_storm.py --root /work/wt/base     # another checkout's server, same crowd
    python perf/bench_storm.py --clients 10000 --procs 2 --drop close

The last line is JSON (``"bench": "storm"``).
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from perf._scrape import gc_figures, lag_figures, scrape, tap_latency_p99_ms  # noqa: E402
from tests.serverproc import ROOT, LoadServer, listen_drops, raise_nofile  # noqa: E402

WORKER = os.path.join(ROOT, "perf", "_storm_clients.py")
CROWD_DROPS = {"reset": "reset", "fin": "fin", "client": "shutdown"}    # --drop -> the crowd's drop


def proc_cpu(pid):
    """utime + stime (s) of a process, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_profile(pid, seconds, path):
    """py-spy in the background (if installed), raw format for perf/_profile.py."""
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--format", "raw", "-o", path, "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class _Spies:
    """py-spy on a server: on each gateway of one made of several processes
    (``roles()``: the tapper's frames wait in a gateway), else on the one."""

    def __init__(self, server, seconds, path):
        roles = getattr(server, "roles", None)
        pids = {k: v for k, v in (roles() if roles else {}).items() if k.startswith("gateway")}
        if not pids:
            pids = {"": server.pid}
        stem, ext = os.path.splitext(path)
        self.procs = [p for p in (start_profile(pid, seconds, f"{stem}{'-' + k if k else ''}{ext}")
                                  for k, pid in pids.items()) if p is not None]

    def wait(self):
        for p in self.procs:
            p.wait()


def pct(values, p):
    if not values:
        return None
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def hist_pct(hist, p):
    """Percentile of a {value: count} histogram."""
    total = sum(hist.values())
    if not total:
        return None
    want, acc = total * p / 100, 0
    for k in sorted(hist):
        acc += hist[k]
        if acc >= want:
            return k
    return max(hist)


class Backdoor:
    """Evaluate expressions in the running server (its Unix-socket console)."""

    def __init__(self, path):
        self.path = path

    def eval(self, expr, timeout=10):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.path)
            buf = b""
            while not buf.endswith(b">>> "):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            s.sendall(f"print(repr({expr}))\r\n".encode())
            buf = b""
            while not buf.endswith(b">>> "):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return buf[:-4].decode(errors="replace").strip()


class Worker:
    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, WORKER, *args], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     preexec_fn=lambda: raise_nofile(65536))

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited {self.proc.poll()}")
        return json.loads(line)

    def send(self, *words):
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.proc.stdin.flush()

    def ask(self, *words):
        self.send(*words)
        return self.read()

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def ask_all(workers, *words):
    for w in workers:
        w.send(*words)
    return [w.read() for w in workers]


def fanout_stats(replies, n, seconds):
    lag, spread, firsts, receipts = {}, {}, {}, 0
    for r in replies:
        for t, d in r["ticks"].items():
            firsts[t] = min(firsts.get(t, d["first"]), d["first"])
    for r in replies:
        for t, d in r["ticks"].items():
            offset = int(firsts[t] - int(t))       # first receipt's lag for this tick
            for k, c in d["hist"].items():
                k = int(k)
                lag[k] = lag.get(k, 0) + c
                s = max(0, k - offset)
                spread[s] = spread.get(s, 0) + c
                receipts += c
    return {"ticks_seen": len(firsts), "ticks_per_s_per_client": round(receipts / n / seconds, 2),
            "lag_p50_ms": hist_pct(lag, 50), "lag_p99_ms": hist_pct(lag, 99),
            "lag_max_ms": max(lag) if lag else None,
            "spread_p50_ms": hist_pct(spread, 50), "spread_p99_ms": hist_pct(spread, 99),
            "grids_per_s_per_client": round(sum(r["grids"] for r in replies) / n / seconds, 2)}


def latency_summary(rep):
    lat = rep["lat"]
    return {"taps": rep["taps"], "ok": rep["ok"], "fails": rep["fails"],
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": lat[-1] if lat else None,
            "slowest_at": rep.get("slowest_at")}     # [s after the phase began, ms]: the top 1 %


def parser():
    ap = argparse.ArgumentParser(description="reconnect storm + fan-out at 10k connections")
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--procs", type=int, default=2, help="crowd worker processes")
    ap.add_argument("--users", type=int, default=10, help="guest sign-ins per worker (shared tokens)")
    ap.add_argument("--steady-rate", type=float, default=50.0)
    ap.add_argument("--fanout-s", type=float, default=15.0)
    ap.add_argument("--drop", choices=list(CROWD_DROPS) + ["shutdown", "close", "kill"],
                    default="reset",
                    help="reset (default): every crowd socket closed with SO_LINGER 0 (an RST), "
                         "fin: a plain close, client: shutdown(SHUT_RDWR) (these three from the "
                         "crowd, no backdoor needed, what perf/bench_scale.py uses); shutdown/"
                         "close: one backdoor statement in the server; kill: SIGKILL and restart")
    ap.add_argument("--root", help="run this checkout's server (the crowd stays this tree's)")
    ap.add_argument("--backoff-base", type=float, default=5.0)
    ap.add_argument("--storm-timeout", type=float, default=60.0)
    ap.add_argument("--server-arg", action="append", default=[])
    ap.add_argument("--grid", type=int, default=1, choices=[1, 2],
                    help="2: the crowd asks for compact grid2 frames (a protocol addition)")
    ap.add_argument("--profile", metavar="DIR", help="py-spy the server: DIR/fanout.txt, DIR/storm.txt")
    return ap


def main():
    a = parser().parse_args()
    raise_nofile(65536)
    tmp = tempfile.mkdtemp(prefix="tapgrid-storm-")
    bd_path = os.path.join(tmp, "console", "backdoor.sock")
    server = RootedServer(os.path.join(tmp, "tapgrid.db"), "--seed", "1",
                          "--backdoor", bd_path, *a.server_arg)
    if a.root:
        server.root = server.env["PYTHONPATH"] = os.path.abspath(a.root)
    server.start()
    try:
        out = measure(server, a, Backdoor(bd_path))
        log = server.log()
        os.makedirs(os.path.join(ROOT, "perf", "results"), exist_ok=True)
        with open(os.path.join(ROOT, "perf", "results", "storm-server.log"), "w") as f:
            f.write(log)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


class RootedServer(LoadServer):
    """LoadServer run from another checkout when ``root`` is set (its cwd
    and PYTHONPATH), for a before/after with the same crowd."""

    root = None

    def start(self, *args, **kw):
        if self.root is None:
            return super().start(*args, **kw)
        import tests.serverproc as sp
        saved, sp.ROOT = sp.ROOT, self.root
        try:
            return super().start(*args, **kw)
        finally:
            sp.ROOT = saved


def _cpu_by_role(server):
    """Per-process CPU seconds of a server of several processes, else {}."""
    probe = getattr(server, "cpu_by_role", None)
    return probe() if probe else {}


def _role_pct(c0, c1, seconds):
    return {k: round(100 * (c1[k] - c0[k]) / seconds, 1) for k in c1
            if c0.get(k) is not None and c1[k] is not None}


def measure(server, a, backdoor=None):
    """The fan-out, then the storm, against a started ``server``;
    ``backdoor`` (the server's console) is needed by --drop shutdown/close."""
    out = {"bench": "storm", "clients": a.clients, "procs": a.procs, "drop": a.drop, "grid": a.grid,
           "backlog": 4096}     # the server's own listen backlog (web/_listen.py)
    workers, steady = [], None
    try:
        steady = Worker("steady", "--url", server.url, "--rate", str(a.steady_rate))
        steady_user = steady.read()["user"]
        per = [a.clients // a.procs + (1 if i < a.clients % a.procs else 0) for i in range(a.procs)]
        t0 = time.time()
        workers = [Worker("crowd", "--url", server.url, "--n", str(k), "--users", str(a.users),
                          "--backoff-base", str(a.backoff_base), "--grid", str(a.grid))
                   for k in per]
        setups = [w.read() for w in workers]
        out["setup_s"] = round(time.time() - t0, 1)
        out["connected_at_start"] = sum(s["connected"] for s in setups)
        print(f"setup: {setups} in {out['setup_s']} s, server rss {server.rss_mb():.0f} MB",
              file=sys.stderr, flush=True)
        time.sleep(2)

        # --- fan-out ------------------------------------------------------------------------
        pids = [w.proc.pid for w in workers]
        spy = a.profile and _Spies(server, a.fanout_s, os.path.join(a.profile, "fanout.txt"))
        ask_all(workers, "record")
        m0 = scrape(server)
        c0, w0, k0 = server.cpu_seconds(), time.time(), sum(proc_cpu(p) for p in pids)
        r0 = _cpu_by_role(server)
        time.sleep(a.fanout_s)
        c1, w1, k1 = server.cpu_seconds(), time.time(), sum(proc_cpu(p) for p in pids)
        r1 = _cpu_by_role(server)
        m1 = scrape(server)
        replies = ask_all(workers, "stop_record")
        if spy:
            spy.wait()
        fan = fanout_stats(replies, out["connected_at_start"], w1 - w0)
        fan["server_cpu_pct"] = round(100 * (c1 - c0) / (w1 - w0), 1)
        if r1:
            fan["cpu_pct_by_role"] = _role_pct(r0, r1, w1 - w0)
        fan["clients_cpu_pct"] = round(100 * (k1 - k0) / (w1 - w0), 1)
        fan["loop_lag_p99_ms"], fan["loop_lag_max_ms"] = lag_figures(m0, m1)
        fan["server_tap_p99_ms"] = tap_latency_p99_ms(m0, m1)     # receipt to ack, in the server
        fan["gc"] = gc_figures(m0, m1)
        fan["loadavg"] = os.getloadavg()[0]
        fan["steady"] = latency_summary(steady.ask("report", w0, w1))
        fan["steady"].pop("fails", None)
        fan["steady"].pop("slowest_at", None)
        out["fanout"] = fan
        print(f"fanout: {fan}", file=sys.stderr, flush=True)

        # --- storm --------------------------------------------------------------------------
        ask_all(workers, "reset")
        shed0 = int(backdoor.eval("server.gateway.shed")) if backdoor else None
        rss_before = server.peak_rss_mb()
        c0 = server.cpu_seconds()
        r0 = _cpu_by_role(server)
        spy = a.profile and _Spies(server, 20, os.path.join(a.profile, "storm.txt"))
        drops0 = listen_drops()
        m0 = scrape(server)
        t_drop = time.time()
        if a.drop in ("shutdown", "close"):
            # One statement in the server: every crowd socket dropped in the same loop pass,
            # by TCP shutdown (as a network or balancer failure would) or a 1012 close frame.
            how = ("c.ws.handler.socket.shutdown(2)" if a.drop == "shutdown"
                   else "c.close(1012, b'storm')")
            backdoor.eval(f"[{how} for c in list(server.hub.conns) "
                          f"if c.user != {steady_user!r}] and None")
            out["close_all_s"] = round(time.time() - t_drop, 2)
        elif a.drop in CROWD_DROPS:
            ask_all(workers, "drop", CROWD_DROPS[a.drop])   # every crowd socket ended at once
            out["close_all_s"] = round(time.time() - t_drop, 2)
        else:
            server.kill()
            server.start()
            out["restart_s"] = round(time.time() - t_drop, 2)
            shed0, c0 = 0, 0.0
        back_at, samples = None, []
        while time.time() - t_drop < a.storm_timeout:
            time.sleep(0.25)
            if not server.alive():
                break
            st = ask_all(workers, "status", t_drop)
            n_back = sum(s["back"] for s in st)
            samples.append((round(time.time() - t_drop, 2), n_back))
            if n_back >= out["connected_at_start"]:
                back_at = time.time()
                break
        t_end = back_at or time.time()
        m1 = scrape(server)
        out["storm_loop_lag_p99_ms"], out["storm_loop_lag_max_ms"] = lag_figures(m0, m1)
        out["storm_server_tap_p99_ms"] = tap_latency_p99_ms(m0, m1)
        out["storm_gc"] = gc_figures(m0, m1)
        if spy:
            spy.wait()
        backs = ask_all(workers, "backs", t_drop)
        all_backs = sorted(b for r in backs for b in r["backs"])
        refused = {}
        for r in backs:
            for k, v in r["refused"].items():
                refused[k] = refused.get(k, 0) + v
        out["crashed"] = not server.alive()
        out["back"] = len(all_backs)
        out["all_back_s"] = round(all_backs[-1], 2) if back_at and all_backs else None
        out["back_p50_s"] = pct(all_backs, 50)
        out["back_p99_s"] = pct(all_backs, 99)
        out["shed"] = refused.get("503", 0)
        out["listen_drops"] = listen_drops() - drops0 if drops0 is not None else None
        out["refused_by_kind"] = refused
        if not out["crashed"]:
            if backdoor is not None:
                out["shed_server"] = int(backdoor.eval("server.gateway.shed")) - shed0
            out["server_cpu_s_storm"] = round(server.cpu_seconds() - c0, 2)
            r1 = _cpu_by_role(server)
            if r1:
                out["storm_cpu_pct_by_role"] = _role_pct(r0, r1, t_end - t_drop)
        out["peak_rss_mb"] = round(max(rss_before or 0, server.peak_rss_mb() or 0), 1)
        st = latency_summary(steady.ask("report", t_drop, t_end))
        out["steady_storm"] = st
        out["steady_p99_ms"] = st["p99_ms"]
        out["fanout_lag_p99_ms"] = fan["lag_p99_ms"]
        out["fanout_spread_p99_ms"] = fan["spread_p99_ms"]
        out["ticks_per_s"] = fan["ticks_per_s_per_client"]
        out["fanout_server_cpu_pct"] = fan["server_cpu_pct"]
        out["connected_curve"] = samples[::4]
        log = server.log()
        out["server_errors_logged"] = log.count('"level": "error"')
        out["tracebacks_logged"] = log.count("Traceback")
    finally:
        for w in workers + ([steady] if steady else []):
            w.stop()
    return out


if __name__ == "__main__":
    main()

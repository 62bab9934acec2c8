"""Server benchmark: durable taps/s and ack latency under an open-loop load.

It starts ``tapgrid serve`` on a fresh database and drives it from a
separate driver process (``perf/_driver.py``) at constant arrival rates.
By default it steps the offered rate up by 1,000 taps/s from 1,000 until
p99 reaches 100 ms or acks fall behind (fewer than 98 % acked, or taps
unanswered), so the result is the real maximum, not the top of a fixed
list (``--steps`` gives a fixed list instead). Per step: acked taps/s, ack
latency p50/p99/p99.9 (from each tap's scheduled send time), rejects by
reason, the server's CPU per acked tap split into the event-loop thread
and the other threads (from /proc/PID/task/*/stat), the event-loop lag
p99/max (the server's own 10 ms timer, from /metrics), and RSS. Modes run
side by side: group commit with the real fsync (~0.1 ms here) and with a
2 ms emulated one by default; ``per-tap`` (one transaction per tap) on
request. At the end it checks that the database holds every acked bet.

    .venv/bin/python perf/bench_server.py                      # 30 s steps
    .venv/bin/python perf/bench_server.py --seconds 10 --runs 3
    .venv/bin/python perf/bench_server.py --modes group:0,group:2,per-tap:2 --steps 1000,3000
    .venv/bin/python perf/bench_server.py --profile 3000       # py-spy during that step
    .venv/bin/python perf/bench_server.py --root /tmp/old-checkout   # another tree's server
    .venv/bin/python perf/bench_server.py --market-sets 1,4 --modes group:0 --steps 1000,3000

``--market-sets 1,4`` runs every mode twice side by side: the server with
one market (BTC-USD/5s) and with four (``FOUR_MARKETS``: three BTC column
lengths and ETH, each priced on every tick, with its own Resolver); the
taps go to the default market in both, so the two rows are the CPU per tap
against one market with one and with four configured. Each step also
reports the age of the price behind the accepted multipliers (p50/p99,
from /metrics).

``--idle-seconds 15`` first measures, per mode and run, the event loop's
share of a core with ``--conns`` clients connected and no taps (ticks,
grids and timers: the fixed cost inside every tap's loop figure).

Writes perf/results/server.json and perf/results/server_latency.png; the
last line printed is the JSON summary.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "perf", "results")
sys.path.insert(0, ROOT)

from tests.serverproc import LoadServer  # noqa: E402
from perf._scrape import lag_figures, price_age_ms, scrape  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")
#: the four markets of ``--market-sets 4``
FOUR_MARKETS = "BTC-USD/5s,BTC-USD/15s,BTC-USD/30s:horizon_ms=120000,ETH-USD/5s"


class Server(LoadServer):
    """A fresh database per commit mode, the player limits lifted; from
    ``root`` (another checkout) when given, for before/after side by side."""

    made = 0

    def __init__(self, workdir, commit, delay_ms, root=None, env=None):
        Server.made += 1            # a fresh database per server (runs, market sets)
        db = os.path.join(workdir, f"{commit}-{delay_ms}-{Server.made}.db")
        super().__init__(db, "--seed", "1", "--commit", commit, "--commit-delay-ms", str(delay_ms),
                         env=env)
        if root:
            self.env["PYTHONPATH"] = root
            self._root = root
        self.start()

    def start(self, timeout=90, wait_open=True):     # a loaded box starts slowly
        root = getattr(self, "_root", None)
        if root is None:
            return super().start(timeout, wait_open)
        import tests.serverproc as sp
        saved, sp.ROOT = sp.ROOT, root
        try:
            return super().start(timeout, wait_open)
        finally:
            sp.ROOT = saved

    def thread_cpu(self):
        """(whole process, event-loop thread) CPU seconds so far. The loop
        is the main thread (tid == pid); "other threads" is the difference,
        so threads that ended meanwhile still count."""
        pid = self.proc.pid
        return self.cpu_seconds(), _stat_cpu(f"/proc/{pid}/task/{pid}/stat")

    def role_cpu(self):
        """CPU seconds so far per thread name (``/proc/PID/task/*/comm``:
        the loop is the main thread, engine.NativePool names its threads
        after their pool: verify-N, commit, checkpoint, resolver)."""
        return self.role_stats()[0]

    def role_stats(self, sys_out=None):
        """(CPU seconds, voluntary context switches) so far per thread
        role. A voluntary switch is a thread blocking (a futex, epoll, the
        GIL) and being woken again: the wake-ups the tap path costs.
        ``sys_out`` (a dict), when given, gets each role's kernel-side CPU
        seconds (stime): the syscalls and wake-ups, as against Python."""
        pid = self.proc.pid
        out, woken = {}, {}
        for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else ():
            base = f"/proc/{pid}/task/{task}"
            cpu = _stat_cpu(base + "/stat")
            try:
                with open(base + "/comm") as f:
                    name = f.read().strip()
            except OSError:
                continue
            if cpu is None:
                continue
            name = "loop" if int(task) == pid else name.split("-")[0]
            out[name] = out.get(name, 0.0) + cpu
            if sys_out is not None:
                sys_out[name] = sys_out.get(name, 0.0) + (_stat_cpu(base + "/stat", sys_only=True) or 0.0)
            woken[name] = woken.get(name, 0) + _switches(base + "/status")
        return out, woken


def _save_thread_names(pid, path):
    """tid -> thread role, beside a profile: py-spy's raw output names
    threads by id only (``perf/_profile.py --by-thread`` reads this)."""
    names = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                names[task] = "loop" if int(task) == pid else f.read().strip()
        except OSError:
            pass
    with open(path, "w") as f:
        json.dump(names, f)


def _switches(path):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _stat_cpu(path, sys_only=False):
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if sys_only:
        return int(fields[12]) / _TICK
    return (int(fields[11]) + int(fields[12])) / _TICK


def wait_drained(server, timeout=120):
    """Let the Writer (or, in front of a market process, the gateway's bus)
    finish the previous step's backlog before the next."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        pending = [float(line.split()[1]) for line in scrape(server).splitlines()
                   if line.startswith(("tapgrid_writer_pending_taps ", "tapgrid_bus_pending_taps "))]
        if pending and not any(pending):
            return
        time.sleep(0.5)


def py_spy(pid, seconds, path, kind="threads", rate=100):
    """A profiler on the server for ``seconds``: py-spy over all threads
    (``threads``), only samples holding the GIL (``gil``), or
    ``strace -c -f``'s syscall counts per call (``strace``: it slows every
    syscall, so read its counts, not that step's latencies)."""
    if kind == "strace":
        return subprocess.Popen(["timeout", "-s", "INT", str(int(seconds)), "strace", "-c", "-f",
                                 "-o", path, "-p", str(pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kind == "perftrace":
        # kernel tracepoints: far lighter than strace's ptrace stops, per thread
        return subprocess.Popen(["timeout", "-s", "INT", str(int(seconds)), "perf", "trace", "-s",
                                 "-o", path, "-p", str(pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    exe = os.path.join(os.path.dirname(sys.executable), "py-spy")
    # ``native``: every thread's C frames too, idle ones included (a thread
    # waiting on the GIL or a futex shows where it waits, not nothing)
    extra = {"gil": ["--gil"], "native": ["--native", "--idle"]}.get(kind, [])
    # native stacks need the process stopped per sample: no --nonblocking
    blocking = [] if kind == "native" else ["--nonblocking"]
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", str(rate), "--format", "raw", "-o", path,
                             "--threads"] + blocking + extra,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_step(server, rate, seconds, conns, profile=None, markets=None, profile_kind="threads",
             profile_rate=100):
    wait_drained(server)
    driver = subprocess.Popen([sys.executable, os.path.join(ROOT, "perf", "_driver.py"), "--url",
                               server.url, "--rate", str(rate), "--seconds", str(seconds),
                               "--conns", str(conns)] + (["--markets", markets] if markets else []),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    cpu0 = cpu1 = None
    # a server of several processes (market, gateways, Redis) says what each spent
    by_role = getattr(server, "cpu_by_role", dict)
    roles0 = roles1 = {}
    m0 = m1 = ""
    spy = None
    lines = []
    for line in driver.stdout:           # CPU is counted while taps flow, not during setup
        if line.strip() == "START":
            m0 = scrape(server)
            cpu0 = server.thread_cpu()
            roles0 = by_role()
            sys0 = {}
            threads0, woken0 = server.role_stats(sys0)
            if profile:
                spy = py_spy(server.pid, max(1, seconds - 1), profile, profile_kind, profile_rate)
                _save_thread_names(server.pid, profile + ".threads.json")
        elif line.strip() == "END":
            cpu1 = server.thread_cpu()
            roles1 = by_role()
            sys1 = {}
            threads1, woken1 = server.role_stats(sys1)
            m1 = scrape(server)
        else:
            lines.append(line)
    driver.wait(60)
    if spy is not None:
        spy.wait(60)
    out = subprocess.CompletedProcess(driver.args, driver.returncode, "".join(lines),
                                      driver.stderr.read())
    if out.returncode != 0:
        log = server.log()
        raise RuntimeError("driver failed: " + out.stderr[-1500:] + "\nserver log:\n" + log[-3000:])
    cpu, loop = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    bets = r.pop("bets")
    n = r["acked_ok"]
    r["cpu_us_per_tap"] = round(cpu * 1e6 / n, 1) if n else None
    r["loop_cpu_us_per_tap"] = round(loop * 1e6 / n, 1) if n else None
    r["other_cpu_us_per_tap"] = round((cpu - loop) * 1e6 / n, 1) if n else None
    r["server_cpu_s"] = round(cpu, 2)
    if roles1:
        r["cpu_us_per_tap_by_role"] = {k: round((v - roles0[k]) * 1e6 / n, 1) if n else None
                                       for k, v in roles1.items()
                                       if v is not None and roles0.get(k) is not None}
    # Per role (threads that ended meanwhile are missing: the totals above count them).
    r["cpu_us_per_tap_by_thread"] = {k: round((threads1[k] - threads0.get(k, 0.0)) * 1e6 / n, 1)
                                     for k in sorted(threads1) if n and threads1[k] - threads0.get(k, 0.0) > 0}
    # Of it in the kernel (stime): syscalls, wake-ups, page faults.
    r["sys_us_per_tap_by_thread"] = {k: round((sys1[k] - sys0.get(k, 0.0)) * 1e6 / n, 1)
                                     for k in sorted(sys1) if n and sys1[k] - sys0.get(k, 0.0) > 0}
    # Wake-ups (voluntary context switches) per acked tap, by thread role.
    r["wakeups_per_tap_by_thread"] = {k: round((woken1[k] - woken0.get(k, 0)) / n, 2)
                                      for k in sorted(woken1) if n and woken1[k] > woken0.get(k, 0)}
    r["loop_lag_p99_ms"], r["loop_lag_max_ms"] = lag_figures(m0, m1)
    r["price_age_p50_ms"], r["price_age_p99_ms"] = price_age_ms(m1)
    r["rss_mb"] = round(server.rss_mb(), 1)
    return r, bets


def idle_step(server, seconds, conns):
    """The loop's share of a core with ``conns`` players connected and no
    taps (ticks, grids, timers: the fixed cost in every tap's loop figure)."""
    driver = subprocess.Popen([sys.executable, os.path.join(ROOT, "perf", "_driver.py"), "--url",
                               server.url, "--rate", "0", "--idle", str(seconds), "--conns",
                               str(conns)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in driver.stdout:
        if line.strip() == "START":
            t0, cpu0 = time.time(), server.thread_cpu()
        elif line.strip() == "END":
            t1, cpu1 = time.time(), server.thread_cpu()
        else:
            lines.append(line)
    if driver.wait(60) != 0:
        raise RuntimeError("idle driver failed: " + driver.stderr.read()[-1500:])
    r = json.loads(lines[-1])
    r["idle_loop_pct"] = round((cpu1[1] - cpu0[1]) * 100 / (t1 - t0), 1)
    r["idle_all_pct"] = round((cpu1[0] - cpu0[0]) * 100 / (t1 - t0), 1)
    r["load"] = os.getloadavg()[0]
    return r


def keeps_up(r):
    """A step the server kept up with: p99 under 100 ms and (almost) every tap acked."""
    return (r["p99_ms"] is not None and r["p99_ms"] < 100 and not r["no_answer"]
            and r["ok_per_s"] >= 0.98 * r["offered"])


def lost_bets(db, acked):
    from actors import open_readonly
    conn = open_readonly(db)
    try:
        have = {row[0] for row in conn.execute("SELECT id FROM bets")}
    finally:
        conn.close()
    return len(set(acked) - have)


def run_mode(workdir, commit, delay_ms, steps, seconds, conns, root=None, profile=None, env=None,
             markets=None, profile_kind="threads", profile_rate=100, idle_seconds=0, idle=None):
    """``steps``: a list of rates, or None to step up by 1,000 until the
    server no longer keeps up (that step is reported too). With
    ``idle_seconds``, the server at rest first (``idle_step``), appended to
    the list ``idle``."""
    server = Server(workdir, commit, delay_ms, root, env)
    rows, acked = [], []
    rate = 1000
    try:
        if idle_seconds:
            r = idle_step(server, idle_seconds, conns)
            print(f"  {commit:8} delay={delay_ms}ms idle, {conns} clients: loop {r['idle_loop_pct']} % "
                  f"of a core (all threads {r['idle_all_pct']} %), {r['frames_per_conn_per_s']} "
                  f"frames/s each [load {r['load']:.2f}]", flush=True)
            if idle is not None:
                idle.append(r)
        while True:
            if steps is not None:
                if len(rows) >= len(steps):
                    break
                rate = steps[len(rows)]
            prof = None
            if profile and profile[0] == rate:
                prof = profile[1]
            r, bets = run_step(server, rate, seconds, conns, prof, markets, profile_kind,
                               profile_rate)
            acked += bets
            rows.append(r)
            print(f"  {commit:8} delay={delay_ms}ms offered={rate:>5} acked/s={r['ok_per_s']:>7.0f} "
                  f"p50={r['p50_ms']:.1f} p99={r['p99_ms']:.1f} p99.9={r['p999_ms']:.1f} ms "
                  f"cpu/tap={r['cpu_us_per_tap']}µs (loop {r['loop_cpu_us_per_tap']}, other "
                  f"{r['other_cpu_us_per_tap']}) lag p99/max={r['loop_lag_p99_ms']}/"
                  f"{r['loop_lag_max_ms']}ms price age p50/p99={r['price_age_p50_ms']}/"
                  f"{r['price_age_p99_ms']}ms rss={r['rss_mb']}MB rejects={r['rejects']} "
                  f"threads={r['cpu_us_per_tap_by_thread']} sys={r['sys_us_per_tap_by_thread']} wakeups/tap={r['wakeups_per_tap_by_thread']} driver={r.get('driver_cpu_us_per_tap')}µs/tap "
                  f"[load {os.getloadavg()[0]:.2f}]", flush=True)
            if steps is None:
                if not keeps_up(r) or rate >= 30000:
                    break
                rate += 1000
    finally:
        server.stop()
    return rows, lost_bets(server.db, acked)


def median_rows(runs):
    """Per offered rate, the median of each numeric figure over the runs
    that reached it."""
    by_rate = {}
    for rows in runs:
        for r in rows:
            by_rate.setdefault(r["offered"], []).append(r)
    out = []
    for rate in sorted(by_rate):
        step_rows = by_rate[rate]
        m = dict(step_rows[0])
        m["runs"] = len(step_rows)
        for k, v in step_rows[0].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                vals = [r[k] for r in step_rows if r.get(k) is not None]
                m[k] = statistics.median(vals) if vals else None
            elif k in ("cpu_us_per_tap_by_thread", "wakeups_per_tap_by_thread",
                       "sys_us_per_tap_by_thread"):
                names = sorted({n for r in step_rows for n in (r.get(k) or {})})
                m[k] = {n: statistics.median([(r.get(k) or {}).get(n, 0.0) for r in step_rows])
                        for n in names}
        out.append(m)
    return out


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, rows in results.items():
        xs = [r["offered"] for r in rows]
        for key, style in (("p50_ms", ":"), ("p99_ms", "-"), ("p999_ms", "--")):
            ax.plot(xs, [r[key] for r in rows], style, marker="o",
                    label=f"{label} {key[:-3].replace('p999', 'p99.9')}")
    ax.axhline(100, color="red", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("offered taps/s (open loop)")
    ax.set_ylabel("ack latency, ms (log)")
    ax.set_title("tapgrid: durable tap ack latency vs offered load")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", default=None,
                    help="fixed offered rates (default: from 1000 up by 1000 until it no longer keeps up)")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--modes", default="group:0,group:2", help="commit:delay_ms pairs")
    ap.add_argument("--root", default=None, help="run the server from this checkout instead")
    ap.add_argument("--profile", type=int, default=None,
                    help="py-spy the server (all threads) during this step of the first mode")
    ap.add_argument("--profile-kind", default="threads", choices=("threads", "gil", "native", "strace", "perftrace"),
                    help="py-spy of all threads, py-spy --gil, or strace -c -f (syscall counts)")
    ap.add_argument("--profile-rate", type=int, default=100, help="py-spy samples a second")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    ap.add_argument("--market-sets", default="1",
                    help="markets configured, side by side: 1 (BTC-USD/5s), 4 (FOUR_MARKETS, v1"
                         " taps to the default) and/or 4x (FOUR_MARKETS, v1.1 taps spread over all four)")
    ap.add_argument("--idle-seconds", type=float, default=0,
                    help="first, per mode and run: the loop's CPU with --conns idle clients")
    ap.add_argument("--out", default=os.path.join(RESULTS, "server.json"))
    a = ap.parse_args()
    steps = [int(s) for s in a.steps.split(",")] if a.steps else None
    modes = [(m.split(":")[0], float(m.split(":")[1])) for m in a.modes.split(",")]
    env = dict(kv.split("=", 1) for kv in a.env)
    market_sets = [n if n == "4x" else int(n) for n in a.market_sets.split(",")]
    workdir = tempfile.mkdtemp(prefix="tapgrid-bench-")
    os.makedirs(RESULTS, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"driver and server on the same box; {a.seconds:.0f} s steps, {a.runs} run(s); "
          f"server from {a.root or ROOT}; load {os.getloadavg()}", flush=True)
    results, lost, profiles, idles = {}, 0, {}, []
    try:
        labels = {}
        for mi, (commit, delay) in enumerate(modes):
            for n in market_sets:
                labels[(commit, delay, n)] = f"{commit} {delay:g}ms" + (
                    " 4 markets spread" if n == "4x" else f" {n} markets" if n != 1 else "")
        runs_of = {label: [] for label in labels.values()}
        for run in range(a.runs):
            # the market sets alternate within each run: side by side, same load
            for mi, (commit, delay) in enumerate(modes):
                for n in market_sets:
                    label = labels[(commit, delay, n)]
                    profile = None
                    if a.profile and mi == 0 and run == 0 and n == market_sets[0]:
                        path = os.path.splitext(a.out)[0] + f"_profile_{a.profile}_{a.profile_kind}.txt"
                        profile = (a.profile, path)
                        profiles[label] = path
                    menv = dict(env, TAPGRID_MARKETS=FOUR_MARKETS) if n in (4, "4x") else env
                    if n not in (1, 4, "4x"):
                        raise SystemExit("--market-sets takes 1, 4 and/or 4x")
                    print(f"--- {label}, run {run + 1}", flush=True)
                    rows, missing = run_mode(workdir, commit, delay, steps, a.seconds, a.conns,
                                             a.root, profile, menv,
                                             "all" if n == "4x" else None, a.profile_kind,
                                             a.profile_rate, a.idle_seconds, idles)
                    lost += missing
                    runs_of[label].append(rows)
        for label, runs in runs_of.items():
            results[label] = median_rows(runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    with open(a.out, "w") as f:
        json.dump({"steps": steps, "seconds": a.seconds, "runs": a.runs, "root": a.root,
                   "results": results}, f, indent=1)
    plot(results, os.path.splitext(a.out)[0] + "_latency.png")
    for label, path in profiles.items():
        if os.path.exists(path) and a.profile_kind in ("strace", "perftrace"):
            print(f"--- {a.profile_kind}, {label}, {a.profile}/s: {path}")
            with open(path) as f:
                print(f.read())
        elif os.path.exists(path):
            print(f"--- py-spy ({a.profile_kind}), {label}, {a.profile}/s: {path}")
            subprocess.run([sys.executable, os.path.join(ROOT, "perf", "_profile.py"), path, "25"])

    def best(label):
        ok = [r["ok_per_s"] for r in results.get(label, []) if keeps_up(r)]
        return max(ok) if ok else 0

    def at(label, rate, key):
        for r in results.get(label, []):
            if r["offered"] == rate:
                return r[key]
        return None

    def top(label):
        rows = results.get(label, [])
        return rows[-1]["ok_per_s"] if rows else None

    group_top = top("group 2ms") or top("group 0ms")
    naive_top = top("per-tap 2ms") or top("per-tap 0ms")
    summary = {
        "bench": "server",
        "max_taps_per_s_p99_under_100ms": best("group 0ms"),
        "max_taps_per_s_p99_under_100ms_2ms_fsync": best("group 2ms"),
        "p99_ms_at_3000": at("group 0ms", 3000, "p99_ms"),
        "p99_ms_at_3000_2ms_fsync": at("group 2ms", 3000, "p99_ms"),
        "cpu_us_per_tap": at("group 0ms", 3000, "cpu_us_per_tap"),
        "group_vs_per_tap": round(group_top / naive_top, 2) if group_top and naive_top else None,
        "per_tap_max_p99_under_100ms_2ms_fsync": best("per-tap 2ms"),
        "lost_acked": lost,
        "loop_cpu_us_per_tap": at("group 0ms", 3000, "loop_cpu_us_per_tap"),
        "p999_ms_at_3000": at("group 0ms", 3000, "p999_ms"),
        "loop_lag_p99_ms_at_3000": at("group 0ms", 3000, "loop_lag_p99_ms"),
        "price_age_p99_ms_at_3000": at("group 0ms", 3000, "price_age_p99_ms"),
    }
    if idles:
        summary["idle_loop_pct"] = statistics.median(r["idle_loop_pct"] for r in idles)
    if 4 in market_sets:
        # one market vs four, side by side at the highest rate both ran
        four = "group 0ms 4 markets"
        common = ({r["offered"] for r in results.get("group 0ms", [])}
                  & {r["offered"] for r in results.get(four, [])})
        rate = max(common) if common else None
        one_cpu, four_cpu = at("group 0ms", rate, "cpu_us_per_tap"), at(four, rate, "cpu_us_per_tap")
        summary.update({
            "markets_compared_at": rate,
            "one_market_cpu_us_per_tap": one_cpu,
            "four_markets_cpu_us_per_tap": four_cpu,
            "one_market_loop_cpu_us_per_tap": at("group 0ms", rate, "loop_cpu_us_per_tap"),
            "four_markets_loop_cpu_us_per_tap": at(four, rate, "loop_cpu_us_per_tap"),
            "one_market_taps_per_s": at("group 0ms", rate, "ok_per_s"),
            "four_markets_taps_per_s": at(four, rate, "ok_per_s"),
            "one_market_p99_ms": at("group 0ms", rate, "p99_ms"),
            "four_markets_p99_ms": at(four, rate, "p99_ms"),
            "four_markets_max_taps_per_s_p99_under_100ms": best(four),
            "one_market_price_age_p99_ms": at("group 0ms", rate, "price_age_p99_ms"),
            "four_markets_price_age_p99_ms": at(four, rate, "price_age_p99_ms"),
            "four_vs_one_cpu_per_tap": round(four_cpu / one_cpu, 2) if one_cpu and four_cpu
            else None,
        })
    if "4x" in market_sets:
        # v1.1 taps spread over the four markets, beside the one-market server
        spread = "group 0ms 4 markets spread"
        common = ({r["offered"] for r in results.get("group 0ms", [])}
                  & {r["offered"] for r in results.get(spread, [])})
        rate = max(common) if common else max((r["offered"] for r in results.get(spread, [])),
                                              default=None)
        one_cpu, sp_cpu = at("group 0ms", rate, "cpu_us_per_tap"), at(spread, rate, "cpu_us_per_tap")
        summary.update({
            "spread_compared_at": rate,
            "spread_taps_per_s": at(spread, rate, "ok_per_s"),
            "spread_cpu_us_per_tap": sp_cpu,
            "spread_p99_ms": at(spread, rate, "p99_ms"),
            "spread_price_age_p50_ms": at(spread, rate, "price_age_p50_ms"),
            "spread_price_age_p99_ms": at(spread, rate, "price_age_p99_ms"),
            "spread_vs_one_cpu_per_tap": round(sp_cpu / one_cpu, 2) if one_cpu and sp_cpu
            else None,
        })
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

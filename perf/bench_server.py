"""Server benchmark: durable taps/s and ack latency under an open-loop load.

It starts ``tapgrid serve`` on a fresh database and drives it from a
separate driver process (``perf/_driver.py``) at constant arrival rates,
steps 1,000, 2,000, 3,000 and 5,000 taps/s. Per step: acked taps/s, ack
latency p50/p99/p99.9 (from each tap's scheduled send time), rejects by
reason, the server's CPU per acked tap (from /proc) and its RSS. The same
run measures, side by side, the naive mode ``--commit per-tap`` (one
transaction per tap), and both again with a 2 ms artificial commit delay,
since fsync here (~0.1 ms) is far faster than on typical disks. At the end
it checks that the database holds every acked bet.

    .venv/bin/python perf/bench_server.py                  # 30 s steps, ~12 min
    .venv/bin/python perf/bench_server.py --seconds 10 --runs 3

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
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "perf", "results")
sys.path.insert(0, ROOT)

from tests.serverproc import LoadServer  # noqa: E402

class Server(LoadServer):
    """A fresh database per commit mode, the player limits lifted."""

    def __init__(self, workdir, commit, delay_ms):
        db = os.path.join(workdir, f"{commit}-{delay_ms}.db")
        super().__init__(db, "--seed", "1", "--commit", commit, "--commit-delay-ms", str(delay_ms))
        self.start()


def wait_drained(server, timeout=120):
    """Let the Writer finish the previous step's backlog before the next."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(server.url + "/metrics", timeout=5) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("tapgrid_writer_pending_taps "):
                        if float(line.split()[1]) == 0:
                            return
        except OSError:
            pass
        time.sleep(0.5)


def run_step(server, rate, seconds, conns):
    wait_drained(server)
    driver = subprocess.Popen([sys.executable, os.path.join(ROOT, "perf", "_driver.py"), "--url",
                               server.url, "--rate", str(rate), "--seconds", str(seconds),
                               "--conns", str(conns)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    cpu0 = cpu1 = None
    lines = []
    for line in driver.stdout:           # CPU is counted while taps flow, not during setup
        if line.strip() == "START":
            cpu0 = server.cpu_seconds()
        elif line.strip() == "END":
            cpu1 = server.cpu_seconds()
        else:
            lines.append(line)
    driver.wait(60)
    out = subprocess.CompletedProcess(driver.args, driver.returncode, "".join(lines),
                                      driver.stderr.read())
    if out.returncode != 0:
        log = server.log()
        raise RuntimeError("driver failed: " + out.stderr[-1500:] + "\nserver log:\n" + log[-3000:])
    cpu = cpu1 - cpu0
    r = json.loads(out.stdout.strip().splitlines()[-1])
    bets = r.pop("bets")
    r["cpu_us_per_tap"] = round(cpu * 1e6 / r["acked_ok"], 1) if r["acked_ok"] else None
    r["server_cpu_s"] = round(cpu, 2)
    r["rss_mb"] = round(server.rss_mb(), 1)
    return r, bets


def lost_bets(db, acked):
    from actors import open_readonly
    conn = open_readonly(db)
    try:
        have = {row[0] for row in conn.execute("SELECT id FROM bets")}
    finally:
        conn.close()
    return len(set(acked) - have)


def run_mode(workdir, commit, delay_ms, steps, seconds, conns):
    server = Server(workdir, commit, delay_ms)
    rows, acked = [], []
    try:
        for rate in steps:
            r, bets = run_step(server, rate, seconds, conns)
            acked += bets
            rows.append(r)
            print(f"  {commit:8} delay={delay_ms}ms offered={rate:>5} acked/s={r['ok_per_s']:>7.0f} "
                  f"p50={r['p50_ms']:.1f} p99={r['p99_ms']:.1f} p99.9={r['p999_ms']:.1f} ms "
                  f"cpu/tap={r['cpu_us_per_tap']}µs rss={r['rss_mb']}MB rejects={r['rejects']}",
                  flush=True)
    finally:
        server.stop()
    return rows, lost_bets(server.db, acked)


def median_rows(runs):
    """Per step, the median of each numeric figure over the runs."""
    out = []
    for step_rows in zip(*runs):
        m = dict(step_rows[0])
        for k, v in step_rows[0].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                vals = [r[k] for r in step_rows if r.get(k) is not None]
                m[k] = statistics.median(vals) if vals else None
        out.append(m)
    return out


def plot(results, steps, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, rows in results.items():
        for key, style in (("p50_ms", ":"), ("p99_ms", "-"), ("p999_ms", "--")):
            ax.plot(steps, [r[key] for r in rows], style, marker="o",
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
    ap.add_argument("--steps", default="1000,2000,3000,5000")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--modes", default="group:0,per-tap:0,group:2,per-tap:2",
                    help="commit:delay_ms pairs")
    a = ap.parse_args()
    steps = [int(s) for s in a.steps.split(",")]
    modes = [(m.split(":")[0], float(m.split(":")[1])) for m in a.modes.split(",")]
    workdir = tempfile.mkdtemp(prefix="tapgrid-bench-")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"driver and server on the same box; {a.seconds:.0f} s steps, {a.runs} run(s)", flush=True)
    results, lost = {}, 0
    try:
        for commit, delay in modes:
            label = f"{commit} {delay:g}ms"
            runs = []
            for _ in range(a.runs):
                rows, missing = run_mode(workdir, commit, delay, steps, a.seconds, a.conns)
                lost += missing
                runs.append(rows)
            results[label] = median_rows(runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "server.json"), "w") as f:
        json.dump({"steps": steps, "seconds": a.seconds, "runs": a.runs, "results": results}, f, indent=1)
    plot(results, steps, os.path.join(RESULTS, "server_latency.png"))

    def best(label):
        ok = [r["ok_per_s"] for r in results.get(label, []) if r["p99_ms"] is not None
              and r["p99_ms"] < 100 and r["ok_per_s"] >= 0.98 * r["offered"]]
        return max(ok) if ok else 0

    def at(label, rate, key):
        for r in results.get(label, []):
            if r["offered"] == rate:
                return r[key]
        return None

    top = max(steps)
    group_top = at("group 2ms", top, "ok_per_s") or at("group 0ms", top, "ok_per_s")
    naive_top = at("per-tap 2ms", top, "ok_per_s") or at("per-tap 0ms", top, "ok_per_s")
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
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

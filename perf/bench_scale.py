"""One process against the split, side by side in one run (issue 10).

Contenders, each on a fresh database with the player limits lifted:
- ``single``: ``tapgrid serve`` (everything in one gevent loop);
- ``split``: ``tapgrid serve --gateways 2`` (the market, two gateways on one
  SO_REUSEPORT port, the supervisor's private redis-server on a Unix socket).

Phases, with the same load generators for both:
1. max taps/s with p99 < 100 ms: perf/bench_server.py's open-loop driver
   (``run_step``), offered rate stepped up by ``--step`` until p99 passes
   100 ms or acks fall behind; CPU per acked tap per process (market, each
   gateway, Redis, the supervisor) from /proc over each step; every acked
   bet checked in the database afterwards, and ``tapgrid audit`` run;
2. fan-out and reconnect storm at ``--clients`` connections:
   perf/bench_storm.py's ``measure`` (ticks/s per client and lag p99, then
   every crowd connection dropped at once from the client side, an RST each
   by default (``--drop``, as bench_storm's), and the time
   until all are back, with a steady tapper's p99 meanwhile).

``--runs`` repeats phase 1 (alternating the contenders) and the figures are
medians; ``--storm-runs`` the same for phase 2. The load generators share
the box's cores with the servers: on two cores the split's processes fight
the driver and each other, so the split's figures here are pessimistic;
the per-role CPU is what the capacity model in perf/README.md builds on.

    .venv/bin/python perf/bench_scale.py                       # 10 s steps, 1 run
    .venv/bin/python perf/bench_scale.py --runs 3 --storm-runs 1
    .venv/bin/python perf/bench_scale.py --clients 2000 --seconds 5   # a quick look
    .venv/bin/python perf/bench_scale.py --runs 0 --cpu-runs 0 --grid 1   # storm only, v1 grids

Writes perf/results/scale.json; the last line printed is the JSON summary.
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import bench_server  # noqa: E402
import bench_storm  # noqa: E402
from tests.serverproc import LOAD_ENV, ClusterProcess, raise_nofile  # noqa: E402

RESULTS = os.path.join(ROOT, "perf", "results")


def _status_mb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0


class Split(ClusterProcess):
    """``serve --gateways 2`` seen as one server by the two benchmarks: its
    CPU and memory are its processes' sums; ``cpu_by_role`` splits them."""
    base_env = LOAD_ENV

    def __init__(self, db, gateways=2):
        super().__init__(db, "--seed", "1", gateways=gateways)

    def cpu_by_role(self):
        out = super().cpu_by_role()
        out["supervisor"] = super().cpu_seconds()
        return out

    def role_stats(self, sys_out=None):
        """bench_server's per-thread split (CPU, wake-ups) is for one process;
        here the split is per process (``cpu_by_role``)."""
        return {}, {}

    def cpu_seconds(self):
        return sum(v for v in self.cpu_by_role().values() if v is not None)

    def thread_cpu(self):
        """(all processes, their event-loop threads) CPU seconds."""
        loops = [bench_server._stat_cpu(f"/proc/{p}/task/{p}/stat")
                 for p in list(self.roles().values()) + [self.proc.pid]]
        return self.cpu_seconds(), sum(x for x in loops if x is not None)

    def _sum(self, field):
        return sum(_status_mb(p, field) for p in list(self.roles().values()) + [self.proc.pid])

    def rss_mb(self):
        return self._sum("VmRSS")

    def peak_rss_mb(self):
        return self._sum("VmHWM")


def start(kind, workdir, label):
    """A fresh started server of either kind, on a database of its own."""
    where = os.path.join(workdir, f"{kind}-{label}")
    if kind == "single":
        return bench_server.Server(where, "group", 0)      # group commit, the real fsync
    return Split(os.path.join(where, "split.db")).start()


def audit_ok(db):
    out = subprocess.run([sys.executable, "-m", "web.cli", "audit", "--db", db], cwd=ROOT,
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    return out.returncode == 0


def max_taps(kind, workdir, run, a):
    """Phase 1 on a fresh server: the steps, the acked bets lost, audit."""
    server = start(kind, workdir, f"taps{run}")
    rows, acked, rate = [], [], a.first
    try:
        while True:
            r, bets = bench_server.run_step(server, rate, a.seconds, a.conns)
            acked += bets
            rows.append(r)
            roles = r.get("cpu_us_per_tap_by_role", {})
            print(f"  {kind:6} run {run} offered={rate:>5} acked/s={r['ok_per_s']:>7.0f} "
                  f"p50={r['p50_ms']} p99={r['p99_ms']} ms cpu/tap={r['cpu_us_per_tap']}µs "
                  f"{roles} rejects={r['rejects']} [load {os.getloadavg()[0]:.2f}]", flush=True)
            if not bench_server.keeps_up(r) or rate >= a.limit:
                break
            rate += a.step
    finally:
        server.stop(60)
    lost = bench_server.lost_bets(server.db, acked)
    return {"rows": rows, "lost_acked": lost, "audit_ok": audit_ok(server.db),
            "best": max([r["ok_per_s"] for r in rows if bench_server.keeps_up(r)] or [0])}


def storm(kind, workdir, run, a):
    """Phase 2 on a fresh server (client-side drop: no backdoor needed)."""
    server = start(kind, workdir, f"storm{run}")
    sa = bench_storm.parser().parse_args(["--clients", str(a.clients), "--procs", str(a.procs),
                                          "--drop", a.drop, "--fanout-s", str(a.fanout_s),
                                          "--grid", str(a.grid)]
                                         + (["--profile", a.profile] if a.profile else []))
    try:
        out = bench_storm.measure(server, sa)
        if out.get("tracebacks_logged"):
            # The server's log goes when the run's workdir does: keep it, to read why.
            path = os.path.join(os.path.dirname(a.out), f"storm-{kind}-{run}-{os.getpid()}.log")
            with open(path, "w") as f:
                f.write(server.log())
            out["log_kept"] = path
        return out
    finally:
        server.stop(60)


def cpu_slopes(kind, workdir, run, a):
    """Per process, CPU at two offered rates on one fresh server: the
    marginal µs per tap (the slope, what one more tap costs: the capacity
    model's figure) and the fixed cost (% of a core spent whatever the rate:
    pricing, ticks, heartbeats, polls), whether or not p99 kept under 100 ms."""
    server = start(kind, workdir, f"cpu{run}")
    rows = []
    try:
        for rate in a.cpu_rates:
            r, _ = bench_server.run_step(server, rate, a.seconds, a.conns)
            rows.append(r)
            print(f"  cpu {kind:6} run {run} offered={rate:>5} acked/s={r['ok_per_s']:>7.0f} "
                  f"p99={r['p99_ms']} ms {r.get('cpu_us_per_tap_by_role') or r['cpu_us_per_tap']} "
                  f"[load {os.getloadavg()[0]:.2f}]", flush=True)
    finally:
        server.stop(60)
    (lo, hi) = rows[0], rows[-1]

    def per_s(row, key):      # CPU seconds per second at that step
        us = row["cpu_us_per_tap"] if key == "all" else row["cpu_us_per_tap_by_role"].get(key)
        return None if us is None else us * row["ok_per_s"] / 1e6
    keys = ["all"] + sorted((lo.get("cpu_us_per_tap_by_role") or {}).keys())
    out = {"rates": [lo["ok_per_s"], hi["ok_per_s"]], "p99_ms": [lo["p99_ms"], hi["p99_ms"]]}
    for k in keys:
        c0, c1 = per_s(lo, k), per_s(hi, k)
        if c0 is None or c1 is None or hi["ok_per_s"] <= lo["ok_per_s"]:
            continue
        slope = (c1 - c0) / (hi["ok_per_s"] - lo["ok_per_s"])
        out[k] = {"marginal_us_per_tap": round(slope * 1e6, 1),
                  "fixed_pct_core": round(100 * (c0 - slope * lo["ok_per_s"]), 1),
                  "us_per_tap_at": [round(c0 * 1e6 / lo["ok_per_s"], 1),
                                    round(c1 * 1e6 / hi["ok_per_s"], 1)]}
    print(f"  cpu {kind} run {run}: {json.dumps(out)}", flush=True)
    return out


def role_figures(row):
    """µs of CPU per acked tap: the market, the gateways together (the cost
    of one tap in the gateway tier), each gateway, Redis."""
    roles = row.get("cpu_us_per_tap_by_role") or {}
    gws = {k: v for k, v in roles.items() if k.startswith("gateway")}
    return {"market": roles.get("market"), "gateways": round(sum(gws.values()), 1) if gws else None,
            "each_gateway": gws, "redis": roles.get("redis"), "supervisor": roles.get("supervisor"),
            "at_offered": row["offered"], "all_roles": row["cpu_us_per_tap"]}


def med(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--first", type=int, default=1000)
    ap.add_argument("--step", type=int, default=1000)
    ap.add_argument("--limit", type=int, default=30000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--cpu-rates", default="500,2000",
                    help="two offered rates for the marginal CPU per tap per process")
    ap.add_argument("--cpu-runs", type=int, default=1)
    ap.add_argument("--storm-runs", type=int, default=1)
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--fanout-s", type=float, default=15)
    ap.add_argument("--grid", type=int, choices=(1, 2), default=2,
                    help="the grid frames the crowd asks for (2: grid2, as the page does)")
    ap.add_argument("--drop", default="reset", choices=list(bench_storm.CROWD_DROPS),
                    help="how the crowd ends its connections for the storm (bench_storm's --drop)")
    ap.add_argument("--profile", metavar="DIR",
                    help="py-spy each gateway in the storm phase (bench_storm's --profile)")
    ap.add_argument("--kinds", default="single,split",
                    help="the contenders to run (split alone: half the time, for side-by-sides)")
    ap.add_argument("--out", default=os.path.join(RESULTS, "scale.json"))
    a = ap.parse_args()
    kinds = tuple(k for k in ("single", "split") if k in a.kinds.split(","))
    a.cpu_rates = [int(x) for x in a.cpu_rates.split(",")]
    raise_nofile(65536)
    os.makedirs(RESULTS, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}; drivers and servers on the same box; load "
          f"{os.getloadavg()}", flush=True)
    workdir = tempfile.mkdtemp(prefix="tapgrid-scale-")
    res = {"single": {"taps": [], "storm": [], "cpu": []}, "split": {"taps": [], "storm": [], "cpu": []},
           "loadavg_start": os.getloadavg()}
    try:
        for run in range(a.runs):
            for kind in kinds:
                res[kind]["taps"].append(max_taps(kind, workdir, run, a))
        for run in range(a.cpu_runs):
            for kind in kinds:
                res[kind]["cpu"].append(cpu_slopes(kind, workdir, run, a))
        for run in range(a.storm_runs):
            for kind in kinds:
                out = storm(kind, workdir, run, a)
                print(f"  storm {kind}: {json.dumps(out)[:600]}", flush=True)
                res[kind]["storm"].append(out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    res["loadavg_end"] = os.getloadavg()

    # CPU per role at the split's highest step that kept up, per run
    split_roles = []
    for t in res["split"]["taps"]:
        ok = [r for r in t["rows"] if bench_server.keeps_up(r)] or t["rows"][:1]
        split_roles.append(role_figures(ok[-1]))
    res["split_cpu_by_role"] = split_roles

    def storm_med(kind, key, sub=None):
        return med([(s[sub] if sub else s).get(key) for s in res[kind]["storm"]
                    if (s.get(sub) if sub else s) is not None])

    def marginal(kind, role):
        return med([c.get(role, {}).get("marginal_us_per_tap") for c in res[kind]["cpu"]])

    def top_rate(role, kind="split"):
        """µs per acked tap at the top rate, per run; "gateway": all gateways
        together (the gateway tier's cost of one tap)."""
        per_run = []
        for c in res[kind]["cpu"]:
            vals = [v["us_per_tap_at"][1] for k, v in c.items()
                    if isinstance(v, dict) and k.startswith(role)]
            per_run.append(round(sum(vals), 1) if vals else None)
        return med(per_run)

    summary = {
        "bench": "scale",
        "single_max_taps_per_s": med([t["best"] for t in res["single"]["taps"]]),
        "split_max_taps_per_s": med([t["best"] for t in res["split"]["taps"]]),
        # all-in (fixed costs included) at the CPU phase's top rate when it ran
        "market_cpu_us_per_tap": top_rate("market") if a.cpu_runs
        else med([r["market"] for r in split_roles]),
        "gateway_cpu_us_per_tap": top_rate("gateway") if a.cpu_runs
        else med([r["gateways"] for r in split_roles]),
        "storm_steady_p99_ms_single": storm_med("single", "steady_p99_ms"),
        "storm_steady_p99_ms_split": storm_med("split", "steady_p99_ms"),
        "fanout_lag_p99_ms_split": storm_med("split", "lag_p99_ms", "fanout"),
        "lost_acked": sum(t["lost_acked"] for k in ("single", "split") for t in res[k]["taps"]),
    }
    res["extra"] = {
        "redis_cpu_us_per_tap": med([r["redis"] for r in split_roles]),
        "at_max_step_split": split_roles,
        "us_per_tap_at_top_cpu_rate": {k: {role: top_rate(role, k) for role in
                                           ("all", "market", "redis", "gateway-0", "gateway-1")}
                                       for k in ("single", "split")},
        "marginal_us_per_tap": {k: {role: marginal(k, role) for role in
                                    ("all", "market", "redis", "gateway-0", "gateway-1")}
                                for k in ("single", "split")},
        "audit_ok": all(t["audit_ok"] for k in ("single", "split") for t in res[k]["taps"]),
        **{f"{k}_{key}": storm_med(k, key) for k in ("single", "split")
           for key in ("all_back_s", "ticks_per_s", "fanout_lag_p99_ms")},
    }
    res["summary"] = summary
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print("extra: " + json.dumps(res["extra"]))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

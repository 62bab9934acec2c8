"""``make load``: start ``tapgrid serve`` on a fresh database, run locust
headless against it (perf/locustfile.py), keep locust's HTML report and
CSV stats in perf/results/, stop the server.

    python perf/load.py --users 50 --seconds 60 --rate 20

The last line is JSON with locust's aggregate figures for the ``tap``
requests and the server's CPU per acked tap.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.serverproc import ROOT, LoadServer  # noqa: E402

RESULTS = os.path.join(ROOT, "perf", "results")


def _tap_row(prefix):
    with open(prefix + "_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "tap":
                return row
    return None


def _failures(prefix):
    out = {}
    try:
        with open(prefix + "_failures.csv", newline="") as f:
            for row in csv.DictReader(f):
                if row["Name"] == "tap":
                    reason = row["Error"].split("(")[-1].rstrip(")'\"").strip("'\"")
                    out[reason] = out.get(reason, 0) + int(row["Occurrences"])
    except OSError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--rate", type=float, default=20.0, help="taps/s per user")
    ap.add_argument("--name", default="load", help="file prefix in perf/results/")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra `tapgrid serve` argument (repeatable)")
    a = ap.parse_args()

    os.makedirs(RESULTS, exist_ok=True)
    prefix = os.path.join(RESULTS, a.name)
    tmp = tempfile.mkdtemp(prefix="tapgrid-load-")
    server = LoadServer(os.path.join(tmp, "tapgrid.db"), *a.server_arg)
    server.start()
    print(f"server pid {server.pid} on {server.url}, db {server.db}", flush=True)
    cpu0 = server.cpu_seconds()
    locust = shutil.which("locust", path=os.path.dirname(sys.executable)) or "locust"
    cmd = [locust, "-f", os.path.join(ROOT, "perf", "locustfile.py"), "--headless",
           "-H", server.url, "-u", str(a.users), "-r", str(a.users), "-t", f"{a.seconds}s",
           "--tap-rate", str(a.rate), "--html", prefix + ".html", "--csv", prefix,
           "--only-summary", "--stop-timeout", "5", "--exit-code-on-error", "0"]
    t0 = time.time()
    try:
        rc = subprocess.call(cmd, cwd=ROOT)
    finally:
        cpu = server.cpu_seconds() - cpu0
        peak = server.peak_rss_mb()
        code = server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    row = _tap_row(prefix)
    summary = {"bench": "load", "users": a.users, "seconds": a.seconds, "rate_per_user": a.rate,
               "locust_rc": rc, "server_exit": code, "wall_s": round(time.time() - t0, 1)}
    if row:
        reqs, fails = int(row["Request Count"]), int(row["Failure Count"])
        summary.update({
            "taps": reqs, "failures": fails,
            "rps": round(float(row["Requests/s"]), 1),
            "p50_ms": float(row["50%"]), "p95_ms": float(row["95%"]),
            "p99_ms": float(row["99%"]), "max_ms": float(row["Max Response Time"]),
            "failures_by_reason": _failures(prefix),
            "server_cpu_us_per_ok_tap": round(cpu * 1e6 / max(1, reqs - fails), 1),
            "server_peak_rss_mb": round(peak or 0, 1),
            "report": os.path.relpath(prefix + ".html", ROOT)})
    print(json.dumps(summary))
    return 0 if rc == 0 and row else 1


if __name__ == "__main__":
    sys.exit(main())

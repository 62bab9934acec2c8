"""Operations benchmark (issue 13): the recovery point of the Litestream
replica, and what an online backup costs taps.

    .venv/bin/python perf/bench_ops.py [--trials 10] [--sync-ms 1000] [--load-s 5]
        [--backup-bets 300000] [--phase-s 30] [--skip-replica] [--skip-backup] [--root DIR]

1. Recovery point: ``--trials`` disasters (tests/replica_trial.py): a real
   server with ``--replica file://...`` under taps from 6 players, then
   Litestream and the server SIGKILLed at once and the files deleted,
   ``tapgrid restore``, ``tapgrid audit``. Per trial, the acknowledged
   history lost = the kill time minus the oldest acked bet missing from the
   restore (0 when none is missing). Reported: p50/p99/max over the trials.
2. Backup: a server on a database of ``--backup-bets`` settled bets; players
   tap for ``--phase-s`` without a backup, then for ``--phase-s`` while
   ``tapgrid backup`` runs back to back; client-side ack p50/p99 of both
   phases, measured in the same run.

The last line printed is JSON.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/perf/", 1)[0])

import gevent  # noqa: E402
import gevent.subprocess  # noqa: E402

from actors.archive import fsync_path  # noqa: E402
from tests.replica_trial import run_trial  # noqa: E402
from tests.serverproc import LOAD_ENV, ROOT, ServerProcess  # noqa: E402


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def recovery_point(args):
    lost_ms, lost_n, acked = [], [], 0
    for i in range(args.trials):
        d = tempfile.mkdtemp(prefix="bench_replica_")
        try:
            r = run_trial(d, sync_ms=args.sync_ms, load_s=args.load_s, seed=i + 1)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        if r["audit_rc"] != 0:
            raise SystemExit("audit failed after restore: " + r["audit_out"])
        lost_ms.append(r["lost_ms"])
        lost_n.append(r["lost"])
        acked += len(r["acked"])
        print(f"trial {i + 1}: {len(r['acked'])} acked, {r['lost']} lost,"
              f" {r['lost_ms']:.0f} ms of acked history lost; audit ok", flush=True)
    return {"trials": args.trials, "sync_ms": args.sync_ms,
            "recovery_point_p50_ms": round(pct(lost_ms, .5)),
            "recovery_point_p99_ms": round(pct(lost_ms, .99)),
            "recovery_point_max_ms": round(max(lost_ms)),
            "lost_bets_p50": pct(lost_n, .5), "acked_total": acked}


def _player(url, lat, stop, phase):
    from web.client import TapgridClient
    c = TapgridClient(url, backoff_base=0.2, reconnect=False)
    c.guest()
    c.connect()
    c.wait_for(lambda: c.grid is not None, 15)
    rng = random.Random()
    try:
        while not stop[0]:
            cell = c.open_cell(offset_bands=rng.randint(-3, 3))
            if cell is None:
                gevent.sleep(0.05)
                continue
            t = time.perf_counter()
            ack = c.tap(cell[0], cell[1], 100, min_mult=101, timeout=10)
            if ack.get("ok"):
                lat[phase[0]].append((time.perf_counter() - t) * 1000)
            gevent.sleep(0.02)
    finally:
        c.close()


def backup_effect(args):
    from perf.bench_storage import generate
    d = tempfile.mkdtemp(prefix="bench_backup_")
    db = os.path.join(d, "tapgrid.db")
    try:
        now = int(time.time() * 1000)
        generate(db, 2, args.backup_bets // 2, now, random.Random(7))
        # on disk before the first phase: else its writeback lands in the
        # phase without backups (p99s of 161 and 185 ms there, stop 23)
        fsync_path(db)
        size = os.path.getsize(db)
        server = ServerProcess(db, "--seed", "1", env=dict(LOAD_ENV, TAPGRID_MIN_FREE_DISK="0")
                               ).start()
        lat = {"without": [], "during": []}
        phase, stop = ["without"], [False]
        backups = []
        try:
            jobs = [gevent.spawn(_player, server.url, lat, stop, phase) for _ in range(6)]
            gevent.sleep(args.phase_s)
            phase[0] = "during"
            t_end = time.monotonic() + args.phase_s
            n = 0
            while time.monotonic() < t_end:
                out = os.path.join(d, f"backup{n}.db")
                t = time.monotonic()
                root = args.root or ROOT
                proc = gevent.subprocess.Popen(
                    [sys.executable, "-m", "web.cli", "backup", "--db", db, out], cwd=root,
                    env=dict(os.environ, PYTHONPATH=root), stdout=subprocess.DEVNULL)
                if proc.wait() != 0:
                    raise SystemExit("backup failed")
                backups.append(time.monotonic() - t)
                os.remove(out)
                n += 1
            stop[0] = True
            gevent.joinall(jobs, timeout=15)
        finally:
            stop[0] = True
            server.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    w, b = lat["without"], lat["during"]
    print(f"backup: {len(backups)} backups of {size / 1e6:.0f} MB, {pct(backups, .5):.2f} s each;"
          f" tap ack p50/p99 without {pct(w, .5):.1f}/{pct(w, .99):.1f} ms ({len(w)} taps),"
          f" during {pct(b, .5):.1f}/{pct(b, .99):.1f} ms ({len(b)} taps)")
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {"backup_db_mb": round(size / 1e6), "backup_s": round(pct(backups, .5), 2),
            "uptime": "load average " + ", ".join(load),
            "backups": len(backups),
            "tap_p50_ms_without_backup": round(pct(w, .5), 2),
            "tap_p99_ms_without_backup": round(pct(w, .99), 2),
            "tap_p50_ms_during_backup": round(pct(b, .5), 2),
            "tap_p99_ms_during_backup": round(pct(b, .99), 2),
            "tap_p99_gap_ms_backup": round(pct(b, .99) - pct(w, .99), 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--sync-ms", type=int, default=1000)
    ap.add_argument("--load-s", type=float, default=5.0)
    ap.add_argument("--backup-bets", type=int, default=300_000)
    # 30 s a phase (10 to stop 23: the p99 of ~1,500 taps, the top 15, which
    # one stall of the shared disk decided)
    ap.add_argument("--phase-s", type=float, default=30.0)
    ap.add_argument("--root", default=None,
                    help="run `tapgrid backup` from this checkout (e.g. base); the server is this one's")
    ap.add_argument("--skip-replica", action="store_true")
    ap.add_argument("--skip-backup", action="store_true")
    args = ap.parse_args()
    summary = {"bench": "ops"}
    if not args.skip_replica:
        summary.update(recovery_point(args))
    if not args.skip_backup:
        summary.update(backup_effect(args))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

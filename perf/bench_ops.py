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


def _player(url, lat, stop, phase, sent):
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
                ms = (time.perf_counter() - t) * 1000
                lat[phase[0]].append(ms)
                sent.append((time.time() - ms / 1000, ms, phase[0]))
            gevent.sleep(0.02)
    finally:
        c.close()


def _strace(pid_or_cmd, out):
    """``strace`` of the fsync family, wall-clock stamps and durations
    (``--seccomp-bpf``: only those syscalls stop the tracee)."""
    base = ["strace", "-f", "--seccomp-bpf", "-ttt", "-T", "-e", "trace=fsync,fdatasync",
            "-o", out]
    return base + (["-p", str(pid_or_cmd)] if isinstance(pid_or_cmd, int) else list(pid_or_cmd))


def _syncs(path):
    """(tid, start, seconds) of each fsync/fdatasync in an strace -f -ttt -T file."""
    import re
    pat = re.compile(r"^(\d+)\s+(\d+\.\d+) f(?:data)?sync\(.*<(\d+\.\d+)>$")
    out = []
    try:
        with open(path) as f:
            for line in f:
                m = pat.match(line.strip())
                if m:
                    out.append((int(m[1]), float(m[2]), float(m[3])))
    except OSError:
        pass
    return out


def _thread_names(pid):
    names = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                names[int(task)] = f.read().strip()
        except OSError:
            pass
    return names


def backup_trace(d, spans, sent, server_syncs, names, backup_syncs):
    """What the slowest taps during the backups overlapped: the server's
    own fsyncs (the commit's: the Writer's lane thread, told by its name),
    each backup's fsyncs, and the backup's phases."""
    lane = {t for t, n in names.items() if "commit" in n or "lane" in n or "writer" in n}
    commit = [(a, s) for t, a, s in server_syncs if t in lane] or [(a, s) for _, a, s in server_syncs]
    phases = {}
    for a, s in commit:
        ph = "during" if any(b0 <= a < b1 for b0, b1 in spans) else (
            "without" if a < spans[0][0] else "after") if spans else "without"
        phases.setdefault(ph, []).append(s * 1000)
    fs = {ph: {"n": len(v), "p50": round(pct(v, .5), 2), "p99": round(pct(v, .99), 2),
               "max": round(max(v), 2)} for ph, v in phases.items()}
    without = [ms for _, ms, ph in sent if ph == "without"]
    cut = pct(without, .99)
    slow = [(t, ms) for t, ms, ph in sent if ph == "during" and ms >= cut]
    blame = {}
    for t, ms in slow:
        end = t + ms / 1000
        over = set()
        if any(a < end and a + s > t and s * 1000 >= 5 for a, s in commit):
            over.add("commit_fsync_over_5ms")
        if any(a < end and a + s > t for a, s in backup_syncs):
            over.add("backup_fsync")
        # a backup's start (the CLI's imports, ~0.3 s of CPU) or its end (the
        # quick_check, the journal-mode switch, the final fsync)
        if any(b0 <= t < b0 + 0.5 for b0, _ in spans):
            over.add("backup_first_0.5s")
        if any(b1 - 0.3 <= t < b1 for _, b1 in spans):
            over.add("backup_last_0.3s")
        for k in over or {"none"}:
            blame[k] = blame.get(k, 0) + 1
    bs = [s * 1000 for _, s in backup_syncs]
    return {"commit_fsync_ms": fs, "commit_thread_names": sorted({names.get(t, "?") for t, _, _
                                                                   in server_syncs}),
            "slow_taps_during": len(slow), "slow_cut_ms": round(cut, 2),
            "slow_overlapping": blame,
            "backup_fsyncs": {"n": len(bs), "p50": round(pct(bs, .5), 2),
                              "max": round(max(bs), 2)} if bs else None}


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
        env = dict(LOAD_ENV, TAPGRID_MIN_FREE_DISK="0")
        if args.commit_priority:
            env["TAPGRID_COMMIT_PRIORITY"] = args.commit_priority
        server = ServerProcess(db, "--seed", "1", env=env).start()
        lat = {"without": [], "during": [], "after": []}
        phase, stop = ["without"], [False]
        backups, spans, sent = [], [], []
        tracer, backup_syncs = None, []
        if args.trace:
            tracer = subprocess.Popen(_strace(server.pid, os.path.join(d, "server.strace")),
                                      stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        try:
            jobs = [gevent.spawn(_player, server.url, lat, stop, phase, sent) for _ in range(6)]
            gevent.sleep(args.phase_s)
            phase[0] = "during"
            t_end = time.monotonic() + args.phase_s
            n = 0
            root = args.root or ROOT
            while time.monotonic() < t_end:
                out = os.path.join(d, f"backup{n}.db")
                cmd = [sys.executable, "-m", "web.cli", "backup", "--db", db, out]
                if args.trace:
                    cmd = _strace(cmd, os.path.join(d, f"backup{n}.strace"))
                t, w = time.monotonic(), time.time()
                proc = gevent.subprocess.Popen(cmd, cwd=root, env=dict(os.environ, PYTHONPATH=root),
                                               stdout=subprocess.DEVNULL)
                if proc.wait() != 0:
                    raise SystemExit("backup failed")
                backups.append(time.monotonic() - t)
                spans.append((w, time.time()))
                if args.trace:
                    backup_syncs += [(a, s) for _, a, s in
                                     _syncs(os.path.join(d, f"backup{n}.strace"))]
                os.remove(out)
                n += 1
                if args.backup_rest_s:
                    gevent.sleep(args.backup_rest_s)
            # without again after the backups: a window without on each side
            # of the one during, so the box's drift over the run does not
            # decide the gap (stop 26: the window without moved by 10 ms)
            phase[0] = "after"
            gevent.sleep(args.after_s)
            stop[0] = True
            gevent.joinall(jobs, timeout=15)
            names = _thread_names(server.pid)
        finally:
            stop[0] = True
            if tracer is not None:
                tracer.terminate()
                tracer.wait(10)
            server.stop()
        trace = (backup_trace(d, spans, sent, _syncs(os.path.join(d, "server.strace")), names,
                              backup_syncs) if args.trace else None)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    w, b, a = lat["without"], lat["during"], lat["after"]
    both = w + a
    print(f"backup: {len(backups)} backups of {size / 1e6:.0f} MB, {pct(backups, .5):.2f} s each;"
          f" tap ack p50/p99 without {pct(w, .5):.1f}/{pct(w, .99):.1f} ms ({len(w)} taps),"
          f" during {pct(b, .5):.1f}/{pct(b, .99):.1f} ms ({len(b)} taps),"
          f" after {pct(a, .5):.1f}/{pct(a, .99):.1f} ms ({len(a)} taps)")
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    out = {"backup_db_mb": round(size / 1e6), "backup_s": round(pct(backups, .5), 2),
           "uptime": "load average " + ", ".join(load),
           "backups": len(backups),
           "tap_p50_ms_without_backup": round(pct(w, .5), 2),
           "tap_p99_ms_without_backup": round(pct(w, .99), 2),
           "tap_p50_ms_during_backup": round(pct(b, .5), 2),
           "tap_p99_ms_during_backup": round(pct(b, .99), 2),
           "tap_p99_gap_ms_backup": round(pct(b, .99) - pct(w, .99), 2)}
    if a:
        # the gap against both windows without (before and after), pooled
        out.update({"tap_p99_ms_after_backup": round(pct(a, .99), 2),
                    "tap_p99_ms_without_both": round(pct(both, .99), 2),
                    "tap_p99_gap_ms_backup_both": round(pct(b, .99) - pct(both, .99), 2)})
    if trace:
        out["backup_trace"] = trace
    return out


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
    ap.add_argument("--after-s", type=float, default=0.0,
                    help="taps for this long without a backup after the backups (a second"
                         " window without: JSON keys *_both)")
    ap.add_argument("--backup-rest-s", type=float, default=0.0,
                    help="rest between backups (0: back to back, the worst case)")
    ap.add_argument("--commit-priority", choices=["fifo", "nice", "normal"], default=None,
                    help="the server's commit_priority (default: its own default)")
    ap.add_argument("--trace", action="store_true",
                    help="strace the server's and each backup's fsyncs: what the slowest taps"
                         " during the backups overlapped (JSON key backup_trace)")
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

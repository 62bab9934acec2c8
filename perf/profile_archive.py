"""Where the archive job's seconds go (issue 13), offline, no taps.

    .venv/bin/python perf/profile_archive.py HOT_DB [--days-old 7]

Copies ``HOT_DB`` (e.g. a ``bench_storage.py --cache`` file) to a temp
dir and runs the job as ``tapgrid archive`` does (this process the writer),
timing each kind of step: the job's own work between requests (the copy's
``INSERT ... SELECT``, the read-back and checksum, each delete chunk's
compare), each write request through the Store (the delete chunks, the
vacuum steps), and the compressor thread's parts (``pack_steps``: reading
the rows, encoding, lzma, the read-back). Seconds per 100,000 bets; the
last line is JSON.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/perf/", 1)[0])

from actors.archive import _columns, _job  # noqa: E402
from actors.archive._child import run_steps  # noqa: E402
from actors.archive._job import DAY_MS, archive_steps, new_report  # noqa: E402
from actors.store import DROP_SPAN  # noqa: E402
from actors.store._store import Store  # noqa: E402

T = {}
WORST = {}          # the longest write of each kind (ms): what one tap batch can wait behind


def add(key, dt):
    T[key] = T.get(key, 0.0) + dt


def timed(name, fn):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            add(name, time.perf_counter() - t)
    return wrapper


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("db")
    ap.add_argument("--hot-days", type=int, default=7)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="profile_archive_")
    db = os.path.join(d, "hot.db")
    shutil.copyfile(args.db, db)
    try:
        # the compressor's parts (its thread calls these module functions)
        _columns._encode = timed("compress: encode", _columns._encode)
        _columns._xz = timed("compress: lzma", _columns._xz)
        _columns.stored_xz = timed("compress: stored xz", _columns.stored_xz)
        _columns._residual = timed("compress: residual file", _columns._residual)
        _columns.unpack = timed("compress: read-back unpack", _columns.unpack)
        _columns._same = timed("compress: read-back compare", _columns._same)
        now = int(time.time() * 1000)
        store = Store(db)
        report = new_report()
        gen = archive_steps(db, os.path.join(d, "archive"), now, args.hot_days, report=report)
        os.makedirs(os.path.join(d, "archive"))
        phase = {"p": "other"}

        def phased(name, f):
            def wrapper(*a, **k):
                prev, phase["p"] = phase["p"], name
                try:
                    return (yield from f(*a, **k))
                finally:
                    phase["p"] = prev
            return wrapper
        _job._copy = phased("copy (INSERT ... SELECT)", _job._copy)
        _job.verify = phased("read-back and checksum", _job.verify)
        _job.delete_rows = phased("delete chunks' compare", _job.delete_rows)

        def write(stmts):
            kind = ("write: span drop" if any(s[0] == DROP_SPAN for s in stmts)
                    else "write: delete chunk" if any("DELETE FROM bet_rows" in s[0] for s in stmts)
                    else "write: vacuum step" if stmts[0][0].startswith("PRAGMA incremental")
                    else "write: other")
            t = time.perf_counter()
            store.write_batch(deletes=stmts, now=now)
            dt = time.perf_counter() - t
            add(kind, dt)
            WORST[kind] = max(WORST.get(kind, 0.0), round(dt * 1000, 2))

        # the job's own time = wall time inside the generator between requests
        class Gen:
            def send(self, v):
                t = time.perf_counter()
                try:
                    return gen.send(v)
                finally:
                    add("job: " + phase["p"], time.perf_counter() - t)

        t0 = time.perf_counter()
        run_steps(Gen(), write)
        wall = time.perf_counter() - t0
        store.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    n = report["bets"]
    per = {k: round(v * 100_000 / max(1, n), 2) for k, v in sorted(T.items())}
    for k, v in per.items():
        print(f"{k:32s} {v:7.2f} s / 100k bets")
    print(f"{n:,} bets in {wall:.1f} s ({n / wall:,.0f} bets/s); phases {report['phase_s']}")
    print("longest write (ms):", WORST)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(json.dumps({"bench": "profile_archive", "bets": n, "wall_s": round(wall, 2),
                      "s_per_100k": per, "worst_write_ms": WORST, "phase_s": report["phase_s"], "loadavg": load,
                      "day_ms": DAY_MS}))


if __name__ == "__main__":
    main()

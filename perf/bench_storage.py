"""Storage benchmark (issue 6): hot bytes per bet, archive bytes per bet,
archive throughput, tap latency with and without the archiver, and the days
until a 256 GB disk fills at 600 bets/s.

    .venv/bin/python perf/bench_storage.py [--days 10] [--per-day 150000] [--rate 600]
        [--load-s 10] [--dir DIR] [--cache DIR]

1. Generates ``--days`` UTC days of bets ending today, at 600 bets/s in
   compressed time (``--per-day`` bets a day, at 600/s from a random time of
   the day, stand for the day's 51.8 M: same shapes and time offsets, 1000
   users, random 16-char nonces and 64-byte signatures, 70% lost / 25% won /
   5% void), all settled.
2. Starts the real market on that file (``synchronous=FULL``) and taps at
   ``--rate`` taps/s for ``--load-s`` seconds: the ack latency without the
   archiver. Then taps at the same rate while the server's Archiver moves
   every day older than ``hot_days`` (7) out, through the Writer: the ack
   latency during the archive. Ack latency = ``market.tap`` to its Ack (the
   Column, the Writer's group commit and fsync), the web layer excluded.
3. Bytes per bet: the hot file after the archive (WAL checkpointed, pages
   reclaimed) over the bets it holds, indexes, ledger and signatures
   included; the archive files (.xz) over the bets they hold.
4. Days to fill 256 GB at 600 bets/s, 1% kept free: ``hot_days`` of hot
   bets, plus one archive file a day kept on the machine (with
   ``--archive-cmd`` shipping and ``archive_delete_shipped`` the hot DB alone
   stays, and the disk never fills).

The last line printed is JSON.
"""
import argparse
import json
import os
import random
import shutil
import string
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/perf/", 1)[0])

import gevent  # noqa: E402

from actors.archive._job import DAY_MS  # noqa: E402
try:
    from actors.archive._columns import is_columnar  # noqa: E402
except ImportError:         # code from before format 3 (benchmarked side by side)
    def is_columnar(path):
        return False
from actors.store._audit import audit  # noqa: E402
from actors._config import Config  # noqa: E402
from actors.feeds._local import SimFeed  # noqa: E402
from actors._model import LOST, VOID, WON, Bet, Settlement, payout_for  # noqa: E402
from actors._runtime import start_market  # noqa: E402
from actors.archive import fsync_path  # noqa: E402
from actors.store import DROP_SPAN  # noqa: E402
from actors.store._store import Store, open_readonly  # noqa: E402
from engine import ActorSystem  # noqa: E402

USERS = 1000
PRICE = 9_500_000
RATE_PER_DAY = 600 * 86400
_NONCE = string.ascii_letters + string.digits + "_-"


def generate(path, days, per_day, now, rng, rate=600, span_max_bets=40_000):
    """Each day gets ``per_day`` bets at ``rate`` bets/s from a random time
    of that day (compressed time: the rest of the day is skipped), so every
    time offset is as in real traffic: a tap 3-60 s ahead of its column,
    the ack 5-80 ms after the tap, the settlement 0.1-0.6 s after the
    column's window. Columns are settled in time order, as the Resolver
    does; the last hour stays open."""
    store = Store(path, synchronous="OFF", span_max_bets=span_max_bets)
    conn = store.conn
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO users(id, name, balance, created) VALUES (?,?,?,0)",
                     [(u, f"user{u}", 10 ** 12) for u in range(1, USERS + 1)])
    conn.executemany("INSERT INTO ledger(user, kind, amount, bet, ts) VALUES (?,1,?,NULL,0)",
                     [(u, 10 ** 12) for u in range(1, USERS + 1)])
    conn.execute("COMMIT")
    first_day = now // DAY_MS - days + 1
    window_ms = per_day * 1000 // rate
    n = 0
    for day in range(first_day, first_day + days):
        latest = min((day + 1) * DAY_MS, now - 2 * 3_600_000) - window_ms
        start = day * DAY_MS + rng.randint(0, max(0, latest - day * DAY_MS))
        pending = {}                       # col -> [(bet id, Bet)]
        batch = []
        for i in range(per_day):
            placed = start + i * 1000 // rate
            col = (placed + rng.randint(3000, 60000)) // 5000 * 5000
            mult = rng.choice((101, 115, 140, 185, 235, 310, 480, 900, 2500, 10000))
            ts = placed - rng.randint(5, 80)
            batch.append(Bet(rng.randint(1, USERS), col, PRICE + 1000 * rng.randint(-50, 50),
                             rng.choice((100, 250, 500, 1000, 5000)), mult, mult, ts,
                             "".join(rng.choices(_NONCE, k=16)), rng.randbytes(64), placed))
            if len(batch) == 3000 or i == per_day - 1:
                ids, _ = store.write_batch(bets=batch, now=0)
                for bid, b in zip(ids, batch):
                    pending.setdefault(b.col, []).append((bid, b))
                batch = []
                # settle every column whose window ended before the last placement
                for c in sorted(k for k in pending if k + 5000 <= placed or i == per_day - 1):
                    out = []
                    for bid, b in pending.pop(c):
                        r = rng.random()
                        o = WON if r < 0.25 else VOID if r < 0.30 else LOST
                        out.append(Settlement(bid, b.user, b.col, b.lo, b.stake, b.mult, o,
                                              {WON: payout_for(b.stake, b.mult), VOID: b.stake,
                                               LOST: 0}[o]))
                    store.write_batch(settlements=out, now=c + 5000 + rng.randint(100, 600))
        n += per_day
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return n


def file_bytes(path):
    conn = open_readonly(path)
    try:
        return (conn.execute("PRAGMA page_count").fetchone()[0]
                * conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def count(path, sql):
    conn = open_readonly(path)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


class Timeline:
    """``--timeline``: every Writer transaction (its start, length and what
    it carried) and every WAL checkpoint, timed where they run, to tell
    which of them the slowest taps during the archive waited behind."""

    def __init__(self):
        self.commits, self.checkpoints, self.taps = [], [], []

    def install(self):
        from actors import _writer
        store_cls, writer_cls = Store, _writer.Writer
        tl = self
        orig_batch, orig_ckpt = store_cls.write_batch, writer_cls._checkpoint

        def write_batch(store, bets=(), settlements=(), credits=(), ticks=(), sessions=(),
                        deletes=(), now=None):
            t = time.perf_counter()
            try:
                return orig_batch(store, bets, settlements, credits, ticks, sessions, deletes,
                                  now)
            finally:
                kinds = {"drop" if sql == DROP_SPAN else "vacuum" if "incremental_vacuum" in sql
                         else "delete" if sql.lstrip().startswith("DELETE") else "other"
                         for sql, _ in deletes}
                kind = ("drop" if "drop" in kinds else "delete" if "delete" in kinds
                        else "vacuum" if "vacuum" in kinds else "archive" if kinds
                        else "taps")
                tl.commits.append((t, time.perf_counter(), kind, len(bets)))

        def checkpoint(writer):
            t = time.perf_counter()
            try:
                return orig_ckpt(writer)
            finally:
                tl.checkpoints.append((t, time.perf_counter()))
        store_cls.write_batch, writer_cls._checkpoint = write_batch, checkpoint

    def report(self, since, until=float("inf")):
        """What the slowest 1 % of taps sent after ``since`` overlapped, and
        each transaction kind's length (ms) over the same time."""
        taps = sorted((lat, t) for t, lat in self.taps if since <= t < until)
        slow = taps[-max(1, len(taps) // 100):]
        blame = {}
        for lat, t in slow:
            end = t + lat / 1000
            over = [k for a, b, k, _ in self.commits if a < end and b > t and k != "taps"]
            if any(a < end and b > t for a, b in self.checkpoints):
                over.append("checkpoint")
            for k in set(over) or {"none"}:
                blame[k] = blame.get(k, 0) + 1
        lengths = {}
        for a, b, k, _ in self.commits:
            if since <= a < until:
                lengths.setdefault(k, []).append((b - a) * 1000)
        ck = [(b - a) * 1000 for a, b in self.checkpoints if since <= a < until]
        return {"slow_taps": len(slow), "slow_ms_min": round(slow[0][0], 1) if slow else None,
                "slow_overlapping": blame,
                "commit_ms": {k: {"n": len(v), "p50": round(pct(v, .5), 2),
                                  "p99": round(pct(v, .99), 2), "max": round(max(v), 2)}
                              for k, v in sorted(lengths.items())},
                "checkpoint_ms": {"n": len(ck), "p50": round(pct(ck, .5), 2),
                                  "max": round(max(ck), 2)} if ck else None}


def tap_load(market, users, rate, until, lat, rng, sent=None):
    """Taps at ``rate``/s in 10 ms slices until ``until()``; latencies (ms)
    into ``lat`` (and ``(sent, ms)`` into ``sent`` when given)."""
    per_slice = rate / 100.0
    owed = 0.0
    next_t = time.perf_counter()
    while not until():
        owed += per_slice
        while owed >= 1:
            owed -= 1
            cell = market.pick_cell(rng.randint(-3, 3))
            if cell is None:
                continue
            t = time.perf_counter()
            fut = market.tap(rng.choice(users), cell[0], cell[1], 100)
            fut.add_done_callback(lambda f, t=t: _acked(f, t, lat, sent))
        next_t += 0.01
        gevent.sleep(max(0.0, next_t - time.perf_counter()))


def _acked(fut, t, lat, sent):
    if fut.result().reason is None:
        ms = (time.perf_counter() - t) * 1000
        lat.append(ms)
        if sent is not None:
            sent.append((t, ms))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--per-day", type=int, default=150_000)
    ap.add_argument("--rate", type=float, default=600.0, help="taps/s during both phases")
    ap.add_argument("--load-s", type=float, default=10.0, help="seconds of load without archiver")
    ap.add_argument("--dir", default=None, help="where the files go (a real disk)")
    ap.add_argument("--span-max-bets", type=int, default=40_000,
                    help="Config.span_max_bets (0: spans cut by time only, as before)")
    ap.add_argument("--cache", default=None,
                    help="keep the generated hot DB here and reuse it while it is today's"
                         " (generating 1.5 M bets takes minutes on a loaded box)")
    ap.add_argument("--timeline", action="store_true",
                    help="time every Writer transaction and checkpoint: what the slowest taps"
                         " during the archive waited behind (JSON key \"timeline\")")
    args = ap.parse_args()
    timeline = Timeline() if args.timeline else None
    if timeline:
        timeline.install()
    rng = random.Random(42)
    dirpath = tempfile.mkdtemp(prefix="bench_storage_", dir=args.dir)
    db = os.path.join(dirpath, "hot.db")
    try:
        now = int(time.time() * 1000)
        t = time.perf_counter()
        cached = args.cache and os.path.join(
            args.cache, f"hot-{args.days}x{args.per_day}-{now // DAY_MS}"
            f"{'' if args.span_max_bets == 40_000 else f'-s{args.span_max_bets}'}.db")
        if cached and os.path.exists(cached):
            shutil.copyfile(cached, db)
            # on disk before the first phase: else the kernel writes the copy's
            # ~230 MB back during it, and the "without" phase's checkpoints
            # took 90-120 ms behind that (three runs of stop 23)
            fsync_path(db)
            n = args.days * args.per_day
        else:
            n = generate(db, args.days, args.per_day, now, rng, span_max_bets=args.span_max_bets)
            if cached:
                os.makedirs(args.cache, exist_ok=True)
                shutil.copyfile(db, cached + ".tmp")
                os.replace(cached + ".tmp", cached)
        print(f"generated {n:,} bets over {args.days} days in {time.perf_counter() - t:.1f} s;"
              f" hot {file_bytes(db) / n:.1f} B/bet before archiving")
        cfg = Config(db=db, column_ms=5000, lock_ms=3000, horizon_ms=60000,
                     tick_interval_ms=250, max_open_bets=10 ** 6, cell_liability_cap=10 ** 15,
                     min_free_disk=0, archive_every_s=0, span_max_bets=args.span_max_bets)
        system = ActorSystem()
        try:
            market = start_market(system, cfg, feed=SimFeed(seed=1, interval_ms=250))
            users = [market.create_user(f"loader{i}", 10 ** 12) for i in range(50)]
            assert market.wait_ready(30), "market not ready"
            without, during = [], []
            t_end = time.perf_counter() + args.load_s
            sent = timeline.taps if timeline else None
            tap_load(market, users, args.rate, lambda: time.perf_counter() > t_end, without, rng,
                     sent)
            job = gevent.spawn(market.archive_now, 7200)
            t0 = time.perf_counter()
            tap_load(market, users, args.rate, job.ready, during, rng, sent)
            report = job.get()
            archive_s = time.perf_counter() - t0
            gevent.sleep(1.0)           # the last acks
        finally:
            system.stop()
        moved = report["bets"]
        phases = report.get("phase_s") or {}
        with open("/proc/loadavg") as f:
            uptime = "load average " + ", ".join(f.read().split()[:3])
        hot_n = count(db, "SELECT count(*) FROM bets")
        hot_bpb = file_bytes(db) / hot_n
        adir = os.path.join(dirpath, "archive")
        xz = sum(os.path.getsize(os.path.join(adir, f)) for f in os.listdir(adir)
                 if f.endswith(".xz"))
        arch_bpb = xz / moved
        formats = {3 if is_columnar(os.path.join(adir, f)) else 2 for f in os.listdir(adir)
                   if f.endswith(".xz")}
        problems = audit(db)
        daily = RATE_PER_DAY
        usable = 256e9 * 0.99
        hot_steady = cfg.hot_days * daily * hot_bpb
        days_to_fill = cfg.hot_days + (usable - hot_steady) / (daily * arch_bpb)
        print(f"archive: {moved:,} bets into {len(report['files'])} files in {archive_s:.1f} s"
              f" ({moved / archive_s:,.0f} bets/s), errors {report['errors']}")
        print(f"hot DB after archiving: {hot_n:,} bets, {hot_bpb:.1f} B/bet;"
              f" archive {arch_bpb:.1f} B/bet (file formats {sorted(formats)}, signature and nonce"
              f" included)")
        print(f"tap ack p50/p99: without archiver {pct(without, .5):.1f}/{pct(without, .99):.1f} ms"
              f" ({len(without)} taps), during {pct(during, .5):.1f}/{pct(during, .99):.1f} ms"
              f" ({len(during)} taps)")
        print(f"at 600 bets/s: hot DB steady at {hot_steady / 1e9:.0f} GB ({cfg.hot_days} days),"
              f" archives +{daily * arch_bpb / 1e9:.1f} GB/day kept locally: 256 GB full after"
              f" {days_to_fill:.0f} days; shipped and deleted: never")
        print(f"audit: {'ok' if not problems else problems[:3]}")
        summary = {"bench": "storage", "hot_bytes_per_bet": round(hot_bpb, 1),
                   "archive_bytes_per_bet": round(arch_bpb, 1),
                   "archive_bets_per_s": round(moved / archive_s),
                   # out of the hot DB (copied, verified, deleted); compression trails in
                   # its own thread, overlapping the next part's copy and delete
                   "hot_egress_bets_per_s": round(moved / max(1e-9, phases.get("copy", 0)
                                                              + phases.get("delete", 0))),
                   "uptime": uptime,
                   "p99_ms_during_archive": round(pct(during, .99), 2),
                   "p99_ms_without": round(pct(without, .99), 2),
                   "days_to_fill_256gb": round(days_to_fill, 1),
                   "archive_phase_s": report.get("phase_s"),
                   # the compressor thread alone (format 3: by column; read back before
                   # the plain file goes)
                   "compress_bets_per_s": round(moved / max(1e-9, phases.get("compress", 0))),
                   "archive_file_formats": sorted(formats),
                   "archive_priority": report.get("priority")}
        if timeline:
            summary["timeline"] = timeline.report(t0)
            summary["timeline_without"] = timeline.report(0.0, t0)
    finally:
        shutil.rmtree(dirpath, ignore_errors=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

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
import bisect
import json
import os
import random
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time

# ``--root DIR``: another checkout's code (base, side by side) run by this bench
_ROOT = (sys.argv[sys.argv.index("--root") + 1] if "--root" in sys.argv
         else __file__.rsplit("/perf/", 1)[0])
sys.path.insert(0, os.path.abspath(_ROOT))

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


def _run_delay_ns():
    """This thread's time spent runnable but waiting for a CPU (schedstat)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
            return int(f.read().split()[1])
    except OSError:
        return 0


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _block_stat(path):
    """The ``stat`` file of the block device holding ``path`` (its disk)."""
    st = os.stat(path)
    sysdir = os.path.realpath(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if not os.path.exists(os.path.join(sysdir, "queue")):      # a partition: its disk
        sysdir = os.path.dirname(sysdir)
    return os.path.join(sysdir, "stat")


def sample_main(out, pid, where, period=0.01):
    """``--sampler``: every ``period`` s until SIGTERM, what the disk and the
    processes under ``pid`` are doing: dirty and writeback page cache, the
    disk's writes, sectors and requests in flight, and per process its
    bytes written/read and CPU seconds, the server's threads' run delay. A
    JSON list into ``out`` (timestamps are ``perf_counter``, the same clock
    in every process)."""
    import signal
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    blk = _block_stat(where)
    tick = os.sysconf("SC_CLK_TCK")
    rows, kinds, next_scan = [], {}, 0.0
    while not stop:
        t = time.perf_counter()
        if t >= next_scan:          # new descendants (the archive child, each backup)
            next_scan = t + 0.05
            todo, seen = [pid], set()
            while todo:
                p = todo.pop()
                seen.add(p)
                for task in os.listdir(f"/proc/{p}/task") if os.path.exists(f"/proc/{p}") else ():
                    todo += [int(c) for c in _read(f"/proc/{p}/task/{task}/children").split()]
            # a fork shows its parent's command line until it execs: looked at again
            for p in seen - {k for k, v in kinds.items() if v != "other"}:
                cmd = _read(f"/proc/{p}/cmdline").replace("\0", " ")
                kinds[p] = ("child" if "archive._child" in cmd else "backup" if " backup " in cmd
                            else "serve" if " serve" in cmd else "bench" if p == pid else "other")
            for p in set(kinds) - seen:
                del kinds[p]
        mem = {}
        for line in _read("/proc/meminfo").splitlines():
            k, _, v = line.partition(":")
            if k in ("Dirty", "Writeback"):
                mem[k] = int(v.split()[0])
        d = [int(x) for x in _read(blk).split()]
        cpu = [int(x) for x in _read("/proc/stat").split("\n", 1)[0].split()[1:]]
        procs = {}
        for p, kind in kinds.items():
            io = dict(line.split(": ") for line in _read(f"/proc/{p}/io").splitlines())
            st = _read(f"/proc/{p}/stat").rsplit(")", 1)[-1].split()
            if not st or not io:
                continue
            delay = 0
            if kind in ("bench", "serve"):
                for task in os.listdir(f"/proc/{p}/task"):
                    f = _read(f"/proc/{p}/task/{task}/schedstat").split()
                    delay += int(f[1]) if f else 0
            got = procs.setdefault(kind, [0, 0, 0.0, 0])
            got[0] += int(io.get("write_bytes", 0))
            got[1] += int(io.get("read_bytes", 0))
            got[2] += (int(st[11]) + int(st[12])) / tick
            got[3] += delay
        rows.append({"t": t, "dirty_kb": mem.get("Dirty", 0), "wb_kb": mem.get("Writeback", 0),
                     "disk": [d[4], d[6], d[8], d[9]] if len(d) >= 10 else None,
                     "cpu": [cpu[0] + cpu[1] + cpu[2], cpu[3], cpu[4], cpu[7] if len(cpu) > 7 else 0], "procs": procs})
        time.sleep(max(0.0, t + period - time.perf_counter()))
    with open(out, "w") as f:
        json.dump(rows, f)


class Sampler:
    """``sample_main`` in a process of its own (its reads of /proc stay out
    of this process's GIL), started and stopped around the phases."""

    def __init__(self, where):
        self.out = os.path.join(where, "samples.json")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--sampler",
                                      self.out, str(os.getpid()), where])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        with open(self.out) as f:
            return json.load(f)


def _deltas(samples, a, b):
    """What happened between ``a`` and ``b`` (s), from the samples around them."""
    i = max(0, bisect.bisect_right(SAMPLE_T[0], a) - 1)
    j = min(len(samples) - 1, bisect.bisect_left(SAMPLE_T[0], b))
    s0, s1 = samples[i], samples[j]
    dt = max(1e-3, s1["t"] - s0["t"])
    win = samples[i:j + 1]
    out = {"dirty_mb": s0["dirty_kb"] / 1024,
           "writeback_mb": max(s["wb_kb"] for s in win) / 1024}
    if s0["disk"] and s1["disk"]:
        out["disk_mb_s"] = (s1["disk"][1] - s0["disk"][1]) * 512 / 1e6 / dt
        out["in_flight"] = max(s["disk"][2] for s in win)
    c0, c1 = s0["cpu"], s1["cpu"]
    total = sum(c1) - sum(c0)
    out["cpu_idle"] = (c1[1] - c0[1]) / total if total else None
    out["cpu_steal"] = (c1[3] - c0[3]) / total if total and len(c1) > 3 else None
    for kind in ("child", "backup", "bench", "serve"):
        p0, p1 = s0["procs"].get(kind), s1["procs"].get(kind)
        if p0 and p1:
            out[f"{kind}_write_mb_s"] = (p1[0] - p0[0]) / 1e6 / dt
            out[f"{kind}_cpu"] = (p1[2] - p0[2]) / dt
            out[f"{kind}_read_mb_s"] = (p1[1] - p0[1]) / 1e6 / dt
            if kind in ("bench", "serve"):
                out[f"{kind}_run_delay_ms"] = (p1[3] - p0[3]) / 1e6
    return out


SAMPLE_T = [None]


def trace_report(samples, fsyncs, since, until=float("inf"), slow_ms=None):
    """Each COMMIT's length (the WAL fsync) beside what the disk and the
    processes did while it ran (and in the 50 ms before: dirty pages made
    then are what writeback pushes in front of the fsync). The slow ones
    (``>= slow_ms``, default this window's p99) against the rest: medians
    of every figure for both groups."""
    SAMPLE_T[0] = [s["t"] for s in samples]
    rows = []
    for a, b, delay, kind, start in fsyncs:
        if kind == "taps" and since <= a < until and samples and samples[0]["t"] <= a and b <= samples[-1]["t"]:
            ms = (b - a) * 1000
            d = _deltas(samples, a, b)
            before = _deltas(samples, a - 0.05, a)
            d.update({f"{k}_before": v for k, v in before.items() if k.endswith("mb_s")})
            d["body_ms"] = (a - start) * 1000
            rows.append((ms, delay, d))
    if not rows:
        return None
    ms_all = [r[0] for r in rows]
    cut = slow_ms if slow_ms is not None else pct(ms_all, .99)
    groups = {"slow": [r for r in rows if r[0] >= cut], "rest": [r for r in rows if r[0] < cut]}

    def med(rs, key):
        v = [r[2][key] for r in rs if r[2].get(key) is not None]
        return round(pct(v, .5), 3) if v else None
    keys = sorted({k for r in rows for k in r[2]})
    return {"commits": len(rows), "commit_ms_p50": round(pct(ms_all, .5), 2),
            "commit_ms_p99": round(pct(ms_all, .99), 2), "commit_ms_max": round(max(ms_all), 2),
            "slow_cut_ms": round(cut, 2),
            **{g: {"n": len(rs), "commit_run_delay_ms": round(pct([r[1] for r in rs], .5), 3)
                   if rs else None, **{k: med(rs, k) for k in keys}}
               for g, rs in groups.items()}}


class Timeline:
    """``--timeline``: every Writer transaction (its start, length and what
    it carried) and every WAL checkpoint, timed where they run, to tell
    which of them the slowest taps during the archive waited behind."""

    def __init__(self):
        self.commits, self.checkpoints, self.taps = [], [], []
        # (COMMIT start, end, the commit thread's run delay ms, kind, batch start)
        self.fsyncs, self.commit_tid = [], None

    def install(self):
        from actors import _writer
        store_cls, writer_cls = Store, _writer.Writer
        tl = self
        orig_batch, orig_ckpt = store_cls.write_batch, writer_cls._checkpoint

        def write_batch(store, bets=(), settlements=(), credits=(), ticks=(), sessions=(),
                        deletes=(), now=None):
            t = time.perf_counter()
            delay0 = _run_delay_ns()
            try:
                return orig_batch(store, bets, settlements, credits, ticks, sessions, deletes,
                                  now)
            finally:
                # the COMMIT (WAL fsync) alone, where the Store exports it, and
                # how long this thread waited for a CPU meanwhile
                lc = getattr(store, "last_commit", None)
                delay = (_run_delay_ns() - delay0) / 1e6
                kinds = {"drop" if sql == DROP_SPAN else "vacuum" if "incremental_vacuum" in sql
                         else "delete" if sql.lstrip().startswith("DELETE") else "other"
                         for sql, _ in deletes}
                kind = ("drop" if "drop" in kinds else "delete" if "delete" in kinds
                        else "vacuum" if "vacuum" in kinds else "archive" if kinds
                        else "taps")
                tl.commits.append((t, time.perf_counter(), kind, len(bets)))
                if lc is not None and lc[0] >= t:
                    tl.fsyncs.append((lc[0], lc[1], delay, kind, t))
                    tl.commit_tid = threading.get_native_id()

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
    # 16: 8 days archived (1.2 M bets), a phase "during" of ~30 s; with 10 (to
    # stop 23) 2 days went in ~8 s, ~5,000 taps: one stall moved its p99
    ap.add_argument("--days", type=int, default=16)
    ap.add_argument("--per-day", type=int, default=150_000)
    ap.add_argument("--rate", type=float, default=600.0, help="taps/s during both phases")
    ap.add_argument("--load-s", type=float, default=30.0,
                    help="seconds of load without archiver (10 before stop 24: 6,000 taps, a"
                         " p99 that one disk stall decided)")
    ap.add_argument("--dir", default=None, help="where the files go (a real disk)")
    ap.add_argument("--span-max-bets", type=int, default=40_000,
                    help="Config.span_max_bets (0: spans cut by time only, as before)")
    ap.add_argument("--cache", default=None,
                    help="keep the generated hot DB here and reuse it while it is today's"
                         " (generating 1.5 M bets takes minutes on a loaded box)")
    ap.add_argument("--timeline", action="store_true",
                    help="time every Writer transaction and checkpoint: what the slowest taps"
                         " during the archive waited behind (JSON key \"timeline\")")
    ap.add_argument("--trace", action="store_true",
                    help="with --timeline: sample the disk, the page cache and each process"
                         " every 10 ms; each COMMIT's fsync beside them (JSON key \"trace\")")
    ap.add_argument("--trace-out", default=None,
                    help="with --trace: the raw samples, commits, fsyncs and taps as JSON here")
    ap.add_argument("--root", default=None, help="run this checkout's code (e.g. base)")
    args = ap.parse_args()
    args.timeline = args.timeline or args.trace
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
            sampler = Sampler(dirpath) if args.trace else None
            clock = (time.time(), time.perf_counter())     # to line up strace -ttt with these
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
            samples = sampler.stop() if sampler else None
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
                   "p99_gap_ms": round(pct(during, .99) - pct(without, .99), 2),
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
        if samples:
            without_fs = [(b - a) * 1000 for a, b, _, k, _ in timeline.fsyncs
                          if a < t0 and k == "taps"]
            cut = pct(without_fs, .99) if without_fs else None
            # slow = slower than the phase without's p99: what the archive adds
            summary["trace"] = trace_report(samples, timeline.fsyncs, t0, slow_ms=cut)
            summary["trace_without"] = trace_report(samples, timeline.fsyncs, 0.0, t0)
            if args.trace_out:
                with open(args.trace_out, "w") as f:
                    json.dump({"t0": t0, "clock": clock, "commit_tid": timeline.commit_tid,
                               "pid": os.getpid(), "samples": samples, "fsyncs": timeline.fsyncs,
                               "commits": timeline.commits, "checkpoints": timeline.checkpoints,
                               "taps": timeline.taps}, f)
    finally:
        shutil.rmtree(dirpath, ignore_errors=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    if "--sampler" in sys.argv:
        i = sys.argv.index("--sampler")
        sample_main(sys.argv[i + 1], int(sys.argv[i + 2]), sys.argv[i + 3])
    else:
        main()

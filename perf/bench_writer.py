"""Writer benchmark: group commit against one transaction per bet, side by
side in one run, both ``synchronous=FULL`` on a real file (SPEC section 8:
>= 100,000 bets/s and >= 10x; hot DB <= 160 bytes per bet).

    .venv/bin/python perf/bench_writer.py [--bets 500000] [--batch 5000] [--runs 3]
        [--per-bet-bets 5000] [--dir DIR]

(a) group commit: ``Store.write_batch`` with ``--batch`` bets per transaction;
(b) one transaction per bet: ``write_batch([bet])``, on ``--per-bet-bets``
    bets (it is fsync-bound, so a rate needs no more).
Commit latency is the time of one ``write_batch`` call (insert + fsync).
Bytes per bet: ``page_count * page_size`` after ``wal_checkpoint(TRUNCATE)``
divided by bets, indexes and the 64-byte signature included; then every bet
is settled (70% lost, 30% won) and, after ``incremental_vacuum``, measured
again. Each figure is the median of ``--runs`` runs; the audit runs once on
the settled database as a check. The last line printed is JSON.
"""
import argparse
import json
import os
import platform
import random
import shutil
import statistics
import string
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/perf/", 1)[0])

from actors.store._audit import audit  # noqa: E402
from actors._model import LOST, WON, Bet, Settlement, payout_for  # noqa: E402
from actors.store._store import Store  # noqa: E402

USERS = 1000
# Columns of the last few hours (a multiple of 5,000 ms), so settlement
# times are realistic offsets from them.
COL0 = (int(time.time() * 1000) - 6 * 3600_000) // 5000 * 5000
PRICE = 9_500_000                 # $95,000.00 in cents
_NONCE_ALPHABET = string.ascii_letters + string.digits + "_-"


def make_bets(n, rng):
    """Realistic taps: ~1000 users, columns 5 s apart filling over time,
    bands of $10 within 50 of the price, 16-char nonces, random signatures."""
    bets = []
    per_col = 400
    for i in range(n):
        col = COL0 + 5000 * (i // per_col)
        lo = PRICE + 1000 * rng.randint(-50, 50)
        mult = rng.choice((101, 115, 140, 185, 235, 310, 480, 900, 2500, 10000))
        ts = col - rng.randint(3000, 60000)
        nonce = "".join(rng.choices(_NONCE_ALPHABET, k=16))
        bets.append(Bet(rng.randint(1, USERS), col, lo, rng.choice((100, 250, 500, 1000, 5000)),
                        mult, mult, ts, nonce, rng.randbytes(64), ts + rng.randint(5, 80)))
    return bets


def open_store(path):
    store = Store(path, synchronous="FULL")
    conn = store.conn
    # Bench setup only: 1000 funded users in one transaction.
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO users(id, name, balance, created) VALUES (?,?,?,0)",
                     [(u, f"user{u}", 10 ** 12) for u in range(1, USERS + 1)])
    conn.executemany("INSERT INTO ledger(user, kind, amount, bet, ts) VALUES (?,1,?,NULL,0)",
                     [(u, 10 ** 12) for u in range(1, USERS + 1)])
    conn.execute("COMMIT")
    return store


def db_bytes(store):
    conn = store.conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return pages * size, free * size


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_group(dirpath, bets, batch, do_audit):
    path = os.path.join(dirpath, "group.db")
    store = open_store(path)
    lat = []
    t = time.perf_counter()
    for i in range(0, len(bets), batch):
        t0 = time.perf_counter()
        store.write_batch(bets=bets[i:i + batch])
        lat.append(time.perf_counter() - t0)
    dt = time.perf_counter() - t
    hot_bytes, _ = db_bytes(store)
    # Settle everything: 70% lost, 30% won, in the Writer's batches.
    rng = random.Random(7)
    settle = [Settlement(i + 1, b.user, b.col, b.lo, b.stake, b.mult,
                         WON if rng.random() < 0.3 else LOST, 0) for i, b in enumerate(bets)]
    settle = [s._replace(payout=payout_for(s.stake, s.mult)) if s.outcome == WON else s
              for s in settle]
    ts = time.perf_counter()
    for i in range(0, len(settle), batch):
        # settled when the batch's last column ends, as the Resolver does
        store.write_batch(settlements=settle[i:i + batch], now=settle[i:i + batch][-1].col + 5000)
    settle_dt = time.perf_counter() - ts
    # The archiver reclaims freed pages in small steps; here in one go.
    store.conn.execute("PRAGMA incremental_vacuum").fetchall()   # one page per step
    settled_bytes, settled_free = db_bytes(store)
    store.close()
    audit_s, problems = None, None
    if do_audit:
        ta = time.perf_counter()
        problems = audit(path)
        audit_s = time.perf_counter() - ta
    os.remove(path)
    return {"per_s": len(bets) / dt, "p50": pct(lat, 0.5) * 1000, "p99": pct(lat, 0.99) * 1000,
            "hot_bpb": hot_bytes / len(bets), "settled_bpb": settled_bytes / len(bets),
            "settled_free": settled_free, "settle_per_s": len(bets) / settle_dt,
            "audit_s": audit_s, "problems": problems}


def run_per_bet(dirpath, bets):
    path = os.path.join(dirpath, "perbet.db")
    store = open_store(path)
    lat = []
    t = time.perf_counter()
    for b in bets:
        t0 = time.perf_counter()
        store.write_batch(bets=[b])
        lat.append(time.perf_counter() - t0)
    dt = time.perf_counter() - t
    store.close()
    os.remove(path)
    return {"per_s": len(bets) / dt, "p50": pct(lat, 0.5) * 1000, "p99": pct(lat, 0.99) * 1000}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bets", type=int, default=500_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--per-bet-bets", type=int, default=5000)
    ap.add_argument("--dir", default=None, help="where the temp DBs go (a real disk)")
    args = ap.parse_args()
    rng = random.Random(42)
    bets = make_bets(args.bets, rng)
    per_bet = bets[:min(args.per_bet_bets, args.bets)]
    dirpath = tempfile.mkdtemp(prefix="bench_writer_", dir=args.dir)
    print(f"python {platform.python_version()}, {platform.machine()}, dir {dirpath}, "
          f"bets {args.bets} in batches of {args.batch}, per-bet {len(per_bet)}, runs {args.runs}")
    groups, singles = [], []
    try:
        for r in range(args.runs):
            g = run_group(dirpath, bets, args.batch, do_audit=(r == 0))
            s = run_per_bet(dirpath, per_bet)
            groups.append(g)
            singles.append(s)
            print(f"run {r + 1}: group {g['per_s']:,.0f} bets/s (commit p50 {g['p50']:.1f} ms,"
                  f" p99 {g['p99']:.1f} ms); per-bet {s['per_s']:,.0f} bets/s (commit p50"
                  f" {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms); hot {g['hot_bpb']:.1f} B/bet,"
                  f" settled {g['settled_bpb']:.1f} B/bet; settle {g['settle_per_s']:,.0f}/s")
            if g["audit_s"] is not None:
                print(f"audit of {args.bets} settled bets: {g['audit_s']:.2f} s,"
                      f" {'ok' if not g['problems'] else g['problems'][:3]}")
    finally:
        shutil.rmtree(dirpath, ignore_errors=True)

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    summary = {
        "bench": "writer",
        "group_per_s": round(med(groups, "per_s")),
        "per_bet_per_s": round(med(singles, "per_s")),
        "ratio": round(med(groups, "per_s") / med(singles, "per_s"), 1),
        "commit_p50_ms": round(med(groups, "p50"), 2),
        "commit_p99_ms": round(med(groups, "p99"), 2),
        "hot_bytes_per_bet": round(med(groups, "hot_bpb"), 1),
        "settled_bytes_per_bet": round(med(groups, "settled_bpb"), 1),
        "per_bet_commit_p50_ms": round(med(singles, "p50"), 2),
        "per_bet_commit_p99_ms": round(med(singles, "p99"), 2),
        "settle_per_s": round(med(groups, "settle_per_s")),
        "bets": args.bets, "batch": args.batch, "runs": args.runs,
    }
    print(f"median: group {summary['group_per_s']:,} bets/s vs per-bet "
          f"{summary['per_bet_per_s']:,} bets/s = {summary['ratio']}x")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

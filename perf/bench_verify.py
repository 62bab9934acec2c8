"""How fast `tapgrid verify` checks a database (issue 11), and how many bytes
the price record costs a tick.

    .venv/bin/python perf/bench_verify.py [--bets 20000] [--sources 3] [--dir DIR]

Builds a database with ``--bets`` signed bets (real P-256 signatures, 50
users, 10 bets a 5 s column) on a random-walk price record of ``--sources``
sources (4 medians a second, each with its sources as verify reads them),
settles every bet with the Resolver's own rule, then times ``verify`` over
it: bets/s, and the share of that time spent on signatures. The last line
printed is JSON.
"""
import argparse
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/perf/", 1)[0])

from actors import Config  # noqa: E402
from actors._model import Bet, Settlement  # noqa: E402
from actors.store import window_of  # noqa: E402
from actors._resolver import outcome_for, window_path  # noqa: E402
from actors._sources import encode_sources, median_of  # noqa: E402
from actors.store import Store  # noqa: E402
from actors._verify import verify  # noqa: E402
from actors.wire import (SessionSigner, b64url_decode, b64url_encode,  # noqa: E402
                         encode_tap_payload, load_session_key, verify_tap)

COL, BAND, TICK = 5000, 1000, 250


def build(path, n_bets, n_sources, seed=1):
    rng = random.Random(seed)
    cfg = Config(db=path)
    store = Store(path, synchronous="OFF")
    now = 1_800_000_000_000
    signers = [SessionSigner.generate() for _ in range(50)]
    uids = [store.ensure_user(f"u{i}", credit=10 ** 12, now=0) for i in range(50)]
    store.write_batch(sessions=[(os.urandom(32), u, s.public_raw, now + 10 ** 9)
                                for u, s in zip(uids, signers)], now=0)
    n_cols = n_bets // 10
    t_start = now
    t_end = now + (n_cols + 2) * COL
    price = 9_500_000
    ticks = []
    for ts in range(t_start - 60_000, t_end, TICK):
        price += rng.randint(-300, 300)
        srcs = {f"s{i}": price + rng.randint(-20, 20) for i in range(n_sources)}
        med = median_of(srcs.values())
        ticks.append((ts, med, encode_sources(srcs) if n_sources > 1 else None))
    for i in range(0, len(ticks), 20000):
        store.write_batch(ticks=ticks[i:i + 20000], now=0)
    bets = []
    for k in range(n_cols):
        col = t_start + (k + 1) * COL
        mid = next(p for t, p, _ in ticks if t >= col - 3500) // BAND * BAND
        for j in range(10):
            ui = rng.randrange(50)
            lo = mid + rng.randint(-3, 3) * BAND
            ts = col - 3500 - rng.randint(10, 500)
            nonce = b64url_encode(os.urandom(12))
            p = encode_tap_payload(col, lo, 100, 101, ts, nonce)
            sig = b64url_decode(signers[ui].sign(p))
            bets.append(Bet(uids[ui], col, lo, 100, 150, 101, ts, nonce, sig, ts + 5))
    ids = []
    for i in range(0, len(bets), 5000):
        ids += store.write_batch(bets=bets[i:i + 5000], now=0)[0]
    settle = []
    conn = store.conn
    for bid, b in zip(ids, bets):
        rows, spans = window_of(conn, b.col, b.col + COL)
        path = window_path([(t, p) for t, p, _ in rows], spans, b.col, b.col + COL,
                           2 * cfg.tick_interval_ms)
        o = outcome_for(b.lo, BAND, path)
        pay = {1: b.stake * b.mult // 100, 2: 0, 3: b.stake}[o]
        settle.append(Settlement(bid, b.user, b.col, b.lo, b.stake, b.mult, o, pay))
    for i in range(0, len(settle), 5000):
        store.write_batch(settlements=settle[i:i + 5000], now=t_end)
    store.close()
    return len(ticks)


def _table_bytes(path, d):
    """The ticks table alone, in a file of its own (no dbstat in this build)."""
    import pysqlite3.dbapi2 as sqlite3
    only = os.path.join(d, "ticks_only.db")
    conn = sqlite3.connect(only)
    conn.execute(f"ATTACH '{path}' AS src")
    empty = os.path.getsize(only) if os.path.exists(only) else 0
    conn.execute("CREATE TABLE ticks(ts INTEGER PRIMARY KEY, price INTEGER NOT NULL, src TEXT)"
                 " WITHOUT ROWID")
    conn.execute("INSERT INTO ticks SELECT * FROM src.ticks")
    conn.commit()
    conn.execute("DETACH src")
    conn.execute("VACUUM")
    conn.close()
    return os.path.getsize(only) - empty - 2 * 4096     # less the header and schema pages


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bets", type=int, default=20000)
    ap.add_argument("--sources", type=int, default=3)
    ap.add_argument("--dir")
    args = ap.parse_args()
    d = args.dir or tempfile.mkdtemp(prefix="bench_verify_")
    path = os.path.join(d, "verify.db")
    t = time.perf_counter()
    n_ticks = build(path, args.bets, args.sources)
    built = time.perf_counter() - t
    keys = {}
    sig_time = [0.0]

    def check(key, payload, sig):
        t0 = time.perf_counter()
        k = keys.get(key) or keys.setdefault(key, load_session_key(key))
        ok = verify_tap(k, payload, b64url_encode(sig))
        sig_time[0] += time.perf_counter() - t0
        return ok

    cfg = Config(db=path, band_cents=BAND, column_ms=COL)
    t = time.perf_counter()
    report = verify(path, cfg, check)
    took = time.perf_counter() - t
    tick_bytes = _table_bytes(path, d)
    print(f"built {args.bets} bets, {n_ticks} ticks in {built:.1f}s; verified in {took:.2f}s")
    print(json.dumps({"bets": report["bets"], "windows": report["windows"],
                      "sources": args.sources, "verify_s": round(took, 3),
                      "bets_per_s": round(report["bets"] / took),
                      "signature_share": round(sig_time[0] / took, 3),
                      "record_bytes_per_tick": round(tick_bytes / n_ticks, 1)}))


if __name__ == "__main__":
    main()

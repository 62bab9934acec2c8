"""The edge measured on the wire: guests tapping random cells of a running server.

As issue 17 measured it: ``--guests`` guests sign in, each taps a random
open cell within ``--bands`` bands of the last tick in one of the three
nearest open columns, ``--stake`` each, taking the server's multiplier
(``min_mult`` 101), for ``--seconds``; then every acked bet is waited for
until settled. Prints realised vs implied win rate and RTP per multiplier
bucket with standard errors clustered by window (bets of one column share
its path), and a JSON line last.

    tapgrid serve --db /tmp/w.db --port 8099 &
    python perf/wire_odds.py --url http://127.0.0.1:8099 --seconds 240
"""
import argparse
import json
import math
import os
import random
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gevent  # noqa: E402
from gevent import monkey  # noqa: E402

monkey.patch_all()

from actors import MULT_BUCKETS, mult_bucket  # noqa: E402
from web.client import TapgridClient  # noqa: E402


def player(c, args, rng, bets, stop):
    while not stop[0]:
        gevent.sleep(args.interval * (0.5 + rng.random()))
        g, tick = c.grid, c.last_tick
        if not g:
            continue
        now = int(time.time() * 1000) + c.clock_offset
        cols = [col for col in g["columns"] if now < col["t0"] - g["lock_ms"] - 300][:3]
        if not cols:
            continue
        col = rng.choice(cols)
        band = g["band_cents"]
        price = tick[0] if tick else g["price"]
        lo = (price // band + rng.randint(-args.bands, args.bands)) * band
        if not any(cell["lo"] == lo for cell in col["cells"]):
            continue
        try:
            ack = c.tap(col["t0"], lo, args.stake, min_mult=101, timeout=10)
        except Exception:
            continue
        if ack.get("ok"):
            bets[ack["bet"]] = (col["t0"], ack["mult"])


def table(rows):
    out = ["| multiplier | bets | windows | win rate | implied | RTP ± s.e. |",
           "| --- | --- | --- | --- | --- | --- |"]
    summary = {}
    for name in [b for b, _, _ in MULT_BUCKETS] + ["uncapped"]:
        cells = [r for r in rows if (r[1] == name or (name == "uncapped" and r[1] != "100"))]
        if not cells:
            continue
        by_win = defaultdict(lambda: [0, 0, 0, 0.0])
        for t0, _, stake, payout, won, implied in cells:
            w = by_win[t0]
            w[0] += stake
            w[1] += payout
            w[2] += won
            w[3] += implied
        stake = sum(w[0] for w in by_win.values())
        rtp = sum(w[1] for w in by_win.values()) / stake
        g = len(by_win)
        se = (math.sqrt(g / (g - 1) * sum((w[1] - rtp * w[0]) ** 2 for w in by_win.values()))
              / stake) if g > 1 else float("nan")
        n = len(cells)
        out.append(f"| {name} | {n:,} | {g} | {sum(w[2] for w in by_win.values()) / n:.4f} | "
                   f"{sum(w[3] for w in by_win.values()) / n:.4f} | {rtp:.3f} ± {se:.3f} |")
        summary[name] = {"bets": n, "rtp": round(rtp, 4), "se": round(se, 4)}
    return "\n".join(out), summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--guests", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=480)
    ap.add_argument("--bands", type=int, default=10)
    ap.add_argument("--stake", type=int, default=100)
    ap.add_argument("--interval", type=float, default=0.2, help="mean seconds between a guest's taps")
    ap.add_argument("--seed", type=int, default=17)
    args = ap.parse_args(argv)
    clients = []
    for _ in range(args.guests):
        c = TapgridClient(args.url, backoff_base=0.2)
        c.guest()
        c.connect()
        clients.append(c)
    for c in clients:
        c.wait_for(lambda c=c: c.grid is not None, 10)
    bets = {}
    stop = [False]
    rng = random.Random(args.seed)
    gs = [gevent.spawn(player, c, args, random.Random(rng.random()), bets, stop) for c in clients]
    gevent.sleep(args.seconds)
    stop[0] = True
    gevent.joinall(gs, timeout=15)
    results = {}

    def settled():
        for c in clients:
            for r in c.results:
                results[r["bet"]] = r
        return all(b in results for b in bets)
    deadline = time.time() + 120
    while not settled() and time.time() < deadline:
        gevent.sleep(0.5)
    rows = []
    void = 0
    for bid, (t0, mult) in bets.items():
        r = results.get(bid)
        if r is None or r["outcome"] == "void":
            void += 1
            continue
        won = r["outcome"] == "won"
        rows.append((t0, mult_bucket(mult), args.stake, r["payout"] if won else 0, int(won),
                     0.95 * 100 / mult))
    text, summary = table(rows)
    print(f"{len(bets):,} acked bets, {len(rows):,} settled won/lost, {void} void or unsettled, "
          f"{args.guests} guests, {args.seconds:.0f} s")
    print(text)
    for c in clients:
        c.close()
    print(json.dumps({"bench": "wire_odds", "bets": len(rows), "void_or_unsettled": void,
                      "seconds": args.seconds, "by_bucket": summary}))


if __name__ == "__main__":
    main()

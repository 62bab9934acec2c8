"""A market in a child process, for the kill -9 test (test_durability.py).

Taps come in as JSON lines on stdin; each Ack goes out as a JSON line on
stdout, written (and flushed) only when the tap's future resolves, i.e.
after the Writer's commit. The child also prints a ``grid`` line (the open
cells near the price) whenever the grid is repriced. EOF on stdin stops the
market cleanly.

    $ PYTHONPATH=. python tests/actors/market_child.py --db /tmp/m.db
    {"type": "ready", "user": 1, "column_ms": 1000, "lock_ms": 300, ...}
    {"type": "grid", "now": 1800000000123, "cells": [[1800000001000, 9501000, 534], ...]}
    {"id": 7, "col": 1800000001000, "lo": 9501000, "stake": 100}          <- stdin
    {"type": "ack", "id": 7, "ok": true, "bet": 12, "reason": null, ...}
"""
import argparse
import json
import logging
import os
import sys

import gevent
from gevent.fileobject import FileObjectPosix

from actors._config import Config
from actors._context import Sinks
from actors.feeds._local import SimFeed
from actors._runtime import start_market
from engine import ActorSystem


def out(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class GridLines(Sinks):
    """Prints the open cells (within a few bands of the price) at each repricing."""

    def __init__(self, cfg, clock_ms):
        self.cfg = cfg
        self.clock_ms = clock_ms

    def on_grid(self, grid):
        now = self.clock_ms()
        band = self.cfg.band_cents
        base = grid.price // band * band
        cells = []
        for col in sorted(grid.columns):
            if now >= col - self.cfg.lock_ms:
                continue
            for k in range(-6, 7):
                mult = grid.columns[col].get(base + k * band)
                if mult:
                    cells.append([col, base + k * band, mult])
        out({"type": "grid", "now": now, "price": grid.price, "cells": cells})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--column-ms", type=int, default=1000)
    ap.add_argument("--lock-ms", type=int, default=300)
    ap.add_argument("--horizon-ms", type=int, default=3000)
    ap.add_argument("--credit", type=int, default=10**12)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    cfg = Config(db=args.db, column_ms=args.column_ms, lock_ms=args.lock_ms,
                 horizon_ms=args.horizon_ms, tick_interval_ms=100, max_open_bets=10**9,
                 cell_liability_cap=10**15, min_free_disk=0)
    system = ActorSystem()
    sinks = GridLines(cfg, lambda: 0)
    market = start_market(system, cfg, sinks=sinks,
                          feed=SimFeed(seed=args.seed, interval_ms=100))
    sinks.clock_ms = market.ctx.now
    user = market.create_user("durable", args.credit)
    if not market.wait_ready(20):
        out({"type": "error", "error": "market not ready"})
        return 1
    out({"type": "ready", "user": user, "pid": os.getpid(), "column_ms": cfg.column_ms,
         "lock_ms": cfg.lock_ms, "horizon_ms": cfg.horizon_ms})

    def answer(tap_id, fut):
        try:
            ack = fut.result()
        except Exception as exc:        # never expected: say so rather than hang
            out({"type": "ack", "id": tap_id, "ok": False, "reason": f"error: {exc!r}"})
            return
        out({"type": "ack", "id": tap_id, "ok": ack.reason is None, "bet": ack.bet,
             "reason": ack.reason, "mult": ack.mult, "balance": ack.balance})

    stdin = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    for line in stdin:
        try:
            req = json.loads(line)
            fut = market.tap(user, int(req["col"]), int(req["lo"]), int(req["stake"]),
                             int(req.get("min_mult", 101)))
        except (ValueError, KeyError, TypeError) as exc:
            out({"type": "error", "error": repr(exc)})
            continue
        fut.add_done_callback(lambda f, i=req.get("id"): answer(i, f))
        gevent.sleep(0)     # let the market take this tap before the next line is read
    system.stop()
    out({"type": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(main())

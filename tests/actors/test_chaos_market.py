"""Chaos on the market, in-process and bounded: the feed flapping around
the stale boundary, and a clock that jumps (injected into the market and
the feed). Taps flow all along. Afterwards, from the database:
- no bet was placed while the market was suspended for a stale price;
- every settled bet's outcome follows from the stored ticks of its own
  window: a win was touched, a loss was untouched in a window that was
  never stale (stale windows are void, never lost);
- no bet was settled twice (the audit: ledger and balances agree).
"""
import random
import time

import gevent

from actors.store import audit
from actors._config import Config
from actors.feeds import SimFeed
from actors._model import LOST, OPEN, VOID, WON
from actors._resolver import path_of
from actors._runtime import start_market
from actors.store import open_readonly
from engine import ActorSystem
from tests.support import wait_until

TICK_MS = 100


class JumpClock:
    """Real time plus an offset the test moves (forwards and backwards)."""

    def __init__(self):
        self.offset = 0.0

    def __call__(self):
        return time.time() + self.offset


def run_market(tmp_path, seed, chaos, clock=None):
    cfg = Config(db=str(tmp_path / "chaos.db"), seed=seed, tick_interval_ms=TICK_MS,
                 column_ms=1000, lock_ms=300, horizon_ms=4000, band_cents=200,
                 max_open_bets=100_000, cell_liability_cap=10 ** 12)
    system = ActorSystem()
    feed = SimFeed(seed=seed, interval_ms=TICK_MS, annual_vol=20.0,
                   **({"clock": clock} if clock else {}))
    market = start_market(system, cfg, feed=feed, clock=clock)
    changes = []                     # (market ms, open?) in the order they happened
    market.ctx.status.subscribe(lambda st: changes.append((market.ctx.now(), st.is_open)))
    try:
        assert market.wait_ready(10)
        users = [market.create_user(f"u{i}", 10 ** 9) for i in range(3)]
        stop = gevent.event.Event()
        placed = {"ok": 0, "refused": 0}

        def tapper():
            rng = random.Random(seed)
            while not stop.is_set():
                cell = market.pick_cell(rng.randint(-2, 2))
                if cell:
                    ack = market.tap(rng.choice(users), cell[0], cell[1], 100).get(5)
                    placed["ok" if ack.reason is None else "refused"] += 1
                gevent.sleep(0.01)

        g = gevent.spawn(tapper)
        chaos(market, feed)
        stop.set()
        g.join(5)
        feed.resume()
        # Let every placed bet settle (windows end, void or not).
        wait_until(lambda: open_count(cfg.db) == 0, timeout=30, interval=0.1,
                   what="every bet settled")
    finally:
        system.stop(timeout=5)
    return cfg, changes, placed


def open_count(db):
    conn = open_readonly(db)
    try:
        return conn.execute("SELECT count(*) FROM bets WHERE outcome = ?", (OPEN,)).fetchone()[0]
    finally:
        conn.close()


def check_outcomes(cfg):
    """Every settled bet against the stored ticks of its window."""
    conn = open_readonly(cfg.db)
    try:
        ticks = conn.execute("SELECT ts, price FROM ticks ORDER BY ts").fetchall()
        bets = conn.execute("SELECT id, col, lo, outcome, placed FROM bets").fetchall()
    finally:
        conn.close()
    stale_after = 2 * cfg.tick_interval_ms
    band = cfg.band_cents
    counts = {WON: 0, LOST: 0, VOID: 0}
    for bid, col, lo, outcome, _ in bets:
        low, high, stale = path_of(ticks, col, col + cfg.column_ms, stale_after)
        touched = low is not None and lo > low - band and lo <= high
        counts[outcome] += 1
        if outcome == WON:
            assert touched, f"bet {bid} won without a touch in its window"
        elif outcome == LOST:
            assert not touched, f"bet {bid} lost although its window touched it"
            assert not stale, f"bet {bid} lost in a stale window (must be void)"
    assert audit(cfg.db) == []
    return bets, counts


def stale_spans(changes):
    spans, start = [], None
    for ms, is_open in changes:
        if not is_open and start is None:
            start = ms
        elif is_open and start is not None:
            spans.append((start, ms))
            start = None
    if start is not None:
        spans.append((start, float("inf")))
    return spans


def test_feed_flapping_around_the_stale_boundary(tmp_path):
    rng = random.Random(5)
    cycles = {"n": 0}

    def flap(market, feed):
        stale_after = 2 * TICK_MS
        for _ in range(16):
            feed.pause()
            # Around the boundary: some pauses end before, some after it.
            gevent.sleep(rng.uniform(stale_after - 60, stale_after + 120) / 1000)
            feed.resume()
            gevent.sleep(rng.uniform(0.1, 0.3))
            cycles["n"] += 1

    cfg, changes, placed = run_market(tmp_path, 5, flap)
    spans = stale_spans(changes)
    assert cycles["n"] == 16 and len(spans) >= 3, spans      # it did go stale, and back
    bets, counts = check_outcomes(cfg)
    for bid, _, _, _, placed_ms in bets:
        inside = [s for s in spans if s[0] < placed_ms < s[1]]
        assert not inside, f"bet {bid} placed at {placed_ms} while stale {inside}"
    assert placed["ok"] > 20 and placed["refused"] > 0, placed
    assert counts[WON] + counts[LOST] > 0 and counts[VOID] > 0, counts


def test_a_clock_that_jumps_settles_each_window_once_from_its_own_ticks(tmp_path):
    clock = JumpClock()

    def jumps(market, feed):
        for delta in (+2.5, +0.7, -1.2, +4.0, -0.5, +1.5):
            gevent.sleep(0.8)
            clock.offset += delta
        gevent.sleep(1.5)

    cfg, changes, placed = run_market(tmp_path, 8, jumps, clock=clock)
    bets, counts = check_outcomes(cfg)
    assert placed["ok"] > 20, placed
    # Settled once each: one settlement ledger row per settled bet at most.
    conn = open_readonly(cfg.db)
    try:
        dup = conn.execute("SELECT bet, count(*) FROM ledger_all WHERE bet IS NOT NULL"
                           " GROUP BY bet, kind HAVING count(*) > 1").fetchall()
    finally:
        conn.close()
    assert dup == []
    assert counts[VOID] > 0, counts          # the jumps left stale windows: refunded

"""The Resolver: the price path of a window, instant wins, losses at window
end, void + refund after a stale feed, and settlement after a restart.

Prices come from ``PushFeed``, a feed the test drives (same interface as
``actors.feeds._local.Feed``): it emits the price the test sets, stamped with the
wall clock, every ``interval_ms``, and can be paused like the SimFeed.
Columns are short (1-2 s) so each test takes a few seconds.
"""
import time
from collections import deque

import gevent
from gevent.event import Event

from actors.store._audit import audit
from actors._config import Config
from actors._context import Sinks
from actors.feeds._local import Feed, Tick
from actors._model import LOST, OPEN, VOID, WON, payout_for
from actors._resolver import path_of
from actors._runtime import start_market
from actors.store._store import KIND_PAYOUT, KIND_REFUND, open_readonly
from engine import ActorSystem
from tests.support import wait_until

BAND = 1000
BASE = 9_500_000             # price band X = [BASE, BASE + BAND)
PRICE = BASE + 500           # the price sits mid-band


def mid(offset):
    """The middle of band X + offset."""
    return BASE + offset * BAND + BAND // 2


class PushFeed(Feed):
    """A price feed the test drives. Every ``interval_ms`` it emits ``price``
    (whatever the test last set) stamped with the wall clock; ``push`` emits
    an extra tick at once (any price, any ts); ``pause``/``resume`` hold the
    ticks back. ``interval_ms=None``: only pushed ticks."""

    name = "push"

    def __init__(self, price=PRICE, interval_ms=50, expected_interval_ms=None):
        super().__init__()
        self.price = price
        self.interval_ms = interval_ms
        self.expected_interval_ms = expected_interval_ms or interval_ms or 100
        self._pushed = deque()
        self._wake = Event()
        self._running = Event()
        self._running.set()

    def push(self, price, ts=None):
        self._pushed.append(Tick(price, int(time.time() * 1000) if ts is None else ts))
        self._wake.set()

    def pause(self):
        self._running.clear()

    def resume(self):
        self._running.set()
        self._wake.set()

    def stop(self):
        super().stop()
        self._running.set()
        self._wake.set()

    def run(self, emit):
        timeout = self.interval_ms / 1000 if self.interval_ms else None
        while not self.stopped:
            woken = self._wake.wait(timeout)
            self._wake.clear()
            self._running.wait()
            if self.stopped:
                break
            while self._pushed:
                self._emit(emit, self._pushed.popleft())
            if not woken and self.interval_ms:
                self._emit(emit, Tick(self.price, int(time.time() * 1000)))


class Results(Sinks):
    def __init__(self):
        self.by_bet = {}

    def on_result(self, user, settlement, balance):
        assert settlement.bet not in self.by_bet, "a bet settled twice"
        self.by_bet[settlement.bet] = (settlement, balance)


# --- path_of ---------------------------------------------------------------------------

T0, T1, STALE = 10_000, 11_000, 200


def test_path_starts_at_the_price_prevailing_at_t0():
    ticks = [(9_000, 50), (9_900, 100), (10_100, 120), (10_300, 110), (10_500, 105),
             (10_700, 110), (10_900, 111)]
    assert path_of(ticks, T0, T1, STALE) == (100, 120, False)
    # a tick exactly at t0 is in the window, the one before it still prevails
    ticks = [(9_900, 90), (10_000, 100), (10_150, 105), (10_300, 104)]
    assert path_of(ticks, T0, T1, STALE)[:2] == (90, 105)
    # a tick at t1 belongs to the next window
    ticks = [(9_900, 100), (10_050, 101), (10_200, 101), (10_400, 102), (10_600, 103),
             (10_800, 104), (10_950, 104), (11_000, 500)]
    assert path_of(ticks, T0, T1, STALE) == (100, 104, False)


def test_path_without_a_prevailing_price_is_stale():
    assert path_of([], T0, T1, STALE) == (None, None, True)
    assert path_of([(10_100, 100), (10_200, 100)], T0, T1, STALE) == (None, None, True)


def test_a_jump_across_a_band_touches_it():
    # 1000 -> 1300 in one tick: the path is a line, so [1100, 1200) is touched
    low, high, stale = path_of([(9_950, 1000), (10_100, 1000), (10_200, 1300), (10_400, 1300),
                                (10_600, 1300), (10_800, 1300)], T0, T1, STALE)
    band = 100
    touched = [lo for lo in range(800, 1600, band) if lo <= high and lo + band > low]
    assert (low, high, stale) == (1000, 1300, False)
    assert touched == [1000, 1100, 1200, 1300]


def test_gaps_make_the_window_stale():
    steady = [(t, 100) for t in range(9_900, 11_000, 150)]
    assert path_of(steady, T0, T1, STALE)[2] is False
    gap_inside = [(t, 100) for t in (9_900, 10_050, 10_200, 10_450, 10_600, 10_750, 10_900)]
    assert path_of(gap_inside, T0, T1, STALE)[2] is True
    old_prevailing = [(9_700, 100)] + [(t, 100) for t in range(10_100, 11_000, 150)]
    assert path_of(old_prevailing, T0, T1, STALE)[2] is True
    ends_early = [(t, 100) for t in range(9_900, 10_700, 150)]
    assert path_of(ends_early, T0, T1, STALE)[2] is True
    assert path_of(gap_inside[:2], T0, T1, STALE)[2] is True


# --- the Resolver in a running market --------------------------------------------------

def config(db_path, column_ms=1000):
    return Config(db=db_path, column_ms=column_ms, lock_ms=300, horizon_ms=3 * column_ms,
                  tick_interval_ms=100, band_cents=BAND, max_bands=10)


def run_market(system, db_path, price=PRICE, column_ms=1000, prefix=""):
    results = Results()
    feed = PushFeed(price)
    market = start_market(system, config(db_path, column_ms), sinks=results, feed=feed,
                          name_prefix=prefix)
    assert market.wait_ready(10)
    return market, feed, results


def next_column(market, margin_ms=150):
    """The earliest column still open for taps (with a margin)."""
    def pick():
        now = market.ctx.now()
        cols = [c for c in sorted(market.grid.columns) if now < c - market.cfg.lock_ms - margin_ms]
        return cols[0] if cols else None
    return wait_until(pick, what="an open column")


def place(market, user, col, offset, stake=1000):
    lo = BASE + offset * BAND
    ack = market.tap(user, col, lo, stake).get(5)
    assert ack.reason is None, ack
    return ack


def wait_for_time(market, ms):
    wait_until(lambda: market.ctx.now() >= ms, timeout=10, what=f"time {ms}")


def wait_for_ticks_past(db_path, ms):
    """Until the stored ticks reach ``ms`` (the Writer keeps every accepted tick)."""
    conn = open_readonly(db_path)
    try:
        wait_until(lambda: (conn.execute("SELECT max(ts) FROM ticks").fetchone()[0] or 0) >= ms,
                   timeout=10, what=f"stored ticks past {ms}")
    finally:
        conn.close()


def bet_rows(db_path):
    conn = open_readonly(db_path)
    try:
        bets = {r[0]: r[1:] for r in conn.execute(
            "SELECT id, outcome, payout, settled FROM bets")}
        ledger = conn.execute("SELECT bet, kind, amount FROM ledger_all WHERE bet IS NOT NULL "
                              "ORDER BY bet").fetchall()
        return bets, ledger
    finally:
        conn.close()


def test_instant_win_on_touch_and_loss_at_window_end(system, db_path):
    market, feed, results = run_market(system, db_path)
    alice = market.create_user("alice", 100_000)
    t0 = next_column(market)
    t1 = t0 + market.cfg.column_ms
    hit = place(market, alice, t0, 3)
    jumped = place(market, alice, t0, 5)
    missed_above = place(market, alice, t0, 8)
    missed_below = place(market, alice, t0, -3)
    wait_for_time(market, t0 + 50)
    feed.price = mid(3)
    wait_until(lambda: hit.bet in results.by_bet, what="the instant win")
    feed.price = mid(6)                                  # one tick jumps over band 5
    wait_until(lambda: jumped.bet in results.by_bet, what="the win across a jump")
    bets, _ = bet_rows(db_path)
    for ack in (hit, jumped):
        outcome, payout, settled = bets[ack.bet]
        assert (outcome, payout) == (WON, payout_for(1000, ack.mult))
        assert settled < t1                              # paid during the window
        assert results.by_bet[ack.bet][0].outcome == WON
    assert bets[missed_above.bet][0] == OPEN and bets[missed_below.bet][0] == OPEN
    feed.price = PRICE
    wait_until(lambda: len(results.by_bet) == 4, timeout=10, what="the losses")
    bets, ledger = bet_rows(db_path)
    for ack in (missed_above, missed_below):
        outcome, payout, settled = bets[ack.bet]
        assert (outcome, payout) == (LOST, 0) and settled >= t1
    assert ledger == [(hit.bet, KIND_PAYOUT, payout_for(1000, hit.mult)),
                      (jumped.bet, KIND_PAYOUT, payout_for(1000, jumped.mult))]
    expected = 100_000 - 4000 + payout_for(1000, hit.mult) + payout_for(1000, jumped.mult)
    assert market.balance(alice) == expected
    assert results.by_bet[missed_below.bet][1] == expected
    assert audit(db_path) == []


def test_the_prevailing_price_touches_at_the_first_tick(system, db_path):
    market, feed, results = run_market(system, db_path)
    alice = market.create_user("alice", 100_000)
    t0 = next_column(market)
    bet = place(market, alice, t0, 2)
    # the price moves into band 2 before the window opens and stays there
    feed.price = mid(2)
    wait_until(lambda: bet.bet in results.by_bet, timeout=10, what="the win")
    outcome, payout, settled = bet_rows(db_path)[0][bet.bet]
    assert outcome == WON and t0 <= settled < t0 + market.cfg.column_ms


def test_stale_feed_inside_the_window_voids_untouched_bets(system, db_path):
    market, feed, results = run_market(system, db_path, column_ms=2000)
    alice = market.create_user("alice", 100_000)
    t0 = next_column(market)
    t1 = t0 + market.cfg.column_ms
    hit = place(market, alice, t0, 3, stake=700)
    untouched = place(market, alice, t0, 7, stake=500)
    wait_for_time(market, t0 + 50)
    feed.price = mid(3)
    wait_until(lambda: hit.bet in results.by_bet, what="the instant win")
    feed.price = PRICE
    feed.pause()
    wait_until(lambda: market.status.holds("stale_price"), what="stale")
    stale_at = market.ctx.now()
    assert stale_at < t1, "the machine was too slow to go stale inside the window"
    assert market.status.reason == "stale_price"
    feed.resume()
    wait_until(lambda: market.status.is_open, what="fresh again")
    wait_until(lambda: untouched.bet in results.by_bet, timeout=10, what="the void")
    bets, ledger = bet_rows(db_path)
    assert bets[untouched.bet][:2] == (VOID, 500)
    assert bets[hit.bet][:2] == (WON, payout_for(700, hit.mult))          # the win stands
    assert ledger == [(hit.bet, KIND_PAYOUT, payout_for(700, hit.mult)),
                      (untouched.bet, KIND_REFUND, 500)]
    assert market.balance(alice) == 100_000 - 700 + payout_for(700, hit.mult)
    assert market.resolver.ask("stats")["void"] == 1
    assert audit(db_path) == []


def test_restart_settles_pending_bets_from_stored_ticks_once(system, db_path):
    market, feed, results = run_market(system, db_path)
    alice = market.create_user("alice", 100_000)
    t0 = next_column(market)
    t1 = t0 + market.cfg.column_ms
    hit = place(market, alice, t0, 3)
    pending = place(market, alice, t0, 7, stake=400)
    wait_for_time(market, t0 + 50)
    feed.price = mid(3)
    wait_until(lambda: hit.bet in results.by_bet, what="the instant win")
    feed.price = PRICE
    # The Resolver goes down; prices are still recorded to the window's end.
    market.resolver.stop()
    wait_for_ticks_past(db_path, t1 + 50)
    system.stop()
    bets, ledger = bet_rows(db_path)
    assert bets[pending.bet][0] == OPEN and bets[hit.bet][0] == WON
    system2 = ActorSystem()
    try:
        market2, feed2, results2 = run_market(system2, db_path)
        # The open bet was loaded (unless recovery has already settled it:
        # the Resolver's first sweep may beat wait_ready).
        assert market2.ctx.ledger.open_bets(alice) == 1 or pending.bet in results2.by_bet
        wait_until(lambda: pending.bet in results2.by_bet, timeout=10, what="recovery")
        gevent.sleep(0.6)                    # under test: over a few more sweeps nothing else settles
        assert set(results2.by_bet) == {pending.bet}
        bets, ledger = bet_rows(db_path)
        assert bets[pending.bet][:2] == (LOST, 0)
        assert ledger == [(hit.bet, KIND_PAYOUT, payout_for(1000, hit.mult))]
        assert market2.balance(alice) == 100_000 - 1400 + payout_for(1000, hit.mult)
        assert market2.ctx.ledger.open_bets(alice) == 0
    finally:
        system2.stop()
    assert audit(db_path) == []


def test_restart_after_downtime_inside_the_window_voids_and_pays_nothing_twice(system, db_path):
    market, feed, results = run_market(system, db_path)
    alice = market.create_user("alice", 100_000)
    t0 = next_column(market)
    t1 = t0 + market.cfg.column_ms
    hit = place(market, alice, t0, 3)
    pending = place(market, alice, t0, 7, stake=400)
    wait_for_time(market, t0 + 50)
    feed.price = mid(3)
    wait_until(lambda: hit.bet in results.by_bet, what="the instant win")
    feed.price = PRICE
    system.stop()                            # down in the middle of the window
    wait_until(lambda: time.time() * 1000 > t1 + 400, what="the window to pass")
    system2 = ActorSystem()
    try:
        market2, feed2, results2 = run_market(system2, db_path)
        wait_until(lambda: pending.bet in results2.by_bet, timeout=10, what="recovery")
        gevent.sleep(0.6)                    # under test: over a few more sweeps nothing else settles
        assert set(results2.by_bet) == {pending.bet}
        bets, ledger = bet_rows(db_path)
        assert bets[pending.bet][:2] == (VOID, 400)     # no prices while down: void
        assert bets[hit.bet][:2] == (WON, payout_for(1000, hit.mult))
        assert ledger == [(hit.bet, KIND_PAYOUT, payout_for(1000, hit.mult)),
                          (pending.bet, KIND_REFUND, 400)]
        assert market2.balance(alice) == 100_000 - 1000 + payout_for(1000, hit.mult)
    finally:
        system2.stop()
    assert audit(db_path) == []


def test_no_instant_win_from_the_price_before_a_downtime(system, db_path):
    # The server is down when the window opens, and comes back with the price
    # elsewhere. The price "prevailing" at t0 is then a stale tick from before
    # the downtime: it must not pay a win (SPEC 7: no settlement uses stale
    # data), just as a live feed stall over t0 voids the column.
    market, feed, results = run_market(system, db_path)
    alice = market.create_user("alice", 100_000)
    t0 = next_column(market)
    between = place(market, alice, t0, 3)
    system.stop()
    wait_until(lambda: time.time() * 1000 > t0 + 300, what="the window to open")
    system2 = ActorSystem()
    try:
        market2, feed2, results2 = run_market(system2, db_path, price=mid(6))
        wait_until(lambda: between.bet in results2.by_bet, timeout=10, what="settlement")
        outcome, payout, _ = bet_rows(db_path)[0][between.bet]
        assert (outcome, payout) == (VOID, 1000), \
            f"settled {outcome} from a path joining a stale price to a fresh one"
    finally:
        system2.stop()
    assert audit(db_path) == []

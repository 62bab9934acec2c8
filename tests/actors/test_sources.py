"""A price from several sources: the median of the fresh ones, drop-out
after 2x a source's interval, the quorum and divergence breaker (betting
suspended with ``stale_price``, reopened by itself), the record of the
sources behind each price, and the simulated sources and assets that let
all of it run without a network."""
import doctest
import math
from statistics import correlation, pstdev

import pytest

from actors import _sources
from actors._config import Config
from actors._context import MarketContext
from actors.feeds import SimFeed, Tick, make_sources
from actors._model import VOID
from actors._runtime import start_market
from actors._sources import (DIVERGENCE, OK, QUORUM, SourceBoard, decode_sources,
                             encode_sources, median_of, source_names)
from actors.store import open_readonly
from actors._watchdog import Health, Watchdog
from tests.actors.test_resolver import PushFeed, Results
from tests.support import wait_until

P = 9_500_000


def test_module_example_runs():
    assert doctest.testmod(_sources).failed == 0


# -- the rules, on their own -------------------------------------------------------------

def test_median_is_whole_cents():
    assert median_of([5]) == 5
    assert median_of([9, 1, 5]) == 5
    assert median_of([10, 1, 5, 7]) == 6          # (5 + 7) // 2
    assert median_of([100, 101]) == 100           # 100.5 rounds down
    assert type(median_of([3, 4])) is int
    with pytest.raises(ValueError):
        median_of([])


def test_a_source_drops_out_after_twice_its_interval():
    b = SourceBoard(["a", "b", "c"], [1000, 1000, 250], quorum=2, divergence_bp=100)
    for i in range(3):
        assert b.update(i, Tick(P + i * 100, 1000), now_ms=0)
    assert b.evaluate(0) == (OK, P + 100)
    assert set(b.fresh(500)) == {"a", "b", "c"}
    assert set(b.fresh(501)) == {"a", "b"}        # c: 2 x 250 ms without a tick
    assert b.evaluate(501) == (OK, P + 50)
    assert b.evaluate(2000) == (OK, P + 50)       # exactly 2x: still fresh
    assert b.evaluate(2001) == (QUORUM, None)
    assert b.update(2, Tick(P, 1100), now_ms=2100) and b.update(0, Tick(P, 1100), now_ms=2100)
    assert b.evaluate(2100) == (OK, P)            # back by itself with fresh ticks


def test_below_quorum_and_divergence_suspend():
    b = SourceBoard(["a", "b", "c"], [1000] * 3, quorum=3, divergence_bp=50)
    b.update(0, Tick(P, 1), 0)
    b.update(1, Tick(P, 1), 0)
    assert b.evaluate(0) == (QUORUM, P)           # 2 fresh of the 3 required
    b.update(2, Tick(P * 10_050 // 10_000, 1), 0)  # +50 bp: at the bound, not beyond
    assert b.evaluate(0)[0] == OK
    b.update(2, Tick(P * 10_051 // 10_000, 2), 0)  # beyond it
    assert b.evaluate(0)[0] == DIVERGENCE
    b.update(2, Tick(P, 3), 0)
    assert b.evaluate(0)[0] == OK


def test_each_source_rejects_its_own_outliers_and_late_ticks():
    b = SourceBoard(["a", "b"], [1000] * 2, quorum=1, outlier_bp=500)
    assert b.update(0, Tick(P, 100), 0)
    assert not b.update(0, Tick(P * 2, 200), 0)   # +100% from a's last
    assert not b.update(0, Tick(P, 99), 0)        # older than a's last
    assert not b.update(0, Tick(0, 300), 0)
    assert b.update(1, Tick(P + 100, 50), 0)      # b has its own last tick and time
    assert b.counts[0] == {"ticks": 1, "outliers": 2, "out_of_order": 1}
    assert b.counts[1]["ticks"] == 1


def test_the_record_of_sources_round_trips():
    prices = {"coinbase": P, "binance": P + 250, "kraken": P - 40, "sim-2": P}
    text = encode_sources(prices)
    assert decode_sources(text) == prices
    assert len(text) < 50
    for bad in ("coinbase", "coinbase+5", "coinbase=", "a=1,b", "=5", "a=1,,b+2", "a=-1"):
        with pytest.raises(ValueError):
            decode_sources(bad)
    assert source_names(["sim", "sim", "kraken"]) == ["sim-1", "sim-2", "kraken"]


def test_snapshot_for_metrics():
    b = SourceBoard(["a", "b", "c"], [1000] * 3, quorum=2, divergence_bp=100)
    b.update(0, Tick(P, 1), 0)
    b.update(1, Tick(P + 950, 1), 100)
    b.evaluate(100)
    snap = b.snapshot(600)
    assert snap["state"] == OK and snap["quorum"] == 2 and snap["fresh"] == 2
    assert snap["median"] == P + 475
    a, bb, c = snap["sources"]
    assert (a["age_ms"], bb["age_ms"], c["age_ms"]) == (600, 500, None)
    assert a["deviation_bp"] == pytest.approx(-475 * 10_000 / (P + 475))
    assert a["fresh"] and bb["fresh"] and not c["fresh"] and c["deviation_bp"] is None


# -- simulated sources and assets --------------------------------------------------------

def walk(feed, n):
    return [feed.next_price() for _ in range(n)]


def test_sim_sources_share_the_walk_with_their_own_noise_and_lag():
    honest = walk(SimFeed(seed=5), 400)
    noisy = walk(SimFeed(seed=5, source=1, noise_bp=2.0), 400)
    lagged = walk(SimFeed(seed=5, source=2, lag_ms=500, interval_ms=250), 400)
    assert noisy != honest
    devs = [(n - h) * 10_000 / h for n, h in zip(noisy, honest)]
    assert 1.0 < pstdev(devs) < 3.5 and max(abs(d) for d in devs) < 12
    assert lagged[2:] == honest[:-2]              # 500 ms = two steps behind
    assert walk(SimFeed(seed=5, source=1, noise_bp=2.0), 400) == noisy   # seeded


def test_a_sim_source_can_diverge_and_come_back():
    feed = SimFeed(seed=9)
    twin = SimFeed(seed=9)
    assert feed.next_price() == twin.next_price()
    feed.diverge(300)
    p, q = feed.next_price(), twin.next_price()
    assert p == q * 10_300 // 10_000
    feed.diverge(0)
    assert feed.next_price() == twin.next_price()


def test_sim_assets_are_correlated_walks_with_their_own_volatility():
    n = 20_000
    btc = walk(SimFeed(seed=3, asset="BTC-USD", interval_ms=1000), n)
    eth = walk(SimFeed(seed=3, asset="ETH-USD", interval_ms=1000), n)
    sol = walk(SimFeed(seed=3, asset="SOL-USD", interval_ms=1000, start_price=2_000_000), n)
    assert btc[0] == 9_500_000 and eth[0] == 350_000
    r = {name: [math.log(b / a) for a, b in zip(xs, xs[1:])]
         for name, xs in (("btc", btc), ("eth", eth), ("sol", sol))}
    assert correlation(r["btc"], r["eth"]) == pytest.approx(0.8, abs=0.03)
    assert correlation(r["btc"], r["sol"]) == pytest.approx(0.7, abs=0.03)
    year = math.sqrt(365.25 * 86400)
    assert pstdev(r["btc"]) * year == pytest.approx(0.6, rel=0.05)
    assert pstdev(r["eth"]) * year == pytest.approx(0.75, rel=0.05)
    assert pstdev(r["sol"]) * year == pytest.approx(1.0, rel=0.05)
    # BTC's walk is the one a single sim source always had
    assert walk(SimFeed(seed=3, interval_ms=1000), 50) == btc[:50]
    with pytest.raises(ValueError, match="unknown sim asset"):
        SimFeed(asset="DOGE-USD")


def test_make_sources_from_config():
    one = make_sources(Config(seed=1))
    assert len(one) == 1 and isinstance(one[0], SimFeed) and one[0].noise_bp == 0
    three = make_sources(Config(seed=1, sources=["sim", "sim", "sim"], quorum=2,
                                sim_noise_bp=1.5, sim_lag_ms=80))
    assert [(f.source, f.noise_bp, f.lag_ms) for f in three] == [(0, 1.5, 0), (1, 1.5, 80),
                                                                 (2, 1.5, 160)]
    unseeded = make_sources(Config(sources=["sim", "sim"], sim_noise_bp=0, sim_lag_ms=0))
    assert walk(unseeded[0], 200) == walk(unseeded[1], 200)    # one walk, even without --seed
    mixed = make_sources(Config(sources=["coinbase", "binance", "kraken"], quorum=2))
    assert [f.name for f in mixed] == ["coinbase", "binance", "kraken"]
    for bad in (dict(sources=["sim", "sim"], quorum=3), dict(quorum=2),
                dict(sources=["nasdaq"]), dict(divergence_bp=0)):
        with pytest.raises(ValueError):
            Config(**bad).validate()
    assert Config.load(env={"TAPGRID_SOURCES": "sim,kraken", "TAPGRID_QUORUM": "2"}).sources == \
        ["sim", "kraken"]


# -- the Watchdog with several sources ---------------------------------------------------

def spawn(system, db_path, feeds, **cfg):
    ctx = MarketContext(Config(db=db_path, **cfg))
    seen = []
    ref = system.spawn(Watchdog, ctx, feeds, [seen.append], name="watchdog")
    return ctx, ref, seen


def ticks_in(seen):
    return [m for m in seen if type(m) is Tick]


def test_watchdog_publishes_the_median_and_drops_a_silent_source(system, db_path):
    feeds = [PushFeed(P, 50), PushFeed(P + 300, 50), PushFeed(P + 1000, 50)]
    ctx, ref, seen = spawn(system, db_path, feeds, tick_interval_ms=100, quorum=2,
                           sources=["sim"] * 3, divergence_bp=100)
    wait_until(lambda: ctx.status.is_open, what="open with three sources")
    wait_until(lambda: ticks_in(seen) and ticks_in(seen)[-1].price == P + 300,
               what="the median of three")
    assert {t.price for t in ticks_in(seen)} <= {P, P + 150, P + 300, P + 500, P + 650}
    feeds[2].pause()
    wait_until(lambda: ticks_in(seen)[-1].price == P + 150, what="the median of two")
    assert ctx.status.is_open                     # 2 fresh: the quorum holds
    board = ref.ask("snapshot")["board"]
    assert [s["fresh"] for s in board["sources"]] == [True, True, False]
    assert board["sources"][2]["age_ms"] > 200 and board["state"] == OK
    ts = [t.ts for t in ticks_in(seen)]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)   # one price a ms
    feeds[1].pause()
    wait_until(lambda: ctx.status.holds("stale_price"), what="below the quorum")
    snap = ref.ask("snapshot")
    assert snap["stale"] and "fewer than 2 fresh sources" in snap["why"]
    assert snap["board"]["state"] == QUORUM
    n = len(ticks_in(seen))
    feeds[0].push(P + 10)
    wait_until(lambda: ref.ask("snapshot")["board"]["sources"][0]["price"] == P + 10,
               what="a lone tick")
    assert len(ticks_in(seen)) == n                # no price while below the quorum
    feeds[1].resume()
    wait_until(lambda: ctx.status.is_open, what="reopened by itself")
    healths = [m for m in seen if type(m) is Health]
    assert [h.state for h in healths] == ["fresh", "stale", "fresh"]


def test_divergence_suspends_until_the_sources_agree(system, db_path):
    feeds = [SimFeed(seed=4, interval_ms=50, source=i, noise_bp=0.5) for i in range(3)]
    ctx, ref, seen = spawn(system, db_path, feeds, tick_interval_ms=50, quorum=2,
                           sources=["sim"] * 3, divergence_bp=30)
    wait_until(lambda: ctx.status.is_open, what="open")
    feeds[2].diverge(200)
    wait_until(lambda: ctx.status.holds("stale_price"), what="divergence")
    snap = ref.ask("snapshot")
    assert snap["board"]["state"] == DIVERGENCE and "disagree" in snap["why"]
    assert ctx.status.reason == "stale_price"
    dev = snap["board"]["sources"][2]["deviation_bp"]
    assert dev > 30
    feeds[2].diverge(0)
    wait_until(lambda: ctx.status.is_open, what="agree again")
    # a source that keeps diverging but then goes silent drops out: the
    # other two agree, so betting reopens without it
    feeds[2].diverge(200)
    wait_until(lambda: ctx.status.holds("stale_price"), what="divergence again")
    feeds[2].pause()
    wait_until(lambda: ctx.status.is_open, what="reopened without the silent source")
    assert ref.ask("snapshot")["board"]["fresh"] == 2


def test_the_record_keeps_each_price_with_its_sources_and_the_stale_periods(system, db_path):
    feeds = [SimFeed(seed=2, interval_ms=50, source=i, noise_bp=1.0) for i in range(3)]
    cfg = Config(db=db_path, sources=["sim"] * 3, quorum=2, divergence_bp=30,
                 tick_interval_ms=50, column_ms=1000, lock_ms=300, horizon_ms=3000)
    market = start_market(system, cfg, feed=feeds)
    assert market.wait_ready(10)
    wait_until(lambda: market.watchdog.ask("snapshot")["ticks"] >= 20, what="20 prices")
    feeds[1].diverge(300)
    wait_until(lambda: market.status.holds("stale_price"), what="divergence")
    feeds[1].diverge(0)
    wait_until(lambda: market.status.is_open, what="open again")
    conn = open_readonly(db_path)
    try:
        wait_until(lambda: conn.execute("SELECT count(*) FROM stale_spans WHERE end IS NOT NULL"
                                        ).fetchone()[0] == 1, what="the stale span recorded")
        rows = conn.execute("SELECT ts, price, src FROM ticks ORDER BY ts").fetchall()
        start, end = conn.execute("SELECT start, end FROM stale_spans").fetchone()
    finally:
        conn.close()
    assert len(rows) >= 20 and start < end
    for ts, price, src in rows:
        srcs = decode_sources(src)
        assert len(srcs) >= 2 and median_of(srcs.values()) == price
        assert set(srcs) <= {"sim-1", "sim-2", "sim-3"}


# -- nothing taken, nothing won while suspended ------------------------------------------

def test_no_bet_accepted_and_no_win_or_loss_while_suspended(system, db_path):
    feeds = [SimFeed(seed=8, interval_ms=50, source=i, noise_bp=0.5) for i in range(3)]
    cfg = Config(db=db_path, sources=["sim"] * 3, quorum=2, divergence_bp=30,
                 tick_interval_ms=50, column_ms=1000, lock_ms=300, horizon_ms=3000,
                 band_cents=1000)
    results = Results()
    market = start_market(system, cfg, sinks=results, feed=feeds)
    assert market.wait_ready(10)
    alice = market.create_user("alice", 100_000)
    acks = []
    for offset in (0, 1, -1, 5):
        cell = market.pick_cell(offset)
        if cell:
            acks.append((cell, market.tap(alice, cell[0], cell[1], 100).get(5)))
    assert acks and all(a.reason is None for _, a in acks)
    # suspend: two of the three sources stall (below the quorum of 2)
    feeds[1].pause()
    feeds[2].pause()
    wait_until(lambda: market.status.holds("stale_price"), what="suspended")
    t_suspended = market.ctx.now()
    col = max(c for c in market.grid.columns)
    lo = market.grid.price // 1000 * 1000
    assert market.tap(alice, col, lo, 100).get(5).reason == "market_suspended"
    # the windows of the bets end while suspended: nothing may win or lose
    last_col = max(cell[0] for cell, _ in acks)
    wait_until(lambda: market.ctx.now() > last_col + 1000 + 500, timeout=10,
               what="the bets' windows over")
    wait_until(lambda: len(results.by_bet) == len(acks), timeout=10, what="all settled")
    assert market.status.holds("stale_price")
    assert all(s.outcome == VOID and s.payout == s.stake for s, _ in results.by_bet.values())
    assert market.balance(alice) == 100_000       # every stake refunded
    feeds[1].resume()
    feeds[2].resume()
    wait_until(lambda: market.status.is_open, what="reopened by itself")
    assert t_suspended < market.ctx.now()
    cell = wait_until(lambda: market.pick_cell(1), what="an open cell")
    assert market.tap(alice, cell[0], cell[1], 100).get(5).reason is None

"""The PriceWatchdog: outliers and out-of-order ticks are dropped and
counted, the market goes stale after 2x the expected interval without a
tick (betting suspended at once) and reopens by itself; subscribers get
every accepted tick and each health change."""
from actors._config import Config
from actors._context import MarketContext
from actors.feeds._local import SimFeed, Tick
from actors._model import Tap
from actors._runtime import start_market
from actors._watchdog import Health, Watchdog
from tests.actors.test_resolver import PushFeed
from tests.support import wait_until

P = 9_500_000


def spawn(system, db_path, feed, **cfg):
    ctx = MarketContext(Config(db=db_path, **cfg))
    seen = []
    ref = system.spawn(Watchdog, ctx, feed, [seen.append], name="watchdog")
    return ctx, ref, seen


def ticks_in(seen):
    return [m for m in seen if type(m) is Tick]


def health_in(seen):
    return [m for m in seen if type(m) is Health]


def test_outliers_are_rejected_and_counted(system, db_path):
    feed = PushFeed(interval_ms=None, expected_interval_ms=1000)
    ctx, ref, seen = spawn(system, db_path, feed, tick_interval_ms=1000, outlier_bp=500)
    feed.push(P, 1000)
    feed.push(P * 106 // 100, 1100)         # +6%: beyond the 5% bound
    feed.push(P * 94 // 100, 1200)          # -6%
    feed.push(0, 1250)                      # nonsense
    feed.push(P * 104 // 100, 1300)         # +4%: a real move
    wait_until(lambda: len(ticks_in(seen)) == 2, what="two good ticks")
    snap = ref.ask("snapshot")
    assert snap["outliers"] == 3 and snap["ticks"] == 2
    assert ticks_in(seen) == [Tick(P, 1000), Tick(P * 104 // 100, 1300)]
    assert snap["price"] == P * 104 // 100 and snap["ts"] == 1300


def test_out_of_order_ticks_are_ignored(system, db_path):
    feed = PushFeed(interval_ms=None, expected_interval_ms=1000)
    ctx, ref, seen = spawn(system, db_path, feed, tick_interval_ms=1000)
    feed.push(P, 2000)
    feed.push(P + 100, 1999)                # late
    feed.push(P + 200, 2000)                # same time: kept, 1 ms later (one price a ms
                                            # in the record, so it equals the path seen live)
    feed.push(P + 300, 2500)
    wait_until(lambda: ref.ask("snapshot")["ticks"] == 3, what="three ticks")
    assert ref.ask("snapshot")["out_of_order"] == 1
    assert [t.ts for t in ticks_in(seen)] == [2000, 2001, 2500]


def test_stale_after_twice_the_interval_then_fresh_again(system, db_path):
    feed = PushFeed(interval_ms=50, expected_interval_ms=100)
    feed.pause()
    ctx, ref, seen = spawn(system, db_path, feed, tick_interval_ms=100)
    assert ref.ask("snapshot")["stale"] is True
    assert ctx.status.holds("stale_price")             # no price yet: no betting
    feed.resume()
    wait_until(lambda: health_in(seen), what="first health")
    assert health_in(seen)[0].state == "fresh" and ctx.status.is_open
    feed.pause()
    wait_until(lambda: ctx.status.holds("stale_price"), timeout=5, what="stale")
    last = ticks_in(seen)[-1]
    stale = health_in(seen)[-1]
    assert stale.state == "stale" and ctx.status.reason == "stale_price"
    assert stale.since - last.ts >= 2 * 100 - 2    # not before 2x the interval
    assert ref.ask("snapshot")["stale"] is True
    n = len(ticks_in(seen))
    feed.resume()
    wait_until(lambda: ctx.status.is_open, what="fresh again")
    assert health_in(seen)[-1].state == "fresh" and len(ticks_in(seen)) > n
    snap = ref.ask("snapshot")
    assert snap["stale"] is False and snap["stale_periods"] == 1
    assert [h.state for h in health_in(seen)] == ["fresh", "stale", "fresh"]


def test_a_feed_that_dies_leaves_the_market_stale(system, db_path):
    class Dying(PushFeed):
        def run(self, emit):
            emit(Tick(P, 1000))
            raise ConnectionError("exchange gone")

    ctx, ref, seen = spawn(system, db_path, Dying(expected_interval_ms=100),
                           tick_interval_ms=100)
    wait_until(lambda: ctx.status.is_open, what="first tick")
    wait_until(lambda: ctx.status.holds("stale_price"), what="stale")
    assert ref.alive


def test_a_stale_market_rejects_taps_and_reopens(system, db_path):
    cfg = Config(db=db_path, tick_interval_ms=100, column_ms=1000, lock_ms=300,
                 horizon_ms=5000)
    feed = SimFeed(seed=11, interval_ms=100)
    changes = []
    market = start_market(system, cfg, feed=feed)
    market.status.subscribe(lambda st: changes.append(st.as_dict()))
    alice = market.create_user("alice", 100_000)
    assert market.wait_ready(10)
    got = []
    market.watchdog.ask(("subscribe", got.append))
    wait_until(lambda: ticks_in(got), what="a tick to a new subscriber")
    col = max(market.grid.columns)
    lo = market.grid.price // 1000 * 1000 + 2000
    assert market.tap(alice, col, lo, 100).get(5).reason is None
    feed.pause()
    wait_until(lambda: not market.status.is_open, what="suspension")
    assert market.health() == (False, "stale_price")
    assert changes[-1] == {"status": "suspended", "reason": "stale_price"}
    assert health_in(got)[-1].state == "stale"
    assert market.tap(alice, col, lo, 100).get(5).reason == "market_suspended"
    # a tap already routed to its Column is refused there too
    tap = Tap(alice, col, lo, 100, 101, market.ctx.now(), "direct01", bytes(64))
    assert market.ctx.columns[col].ask(tap).reason == "market_suspended"
    feed.resume()
    wait_until(lambda: market.status.is_open, what="reopening")
    assert changes[-1] == {"status": "open", "reason": None}
    assert market.tap(alice, col, lo, 100).get(5).reason is None
    assert market.balance(alice) == 100_000 - 200

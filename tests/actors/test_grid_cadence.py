"""The whole grid at most every GRID_EVERY_MS in a served market
(actors/_market.py): the grid is display, a tap is priced from the newest
tick whatever the grid's age, a tick left unpriced is priced once due, and
a column that opens is in the grid at once. The clock is the test's."""
from actors._config import Config
from actors._context import MarketContext
from actors._market import MarketMaker
GRID_EVERY_MS = 150
from actors._runtime import start_market
from actors.feeds import Tick
from tests.actors.test_fresh_price import BAND, PRICE, START
from tests.actors.test_reprice import alone
from tests.actors.test_resolver import PushFeed
from tests.support import wait_until


class Clock:
    def __init__(self, ms):
        self.ms = ms

    def __call__(self):
        return self.ms / 1000


def test_a_served_market_prices_a_grid_at_most_every_grid_every_ms(system, db_path):
    clock = Clock(START)
    feed = PushFeed(PRICE, interval_ms=None, expected_interval_ms=1000)
    market = start_market(system, Config(db=db_path), feed=feed, clock=clock)
    maker = market.units[0].maker
    ctx = market.ctx
    feed.push(PRICE, START - 10)
    assert market.wait_ready(10)
    alice = market.create_user("alice", 100_000)
    first = ctx.grid
    clock.ms += GRID_EVERY_MS // 2                 # the next tick comes before a grid is due
    feed.push(PRICE + 3 * BAND, clock.ms - 5)
    wait_until(lambda: ctx.latest.tick.price == PRICE + 3 * BAND, what="the tick published")
    maker.ask("columns", timeout=5)                 # the maker has had the tick...
    maker.tell("roll")                              # ...and its timer
    maker.ask("columns", timeout=5)
    assert ctx.grid is first                       # no grid for it yet
    # a tap is priced from the newest tick all the same, exactly as alone
    col = min(c for c in first.columns if clock.ms < c - 3500)
    lo = PRICE // BAND * BAND + 4 * BAND
    want = alone(ctx.cfg, ctx.latest.tick, clock.ms, col, ctx.vol)[lo]
    assert want != first.columns[col][lo]
    ack = market.tap(alice, col, lo, 100, 101).get(5)
    assert ack.reason is None and ack.mult == want
    # once due, the roll timer prices the tick left behind
    clock.ms += GRID_EVERY_MS
    wait_until(lambda: ctx.grid.price == PRICE + 3 * BAND, what="the grid once due")
    assert ctx.grid.version == first.version + 1
    assert ctx.grid.columns[col][lo] == want


def test_a_column_that_opens_is_priced_at_once_whatever_the_cadence(system, db_path):
    cfg = Config(db=db_path)
    # 40 ms before the horizon reaches the next column's t0
    boundary = (START + cfg.horizon_ms) // cfg.column_ms * cfg.column_ms + cfg.column_ms
    clock = Clock(boundary - cfg.horizon_ms - 40)
    ctx = MarketContext(cfg, clock=clock)
    maker = system.spawn(MarketMaker, ctx, 10 * GRID_EVERY_MS, name="maker")
    tick = Tick(PRICE, clock.ms - 10)
    ctx.latest.tick = tick
    maker.tell(tick)
    wait_until(lambda: ctx.grid.price_ts == tick.ts, what="the first grid")
    assert boundary not in ctx.grid.columns
    clock.ms += 50                                  # the column opens, no new tick
    maker.tell("roll")
    assert boundary in maker.ask("columns", timeout=5)
    assert boundary in ctx.grid.columns and ctx.grid.columns[boundary]

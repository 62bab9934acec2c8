"""Taps priced from fresh prices (SPEC 7, issue 11): a tap's multiplier
comes from the asset's newest price, never from a grid the price has moved
away from, so a player with a faster feed cannot pick off a stale grid; the
age of the price behind every accepted multiplier is measured."""
from actors._config import Config
from actors._context import MarketContext
from actors._column import Column
from actors._market import price_grid
from actors._model import Tap
from actors._runtime import start_market
from actors.feeds import Tick
from actors.store._store import Store
from actors._writer import Writer
from actors._writes import EnsureUser
from tests.actors.test_resolver import PushFeed
from tests.support import wait_until

PRICE = 9_500_500
BAND = 1000
START = 1_800_000_000_000


class Rig:
    """A Column over a real Writer; the grid priced at PRICE, the clock still."""

    def __init__(self, system, db_path):
        cfg = Config(db=db_path)
        self.ms = START
        self.ctx = ctx = MarketContext(cfg, clock=lambda: self.ms / 1000)
        store = Store(db_path)
        ctx.ledger.load(*store.load_state())
        ctx.writer = system.spawn(Writer, ctx, store, name="writer")
        vol = ctx.vol
        ctx.grid = price_grid(cfg, PRICE, START - 100, vol.sigma, START, 1, vol.tick_ms,
                              vol.log_sd)
        self.t0 = sorted(ctx.grid.columns)[2]
        self.col = system.spawn(Column, ctx, self.t0, name="column")
        self.user = ctx.writer.ask(EnsureUser("alice", 1_000_000), timeout=5)
        self.n = 0

    def mult(self, lo):
        return self.ctx.grid.columns[self.t0][lo]

    def tap(self, lo, min_mult):
        self.n += 1
        return self.col.ask(Tap(self.user, self.t0, lo, 100, min_mult, self.ms,
                                f"fresh{self.n:05d}", bytes(64)), timeout=5)


def test_a_tap_priced_from_the_old_grid_is_refused_after_a_jump(system, db_path):
    rig = Rig(system, db_path)
    up = PRICE // BAND * BAND + 4 * BAND             # four bands above the price
    old = rig.mult(up)
    # the price jumps three bands up; the grid has not been repriced yet
    rig.ms += 20
    rig.ctx.latest.tick = Tick(PRICE + 3 * BAND, rig.ms - 10)
    ack = rig.tap(up, old)                            # what the stale grid showed
    assert ack.reason == "odds_changed"
    # at the new multiplier (what the fresh price gives) it is taken
    fresh = rig.tap(up, 101)
    assert fresh.reason is None and fresh.mult < old
    assert rig.ctx.price_ages.repriced == 1          # priced once for that tick


def test_a_cell_the_price_left_is_taken_at_the_new_higher_multiplier(system, db_path):
    rig = Rig(system, db_path)
    down = PRICE // BAND * BAND - 3 * BAND
    old = rig.mult(down)
    rig.ms += 20
    rig.ctx.latest.tick = Tick(PRICE + 2 * BAND, rig.ms - 5)   # moved away from it
    ack = rig.tap(down, old)
    assert ack.reason is None and ack.mult > old     # the server's current multiplier
    ages = rig.ctx.price_ages
    assert list(ages.recent) == [5]                  # the age of the tick behind it


def test_the_grid_is_used_while_it_is_the_newest_price(system, db_path):
    rig = Rig(system, db_path)
    lo = PRICE // BAND * BAND + 2 * BAND
    ack = rig.tap(lo, rig.mult(lo))
    assert ack.reason is None and ack.mult == rig.mult(lo)
    assert list(rig.ctx.price_ages.recent) == [100]   # the grid's price, 100 ms old
    # a newer tick at the same price confirms the grid: same multipliers, a younger price
    rig.ctx.latest.tick = Tick(PRICE, START - 30)
    ack = rig.tap(lo, rig.mult(lo))
    assert ack.mult == rig.mult(lo) and rig.ctx.price_ages.recent[-1] == 30
    assert rig.ctx.price_ages.repriced == 0


def test_live_market_refuses_the_stale_multiplier_after_a_jump(system, db_path):
    # the whole path: the Watchdog publishes the jump, and whether the
    # MarketMaker has repriced yet or the Column prices it, the stale
    # multiplier is refused
    feed = PushFeed(PRICE, interval_ms=50)
    market = start_market(system, Config(db=db_path, tick_interval_ms=100), feed=feed)
    assert market.wait_ready(10)
    alice = market.create_user("alice", 100_000)
    grid = market.grid
    now = market.ctx.now()
    col = min(c for c in grid.columns if now < c - 3500)
    up = PRICE // BAND * BAND + 4 * BAND
    old = grid.columns[col][up]
    feed.price = PRICE + 3 * BAND
    feed.push(feed.price)
    wait_until(lambda: market.ctx.latest.tick.price == feed.price, what="the jump published")
    assert market.tap(alice, col, up, 100, old).get(5).reason == "odds_changed"
    ack = market.tap(alice, col, up, 100, 101).get(5)
    assert ack.reason is None and ack.mult < old
    ages = market.ctx.price_ages
    assert ages.n == 1 and 0 <= ages.quantile(0.99) <= 250


def test_the_maker_reprices_on_every_tick(system, db_path):
    feed = PushFeed(PRICE, interval_ms=None, expected_interval_ms=1000)
    market = start_market(system, Config(db=db_path), feed=feed)
    feed.push(PRICE)
    assert market.wait_ready(10)
    for i in range(1, 4):
        feed.push(PRICE + i * 100)
        wait_until(lambda: market.grid.price == PRICE + i * 100, what=f"repriced for tick {i}")

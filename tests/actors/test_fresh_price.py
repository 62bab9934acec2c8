"""Taps priced from fresh prices (SPEC 7, issue 11): a tap's multiplier
comes from the asset's newest price, never from a grid the price has moved
away from, so a player with a faster feed cannot pick off a stale grid; the
age of the price behind every accepted multiplier is measured."""
from actors._config import Config
from actors._context import MarketContext
from actors._column import Column
from actors._market import MarketMaker, price_grid
from actors._model import Tap
from actors._runtime import start_market
from actors.feeds import SimFeed, Tick, make_sources
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

    def __init__(self, system, db_path, **cfg_kw):
        cfg = Config(db=db_path, **cfg_kw)
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
    assert rig.ctx.repricing.statistics().columns_priced == 1


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


def test_with_a_bound_a_grid_older_than_it_is_priced_from_the_newest_tick(system, db_path):
    rig = Rig(system, db_path, max_price_age_ms=250)
    lo = PRICE // BAND * BAND - 2 * BAND
    old = rig.mult(lo)
    rig.ms += 400                                     # the grid is 500 ms old now
    rig.ctx.latest.tick = Tick(PRICE + BAND, rig.ms - 20)   # but a tick came 20 ms ago
    ack = rig.tap(lo, 101)
    assert ack.reason is None and ack.mult > old     # the cell the price left pays more
    assert list(rig.ctx.price_ages.recent) == [20]
    assert rig.ctx.price_ages.too_old == 0


def test_with_a_bound_no_multiplier_comes_from_an_older_price(system, db_path):
    rig = Rig(system, db_path, max_price_age_ms=250)
    lo = PRICE // BAND * BAND + BAND
    rig.ms += 150                                     # the newest price is 250 ms old: on the bound
    assert rig.tap(lo, 101).reason is None
    rig.ms += 1                                       # 251 ms: no fresh price to judge by
    assert rig.tap(lo, 101).reason == "market_suspended"
    ages = rig.ctx.price_ages
    assert ages.too_old == 1 and list(ages.recent) == [250]
    rig.ctx.latest.tick = Tick(PRICE, rig.ms - 5)     # the feed speaks again: taken
    assert rig.tap(lo, 101).reason is None and ages.recent[-1] == 5


def test_without_a_bound_an_old_price_still_prices(system, db_path):
    rig = Rig(system, db_path)                        # the default: no bound
    rig.ms += 5000
    lo = PRICE // BAND * BAND + BAND
    assert rig.tap(lo, 101).reason is None
    assert rig.ctx.price_ages.recent[-1] == 5100


def test_the_sim_ticks_at_the_configured_interval():
    # the price behind a multiplier is at most one tick old (plus delivery):
    # the sim's tick sets the age, whatever the repricing does
    assert [f.interval_ms for f in make_sources(Config())] == [100]
    assert [f.interval_ms for f in make_sources(Config(sim_interval_ms=50, sources=["sim"] * 3))] \
        == [50, 50, 50]
    eth = make_sources(Config(sim_interval_ms=40), asset="ETH-USD")
    assert [type(f) for f in eth] == [SimFeed] and eth[0].interval_ms == 40


def test_ticks_queued_while_the_maker_prices_are_coalesced(system, db_path):
    cfg = Config(db=db_path)
    ctx = MarketContext(cfg, clock=lambda: START / 1000)
    maker = system.spawn(MarketMaker, ctx, name="maker")
    maker.ask("columns", timeout=5)                   # started, idle
    version = ctx.grid.version
    for i in range(5):                                # queued before the maker runs again
        maker.tell(Tick(PRICE + i * 100, START - 50 + i))
    wait_until(lambda: ctx.grid.price == PRICE + 400, what="the newest tick priced")
    assert ctx.grid.version == version + 1 and ctx.grid.price_ts == START - 46

"""One pricing per column per tick (actors/_reprice.py): the Columns and the
MarketMaker share the market's Repricer, so a column is priced once from a
(tick, volatility) state, whoever asks first, and the multipliers are the
ones each priced alone before."""
from actors._config import Config
from actors._context import MarketContext
from actors._market import MarketMaker, open_columns, price_grid
from actors._model import Tap
from actors._pricer import price_columns
from actors._reprice import PASS_COST, Repricer, column_cost, vol_state
from actors.feeds import Tick
from tests.actors.test_fresh_price import BAND, PRICE, START, Rig
from tests.support import wait_until

T0 = START + 20_000


def alone(cfg, tick, now, t0, vol):
    """The column as the Column priced it before the Repricer: one
    ``price_columns`` call of its own."""
    return price_columns(tick.price, tick.ts, now, [t0], cfg.column_ms, cfg.band_cents,
                         cfg.max_bands, vol.estimate, cfg.edge_bp, vol.tick_ms, vol.log_sd,
                         tick_sd_ms=vol.tick_sd_ms, sigma_floor=vol.floor,
                         window_vr=vol.horizon_ratio)[t0]


def feed_vol(vol, n=40, gap=100):
    """A volatility that has seen a clock-like feed (tick_sd_ms set)."""
    for i in range(n):
        vol.update(PRICE + (i % 3) * 700, START - (n - i) * gap + (i % 2))


def test_a_column_answers_with_the_multipliers_it_priced_alone(system, db_path):
    rig = Rig(system, db_path)
    feed_vol(rig.ctx.vol)
    rig.ms += 20
    tick = Tick(PRICE + 3 * BAND, rig.ms - 10)
    rig.ctx.latest.tick = tick
    want = alone(rig.ctx.cfg, tick, rig.ms, rig.t0, rig.ctx.vol)
    for lo in (PRICE // BAND * BAND + k * BAND for k in (-5, 0, 2, 6)):
        ack = rig.tap(lo, 101)
        assert ack.reason is None and ack.mult == want[lo]
    st = rig.ctx.repricing.statistics()
    assert (st.columns_priced, st.hits, st.states) == (1, 3, 1)   # priced once, then read


def test_a_grid_from_the_repricer_is_the_grid_priced_a_column_at_a_time():
    cfg = Config()
    args = (cfg, 9_500_000, START - 40, 1.07e-4, START, 1, 100.0, 0.05, 2.0)
    pauses = []
    r = Repricer()
    cached = price_grid(*args, sigma_floor=5e-5, cache=r, pause=lambda: pauses.append(1))
    assert cached.columns == price_grid(*args, sigma_floor=5e-5).columns   # SLICE_COLUMNS = 1
    t0s = list(open_columns(cfg, START))
    assert list(cached.columns) == t0s
    # several columns a pass, up to PASS_COST units; a pause after each
    # pass that more columns follow (the last pass may end before the last one)
    costs = [column_cost(t0, START - 40, cfg.column_ms) for t0 in t0s]
    assert 1 in costs and 2 in costs
    st = r.statistics()
    passes = len(t0s) - st.hits
    assert st.columns_priced == len(t0s)
    assert sum(costs) / PASS_COST <= passes < len(t0s)
    assert passes - 1 <= len(pauses) <= passes


def test_a_pass_prices_what_fits_along_the_column_asked():
    cfg = Config()
    r = Repricer()
    t0s = list(open_columns(cfg, START))
    ts = START - 40
    near = [t0 for t0 in t0s if column_cost(t0, ts, cfg.column_ms) == 1]
    # a column takes the next ones along with it, up to PASS_COST units
    ask = lambda t0: r.column(cfg, PRICE, ts, START, t0, 1e-4, 100.0, 0.05, 2.0, 5e-5, along=t0s)
    cells, priced = ask(near[1])
    first = set(next(iter(r._states.values())))
    cost = sum(column_cost(t0, ts, cfg.column_ms) for t0 in first)
    assert priced and near[1] in first and 1 < len(first) < len(t0s)
    assert cost <= PASS_COST < cost + min(column_cost(t0, ts, cfg.column_ms)
                                          for t0 in t0s if t0 not in first and t0 >= near[1])
    for t0 in first:
        assert not ask(t0)[1]
    # the rest in a further pass, each column its own price
    rest = [t0 for t0 in t0s if t0 not in first]
    before = r.statistics().columns_priced
    assert ask(rest[-1])[1]
    assert before < r.statistics().columns_priced <= before + PASS_COST
    vol = type("Vol", (), {"estimate": 1e-4, "tick_ms": 100.0, "log_sd": 0.05,
                           "tick_sd_ms": 2.0, "floor": 5e-5, "horizon_ratio": 1.0})
    for t0 in sorted(first) + rest[-1:]:
        got, priced = ask(t0)
        assert not priced and got == alone(cfg, Tick(PRICE, ts), START, t0, vol)


def test_every_column_is_priced_once_a_tick_between_the_columns_and_the_maker(system, db_path):
    cfg = Config(db=db_path)
    ctx = MarketContext(cfg, clock=lambda: START / 1000)
    feed_vol(ctx.vol)
    maker = system.spawn(MarketMaker, ctx, name="maker")
    t0s = maker.ask("columns", timeout=5)
    first = Tick(PRICE, START - 80)
    ctx.latest.tick = first
    maker.tell(first)
    wait_until(lambda: ctx.grid.price_ts == first.ts, what="the first grid")
    st = ctx.repricing.statistics()
    assert st.columns_priced == len(t0s) and st.states == 1
    for n, jump in enumerate((3, -2), 1):
        tick = Tick(PRICE + jump * BAND, START - 80 + 30 * n)
        ctx.vol.update(tick.price, tick.ts)              # what the Watchdog does, in order
        ctx.latest.tick = tick
        maker.tell(tick)                                 # the maker slices while taps come in
        acks = [ctx.columns[t0].ask_async(Tap(1, t0, PRICE // BAND * BAND, 100, 101,
                                              START, f"n{n}-{t0}", bytes(64)))
                for t0 in t0s for _ in range(2)]
        wait_until(lambda: ctx.grid.price_ts == tick.ts, what=f"the grid of tick {n}")
        # no such user: refused, but priced first
        assert {a.get(5).reason for a in acks} == {"insufficient_balance"}
        now = ctx.repricing.statistics()
        assert now.columns_priced - st.columns_priced == len(t0s)   # once each, not twice
        assert now.states - st.states == 1
        # the maker and the Columns read what the other priced
        assert now.hits - st.hits >= len(t0s)
        assert ctx.grid.columns == {t0: alone(cfg, tick, START, t0, ctx.vol) for t0 in t0s}
        st = now


def test_a_new_tick_or_a_new_volatility_prices_again():
    cfg = Config()
    r = Repricer()

    def ask(price=PRICE, ts=START - 50, sigma=1e-4, tick_ms=100.0, sd=0.05, tick_sd=2.0):
        return r.column(cfg, price, ts, START, T0, sigma, tick_ms, sd, tick_sd, 5e-5)

    base, priced = ask()
    assert priced and ask() == (base, False)
    assert ask(ts=START - 10)[1]                    # the same price, a newer tick
    assert ask(price=PRICE + BAND)[1]               # a new price
    assert ask(sigma=1.2e-4)[1] and ask(tick_ms=110.0)[1] and ask(sd=0.06)[1]
    assert ask(tick_sd=None)[1]                     # the gaps' spread changed what is known
    assert r.statistics().columns_priced == 7 and r.statistics().states == 7
    # another state's column differs, and is what price_columns gives for it
    other = ask(sigma=1.2e-4)[0]
    assert other != base
    assert other == price_columns(PRICE, START - 50, START, [T0], cfg.column_ms, cfg.band_cents,
                                  cfg.max_bands, 1.2e-4, cfg.edge_bp, 100.0, 0.05,
                                  tick_sd_ms=2.0, sigma_floor=5e-5)[T0]


def test_the_grids_tick_and_the_newest_are_both_kept():
    # the maker may still slice through tick A's grid while Columns price B
    cfg = Config()
    r = Repricer()
    a = (cfg, PRICE, START - 50, START, T0, 1e-4, 100.0, 0.05, 2.0)
    b = (cfg, PRICE + BAND, START - 10, START, T0, 1e-4, 100.0, 0.05, 2.0)
    c = (cfg, PRICE + 2 * BAND, START - 5, START, T0, 1e-4, 100.0, 0.05, 2.0)
    assert r.column(*a)[1] and r.column(*b)[1]
    assert not r.column(*a)[1] and not r.column(*b)[1]
    assert r.column(*c)[1] and r.column(*a)[1]      # a third state evicts the oldest


def test_a_column_of_a_vol_change_without_a_new_tick_is_priced_from_the_new_vol(system, db_path):
    rig = Rig(system, db_path)
    feed_vol(rig.ctx.vol)
    rig.ms += 20
    tick = Tick(PRICE - 2 * BAND, rig.ms - 10)
    rig.ctx.latest.tick = tick
    lo = PRICE // BAND * BAND + 3 * BAND
    before = rig.tap(lo, 101).mult
    rig.ctx.vol.floor *= 3                          # a higher floor: the far cell pays less
    after = rig.tap(lo, 101)
    assert after.reason is None and after.mult == alone(rig.ctx.cfg, tick, rig.ms, rig.t0,
                                                        rig.ctx.vol)[lo] < before
    assert rig.ctx.repricing.statistics().columns_priced == 2
    assert rig.ctx.price_ages.repriced == 1         # one newer tick than the grid


def test_a_started_column_is_priced_afresh_and_not_kept():
    cfg = Config()
    r = Repricer()
    t0 = START - 1000                               # started a second ago
    cells, priced = r.column(cfg, PRICE, START - 50, START, t0, 1e-4, 100.0)
    assert priced and r.column(cfg, PRICE, START - 50, START, t0, 1e-4, 100.0)[1]
    assert cells == price_columns(PRICE, START - 50, START, [t0], cfg.column_ms, cfg.band_cents,
                                  cfg.max_bands, 1e-4, cfg.edge_bp, 100.0)[t0]
    assert r.statistics().hits == 0


def test_vol_state_reads_what_the_column_prices_with():
    cfg = Config()
    ctx = MarketContext(cfg)
    feed_vol(ctx.vol)
    v = ctx.vol
    assert vol_state(v) == (v.estimate, v.tick_ms, v.log_sd, v.tick_sd_ms, v.floor,
                            v.horizon_ratio)
    # each market prices alone; the counts are the server's
    m = ctx.for_market(type("Spec", (), {"market_id": "m2", "asset": "BTC-USD"})(), cfg, 2,
                       False, ctx.sinks)
    assert m.repricing is not ctx.repricing and m.repricing.counts is ctx.repricing.counts


def test_the_counts_are_in_metrics(live_server):
    from tests.web.test_ops import scrape, value
    n = len(open_columns(Config(), 1_800_000_000_000))

    def priced():
        m = scrape(live_server.url)
        got = value(m, "tapgrid_columns_priced_total")
        return m if got is not None and got >= 3 * n else None
    m = wait_until(priced, timeout=15, what="three grids' columns priced")
    assert value(m, "tapgrid_column_price_hits_total") is not None

"""The vectorised pricer: the same closed form as the scalar one, and the
discrete-tick correction measured against simulated walks."""
import math
import random

import numpy as np
import pytest

from actors import Config, open_columns, price_grid
from actors._odds import Volatility, _bvn_upper, column_multipliers, touch_probability
from actors._pricer import (bvn_upper, erfc, multipliers, price_columns, touch_probabilities,
                            window_touch)
from actors._odds import multiplier

from .test_odds import BAND, MC_CELLS, PRICE, SIGMA, WINDOW, _mc_touch


def test_erfc_matches_math_erfc():
    xs = np.concatenate([np.linspace(-40, 40, 40001), [0.0, 1.5, -1.5, 2.0, 2.5, 4.0, 30.0]])
    got = erfc(xs)
    want = np.array([math.erfc(x) for x in xs])
    ok = want > 1e-300
    assert np.all(np.abs(got[ok] - want[ok]) <= 1e-13 * want[ok] + 1e-300)


def test_bivariate_normal_matches_the_scalar_genz():
    rng = random.Random(5)
    pts = [(rng.uniform(-6, 6), rng.uniform(-6, 6),
            rng.choice([rng.uniform(-0.9999, 0.9999), rng.uniform(-1, -0.92), rng.uniform(0.92, 1)]))
           for _ in range(5000)]
    h, k, r = (np.array(v) for v in zip(*pts))
    want = np.array([_bvn_upper(*p) for p in pts])
    assert np.max(np.abs(bvn_upper(h, k, r) - want)) < 1e-14


def test_continuous_probabilities_match_the_scalar_closed_form_and_monte_carlo():
    # With no discrete correction this is _odds.touch_probability, which
    # test_odds holds to a bridge-corrected Monte Carlo; check both links.
    rng = random.Random(20240611)
    for lo, wait in MC_CELLS:
        a, b = math.log(lo / PRICE), math.log((lo + BAND) / PRICE)
        p = float(touch_probabilities(a, b, SIGMA * math.sqrt(wait / 1000),
                                      SIGMA * math.sqrt(WINDOW / 1000))[()])
        assert p == pytest.approx(touch_probability(PRICE, lo, lo + BAND, wait, WINDOW, SIGMA),
                                  abs=1e-12)
        mc = _mc_touch(PRICE, lo, lo + BAND, wait, WINDOW, SIGMA, 20_000, 20, rng)
        assert abs(p - mc) <= 4.5 * math.sqrt(max(p * (1 - p), 1e-4) / 20_000) + 1e-6


@pytest.mark.parametrize("now,t0,sigma", [
    (0, 3_500, 1e-4), (0, 8_000, 5e-5), (0, 30_000, 3e-4), (0, 60_000, 1e-4),
    (10_000, 10_000, 1e-4), (12_000, 10_000, 1e-4), (0, 5_000, 1e-2),
])
def test_grid_without_corrections_is_the_scalar_column(now, t0, sigma):
    got = price_columns(PRICE, now, now, [t0], WINDOW, BAND, 50, sigma, wait_from=now)[t0]
    assert got == column_multipliers(PRICE, now, t0, WINDOW, BAND, 50, sigma)


def test_multipliers_match_the_scalar_rule():
    ps = [0.5, 0.95 / 1.9, 0.1, 0.0095, 0.0094999, 1.0, 0.99, 0.0, 0.3333333333333333, 1e-9]
    ps += [random.Random(3).random() ** 3 for _ in range(2000)]
    got = multipliers(np.array(ps))
    assert [int(m) or None for m in got] == [multiplier(p) for p in ps]


@pytest.mark.parametrize("steps", [5, 20])
def test_discrete_ticks_touch_as_a_random_walk_does(steps):
    # A band k bands above the price, window starting now (no wait): the
    # Resolver sees the path only at `steps` ticks. The corrected closed form
    # must match a Gaussian walk's touch rate; the continuous one must not.
    rng = np.random.default_rng(steps)
    tick_ms = WINDOW / steps
    n = 200_000
    x = np.cumsum(rng.standard_normal((n, steps)), axis=1) * SIGMA * math.sqrt(tick_ms / 1000)
    top = x.max(axis=1)
    for k in (1, 3, 5):
        lo = (PRICE // BAND + k) * BAND
        mc = float(np.mean(top >= math.log(lo / PRICE)))
        se = math.sqrt(mc * (1 - mc) / n)
        p = float(window_touch(PRICE, lo, lo + BAND, 0, WINDOW, SIGMA, tick_ms)[()])
        cont = touch_probability(PRICE, lo, lo + BAND, 0, WINDOW, SIGMA)
        assert abs(p - mc) < 4 * se + 0.01 * mc, (k, p, mc, se)
        assert cont - mc > 5 * se, (k, cont, mc)


def test_market_grid_prices_from_the_last_tick_and_the_tick_rate():
    cfg = Config()
    now = 1_750_000_000_000
    g = price_grid(cfg, PRICE, now - 200, SIGMA, now, 7, tick_ms=250)
    assert sorted(g.columns) == list(open_columns(cfg, now))
    assert (g.version, g.price, g.price_ts, g.computed_at) == (7, PRICE, now - 200, now)
    # Discrete ticks touch far bands less often: they pay more than the
    # continuous price would, and never less.
    cont = price_grid(cfg, PRICE, now, SIGMA, now, 7, tick_ms=0)
    for t0, cells in g.columns.items():
        for lo, m in cells.items():
            if lo in cont.columns[t0]:
                assert m >= cont.columns[t0][lo] - 2, (t0, lo)
    far = [(t0, lo) for t0, cells in cont.columns.items() for lo, m in cells.items()
           if 1000 <= m < 10000]
    assert sum(g.columns[t0][lo] > cont.columns[t0][lo] for t0, lo in far) > 0.9 * len(far)


def test_sigma_uncertainty_lowers_far_multipliers_only():
    plain = price_columns(PRICE, 0, 0, [20_000], WINDOW, BAND, 50, SIGMA, tick_ms=250)[20_000]
    aware = price_columns(PRICE, 0, 0, [20_000], WINDOW, BAND, 50, SIGMA, tick_ms=250,
                          sigma_sd=Volatility().log_sd)[20_000]
    assert plain.keys() == aware.keys()
    for lo, m in plain.items():
        if m < 300:
            assert abs(aware[lo] - m) <= 2
        elif 1500 <= m < 10000:
            assert aware[lo] < m


def test_volatility_tracks_the_tick_rate():
    v = Volatility(initial_tick_ms=1000)
    assert v.tick_ms == 1000
    for i in range(400):
        v.update(6_000_000 + (i % 3), i * 250)
    assert v.tick_ms == pytest.approx(250)
    v.update(6_000_000, 400 * 250 + 60_000)   # an outage counts as at most 5 s
    assert v.tick_ms < 250 + 0.02 * 5000 + 1e-9
    assert 0.04 < Volatility().log_sd < 0.07


def test_volatility_tells_a_clock_from_an_irregular_feed():
    rng = random.Random(9)
    clock, loose = Volatility(), Volatility()
    assert clock.tick_sd_ms is None
    t = 0
    for i in range(500):
        clock.update(6_000_000, i * 1000 + rng.choice((0, 1)))     # 1 ms of jitter
        t += rng.uniform(40, 640)                                 # sample_ticks-like gaps
        loose.update(6_000_000, int(t))
    assert clock.tick_sd_ms < 2
    assert 100 < loose.tick_sd_ms < 250      # uniform on [40, 640]: s.d. 173


def test_a_clock_is_priced_at_its_phase():
    # 1 s ticks on a clock. With the last tick 950 or 50 ms before now, the
    # next column's prevailing tick is 5 whole steps after it either way
    # (950 or 50 ms before t0): the same walk, the same prices. The mean
    # phase prices a wait 900 ms apart; a last tick 1050 ms back is 6 steps.
    now = 1_750_000_000_000
    t0 = now + 5_000

    def grid(back, **kw):
        return price_columns(PRICE, now - back, now, [t0], WINDOW, BAND, 50, SIGMA,
                             tick_ms=1000, **kw)[t0]

    assert grid(950, tick_sd_ms=0.0) == grid(50, tick_sd_ms=0.0)
    assert grid(950) != grid(50)
    assert grid(1050, tick_sd_ms=0.0) != grid(950, tick_sd_ms=0.0)
    # a loose clock (gaps spread 300 ms) is priced as the mean phase of an
    # irregular feed: the renewal age, dt (1 + cv^2) / 2
    assert grid(950, tick_sd_ms=300.0) != grid(950, tick_sd_ms=0.0)


def test_the_floor_bounds_the_true_sigma_not_its_estimate():
    now, t0s = 1_000_000, [1_005_000, 1_030_000]
    args = (9_500_000, now - 40, now, t0s, 5000, 1000, 20)

    def grid(sigma, floor, sd=0.05):
        return price_columns(*args, sigma, 500, 100.0, sd, tick_sd_ms=2.0, sigma_floor=floor)

    # a floor under every node of the estimate's error changes nothing
    assert grid(1.0e-4, 0.8e-4) == grid(1.0e-4, 0.0)
    # a floor over every node prices the floor, with no error left
    assert grid(0.5e-4, 0.8e-4) == grid(0.8e-4, 0.0, sd=0.0)
    # one in between lifts only the low nodes: far cells pay less than at
    # the bare estimate, more than with the estimate clipped to the floor
    far = 9_500_000 + 12 * 1000
    mid, bare, clipped = (grid(0.97e-4, 1.0e-4)[t0s[1]][far], grid(0.97e-4, 0.0)[t0s[1]][far],
                          grid(1.0e-4, 0.0)[t0s[1]][far])
    assert clipped < mid < bare


@pytest.mark.parametrize("tick_ms,tick_sd_ms", [(100.0, 2.0), (100.0, None), (250.0, 90.0),
                                                (0.0, None)])
def test_a_column_not_started_is_priced_the_same_whatever_the_time_now(tick_ms, tick_sd_ms):
    # The window starts at t0 and the landing variance runs from the tick to
    # t0, so until t0 the time of pricing does not enter the price: one
    # pricing a tick serves every tap of it (actors/_reprice.py).
    cfg = Config()
    ts = 1_750_000_000_000
    t0s = [ts + 10_000, ts + 45_000]
    prices = [price_columns(9_500_000, ts, now, t0s, cfg.column_ms, cfg.band_cents,
                            cfg.max_bands, 1.07e-4, cfg.edge_bp, tick_ms, 0.05,
                            tick_sd_ms=tick_sd_ms, sigma_floor=5e-5)
              for now in (ts, ts + 40, ts + 3_000, ts + 10_000)]
    assert all(p == prices[0] for p in prices[1:]) and all(prices[0][t0] for t0 in t0s)
    # once started, it is: the window left is shorter
    later = price_columns(9_500_000, ts, ts + 12_000, t0s[:1], cfg.column_ms, cfg.band_cents,
                          cfg.max_bands, 1.07e-4, cfg.edge_bp, tick_ms, 0.05,
                          tick_sd_ms=tick_sd_ms, sigma_floor=5e-5)
    assert later[t0s[0]] != prices[0][t0s[0]]

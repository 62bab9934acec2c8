"""Odds: closed form vs Monte Carlo, edge cases, multiplier rounding, sigma."""
import math
import random

import pytest

from actors._odds import (Volatility, _bvn_upper, _phi, _touch,
                          column_multipliers, multiplier, touch_probability)

PRICE = 6_000_500  # $60,005.00, inside the [6_000_000, 6_001_000) band
BAND = 1_000
SIGMA = 1e-4
WINDOW = 5_000


def _mc_touch(price, lo, hi, wait_ms, window_ms, sigma, paths, steps, rng):
    """Monte Carlo touch probability with a Brownian-bridge correction.

    X at the window start is drawn exactly (N(0, sigma^2 T1)); the window is
    walked in `steps` Gaussian steps. Between two grid points both on the
    same side of the band, the continuous path still crosses the near edge
    with the bridge probability exp(-2 d0 d1 / var), so instead of sampling
    that crossing we average the conditional touch probability
    1 - prod(1 - q). This is exact for Brownian motion at any step size
    (no discrete-max undercount), and its variance is at most the Bernoulli
    one, p(1 - p)/paths.
    """
    a, b = math.log(lo / price), math.log(hi / price)
    s1 = sigma * math.sqrt(wait_ms / 1000)
    var = sigma * sigma * window_ms / 1000 / steps
    sd = math.sqrt(var)
    total = 0.0
    gauss, exp = rng.gauss, math.exp
    for _ in range(paths):
        x = s1 * gauss(0.0, 1.0) if s1 else 0.0
        if a <= x < b:
            total += 1.0
            continue
        survive = 1.0
        for _ in range(steps):
            y = x + sd * gauss(0.0, 1.0)
            if x < a:  # below the band (x is never inside it here)
                if y >= a:  # reached or jumped across it
                    survive = 0.0
                    break
                survive *= 1.0 - exp(-2.0 * (a - x) * (a - y) / var)
            else:
                if y < b:
                    survive = 0.0
                    break
                survive *= 1.0 - exp(-2.0 * (x - b) * (y - b) / var)
            x = y
        total += 1.0 - survive
    return total / paths


# (lo, wait_ms): straddling, near above/below, farther, wait 0 and wait > 0;
# 60 s wait exercises the |rho| > 0.925 branch of the bivariate normal.
MC_CELLS = [
    (6_000_000, 5_000),    # straddling the price, starts in 5 s
    (6_001_000, 0),        # next band up, window starting now
    (5_999_000, 0),        # next band down, window starting now
    (6_001_000, 5_000),    # next band up, later
    (6_003_000, 20_000),   # three bands up, 20 s out
    (5_998_000, 60_000),   # two bands down, at the horizon
    (6_000_000, 60_000),   # straddling, at the horizon
]


def test_closed_form_matches_monte_carlo():
    # Tolerance: the bridge-corrected estimator has no discretisation bias,
    # so only sampling error remains; its std error is at most
    # sqrt(p(1-p)/N). 4.5 of those (two-sided ~7e-6 per cell) plus 1e-6 for
    # the closed form's own error. The seed is fixed, so this is also
    # deterministic; a wrong formula (e.g. reflection without the factor 2,
    # or a mis-signed correlation) misses by many times this.
    rng = random.Random(20240611)
    paths = 40_000
    for lo, wait in MC_CELLS:
        p = touch_probability(PRICE, lo, lo + BAND, wait, WINDOW, SIGMA)
        mc = _mc_touch(PRICE, lo, lo + BAND, wait, WINDOW, SIGMA, paths, 20,
                       rng)
        tol = 4.5 * math.sqrt(max(p * (1 - p), 1e-4) / paths) + 1e-6
        assert abs(p - mc) <= tol, (lo, wait, p, mc, tol)


def test_discrete_max_without_bridge_undercounts():
    # Why the bridge correction is needed: sampling only grid points misses
    # touches between them, by far more than the MC noise at this step.
    rng = random.Random(7)
    a = math.log(6_001_000 / PRICE)
    sd = SIGMA * math.sqrt(WINDOW / 1000 / 20)
    hits = 0
    n = 8_000
    for _ in range(n):
        x = 0.0
        for _ in range(20):
            x += sd * rng.gauss(0.0, 1.0)
            if x >= a:
                hits += 1
                break
    p = touch_probability(PRICE, 6_001_000, 6_002_000, 0, WINDOW, SIGMA)
    assert hits / n < p - 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("h,k,r", [
    (0.0, 0.0, 0.5), (0.3, -0.2, -0.96), (-1.0, 1.0, -0.99),
    (1.2, 0.7, -0.5), (-0.5, 2.0, 0.95), (2.0, -2.0, -0.2),
    (0.1, 0.1, -0.93), (-2.0, -1.0, 0.8), (1.5, -1.4, -0.999),
    (0.0, 0.0, 0.0),
])
def test_bivariate_normal_against_quadrature(h, k, r):
    # P(U>h, V>k) = integral over u>h of phi(u) P(V>k | u), by Simpson.
    n, top = 20_000, max(h, 0.0) + 12.0
    sq = math.sqrt(1 - r * r)

    def f(u):
        return math.exp(-u * u / 2) / math.sqrt(2 * math.pi) * \
            _phi(-(k - r * u) / sq)
    dx = (top - h) / n
    s = f(h) + f(top) + sum((4 if i % 2 else 2) * f(h + i * dx)
                            for i in range(1, n))
    assert _bvn_upper(h, k, r) == pytest.approx(s * dx / 3, abs=1e-9)


def test_wait_zero_is_plain_reflection_and_continuous():
    s2 = SIGMA * math.sqrt(WINDOW / 1000)
    a = math.log(6_002_000 / PRICE)
    b = math.log(5_999_000 / PRICE)
    up = touch_probability(PRICE, 6_002_000, 6_003_000, 0, WINDOW, SIGMA)
    down = touch_probability(PRICE, 5_998_000, 5_999_000, 0, WINDOW, SIGMA)
    assert up == pytest.approx(2 * _phi(-a / s2), abs=1e-15)
    assert down == pytest.approx(2 * _phi(b / s2), abs=1e-15)
    # The bivariate form must meet it as the wait shrinks to 1 ms.
    assert touch_probability(PRICE, 6_002_000, 6_003_000, 1, WINDOW,
                             SIGMA) == pytest.approx(up, abs=2e-3)


def test_zero_window_is_landing_probability():
    s1 = SIGMA * math.sqrt(10)
    p = touch_probability(PRICE, 6_001_000, 6_002_000, 10_000, 0, SIGMA)
    expect = _phi(math.log(6_002_000 / PRICE) / s1) - \
        _phi(math.log(6_001_000 / PRICE) / s1)
    assert p == pytest.approx(expect, abs=1e-12)


def test_inside_band_now_is_certain_and_not_offered():
    assert touch_probability(PRICE, 6_000_000, 6_001_000, 0, WINDOW,
                             SIGMA) == 1.0
    assert multiplier(1.0) is None  # 0.95 / 1 < 1.01
    col = column_multipliers(PRICE, 10_000, 10_000, WINDOW, BAND, 50, SIGMA)
    assert 6_000_000 not in col and 6_001_000 in col


def test_far_bands_are_capped():
    for lo in (6_020_000, 5_980_000):
        for wait in (0, 3_000, 60_000):
            p = touch_probability(PRICE, lo, lo + BAND, wait, WINDOW, SIGMA)
            assert p < 0.0095
            assert multiplier(p) == 10000


def test_symmetry_in_log_space():
    s1, s2 = SIGMA * math.sqrt(7), SIGMA * math.sqrt(5)
    for a, b in ((1e-4, 3e-4), (-2e-4, 5e-5), (8e-4, 9e-4)):
        for w in (0.0, s1):
            assert _touch(a, b, w, s2) == pytest.approx(
                _touch(-b, -a, w, s2), abs=1e-12)
    # In cents the bands are not exactly mirrored in log space: close only.
    center = 6_000_000
    for k in (1, 2, 4):
        for wait in (0, 10_000):
            up = touch_probability(center, center + k * BAND,
                                   center + (k + 1) * BAND, wait, WINDOW,
                                   SIGMA)
            down = touch_probability(center, center - (k + 1) * BAND,
                                     center - k * BAND, wait, WINDOW, SIGMA)
            assert up == pytest.approx(down, rel=0.02)


def test_monotone_in_distance_and_sigma():
    for wait in (0, 3_000, 60_000):
        for step in (1, -1):
            ps = [touch_probability(PRICE, 6_000_000 + step * k * BAND,
                                    6_000_000 + step * k * BAND + BAND,
                                    wait, WINDOW, SIGMA) for k in range(1, 15)]
            assert all(x > y for x, y in zip(ps, ps[1:])), (wait, step, ps)
    for lo, wait in ((6_002_000, 0), (5_997_000, 0), (6_004_000, 30_000)):
        ps = [touch_probability(PRICE, lo, lo + BAND, wait, WINDOW, s)
              for s in (5e-5, 8e-5, 1e-4, 2e-4, 4e-4)]
        assert all(x < y for x, y in zip(ps, ps[1:])), (lo, ps)


@pytest.mark.parametrize("p,edge_bp,expect", [
    (0.5, 500, 190),        # 0.95/0.5 in floats is 1.8999999999999999
    (0.25, 500, 380),
    (0.125, 500, 760),
    (0.5, 0, 200),
    (0.95 / 1.01, 500, 101),  # exactly 1.01x: offered, not dropped
    (0.941, 500, None),     # 1.0095x
    (0.94, 500, 101),       # 1.0106x
    (0.9, 500, 105),        # 1.0555x
    (0.3, 500, 316),        # 3.1666x floors, never rounds up
    (0.0095, 500, 10000),   # exactly at the cap
    (0.00951, 500, 9989),   # 99.8948x
    (0.001, 500, 10000),    # capped
    (0.0, 500, 10000),      # never touched: the cap is safe for the house
    (1.0, 500, None),
    (float("nan"), 500, None),
])
def test_multiplier_floors_exactly(p, edge_bp, expect):
    assert multiplier(p, edge_bp) == expect


def test_multiplier_limits_are_parameters():
    assert multiplier(0.5, min_mult=191) is None
    assert multiplier(0.5, min_mult=190) == 190
    assert multiplier(0.001, max_mult=5000) == 5000


def _simulated_ticks(seed, sigma, seconds, mean_gap_s):
    rng = random.Random(seed)
    t, x = 0.0, math.log(6e6)
    while t < seconds:
        yield round(math.exp(x)), int(t * 1000)
        gap = rng.expovariate(1 / mean_gap_s)
        t += gap
        x += sigma * math.sqrt(gap) * rng.gauss(0.0, 1.0)


@pytest.mark.parametrize("mean_gap_s", [0.25, 2.5])
def test_volatility_converges_to_known_sigma(mean_gap_s):
    # A 600 s half-life over an hour gives ~1700 effective 1 s samples at
    # dense ticks (std error of sigma ~2%) and ~700 at 2.5 s gaps (~4%,
    # which also checks the per-gap scaling); 15% is > 3.5 std errors.
    true = 1.7e-4
    v = Volatility(half_life_s=600.0, initial=1e-4)
    for price, ts in _simulated_ticks(11, true, 3_600, mean_gap_s):
        v.update(price, ts)
    assert v.sigma == pytest.approx(true, rel=0.15)


def test_volatility_initial_and_floor():
    v = Volatility(half_life_s=10.0, floor=5e-5, initial=1e-4)
    assert v.sigma == 1e-4
    for s in range(300):  # a dead-flat feed
        v.update(6_000_000, s * 1000)
    assert v.sigma == 5e-5
    assert Volatility().sigma == pytest.approx(1e-4)
    assert Volatility().floor == pytest.approx(5e-5)


def test_volatility_ignores_late_and_bad_ticks():
    v = Volatility(half_life_s=10.0, initial=1e-4)
    v.update(6_000_000, 5_000)
    v.update(9_000_000, 1_000)  # older than what we have
    v.update(0, 6_000)
    v.update(6_000_000, 7_000)
    v.update(6_000_000, 8_000)
    assert v.sigma < 1e-4  # only flat returns were counted


def test_volatility_tracks_a_regime_change():
    v = Volatility(half_life_s=30.0)
    ticks = list(_simulated_ticks(3, 1e-4, 600, 0.2))
    for price, ts in ticks:
        v.update(price, ts)
    calm = v.sigma
    last_ts = ticks[-1][1]
    for price, ts in _simulated_ticks(4, 4e-4, 300, 0.2):
        v.update(price, last_ts + 1 + ts)
    assert v.sigma > 2.5 * calm


@pytest.mark.parametrize("now,t0", [(0, 5_000), (0, 3_000), (0, 60_000),
                                    (1_000, 0), (0, 0)])
def test_column_multipliers_shape_and_exactness(now, t0):
    col = column_multipliers(PRICE, now, t0, WINDOW, BAND, 50, SIGMA)
    base = PRICE // BAND * BAND
    assert col
    for lo, m in col.items():
        assert lo % BAND == 0
        assert abs(lo - base) <= 50 * BAND
        assert 101 <= m <= 10000
    # The early-capping shortcut must not change a single offer.
    start = max(now, t0)
    brute = {}
    for k in range(-50, 51):
        lo = base + k * BAND
        m = multiplier(touch_probability(PRICE, lo, lo + BAND, start - now,
                                         t0 + WINDOW - start, SIGMA))
        if m is not None:
            brute[lo] = m
    assert col == brute


def test_column_multipliers_bounds():
    assert column_multipliers(PRICE, 10_000, 5_000, WINDOW, BAND, 50,
                              SIGMA) == {}  # window over
    col = column_multipliers(PRICE, 0, 5_000, WINDOW, BAND, 3, SIGMA)
    assert sorted(col) == [5_997_000 + i * BAND for i in range(7)]
    low = column_multipliers(2_500, 0, 5_000, WINDOW, BAND, 5, 1e-2)
    assert min(low) == 0 and all(lo >= 0 for lo in low)
    with pytest.raises(ValueError):
        touch_probability(PRICE, 6_001_000, 6_000_000, 0, WINDOW, SIGMA)

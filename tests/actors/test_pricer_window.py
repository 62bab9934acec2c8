"""The window priced with the variance ratio (``price_columns(window_vr=)``,
stop 26): a ratio of 1 prices bit for bit as before the hook, and a ratio
above 1 widens the window's path only.

The digest below is of base's multipliers (``bec7ee6``, before the hook)
over the same states; multipliers are floors of 9,500 / (100 p), so a
last-bit change of a probability can move one: the comparison is exact.
"""
import hashlib
import random

from actors._config import Config
from actors._market import price_grid
from actors._pricer import price_columns
from actors._reprice import Repricer

BASE_DIGEST = "f8f26e49c358893046118ef4b120f7b1e093dff9c24160161721387529774657"


def _states(n=240, seed=26):
    """Random pricing states: column lengths 1-60 s, bands 1 cent - $2,500,
    0-39 bands, clock / renewal / unknown feeds, floors, started columns,
    ``wait_from``."""
    rng = random.Random(seed)
    for _ in range(n):
        col = rng.choice([1000, 5000, 10000, 30000, 60000])
        now = 1_750_000_000_000 + rng.randrange(0, 10**6)
        started = rng.random() < 0.2
        first = (now // col + (0 if started else rng.randrange(1, 4))) * col
        t0s = [first + col * i for i in range(rng.randrange(1, 6))]
        band = rng.choice([1, 100, 1000, 5000, 250000])
        bands = rng.randrange(0, 40)
        sigma = rng.choice([1e-6, 3e-5, 1e-4, 4e-4, 1e-2])
        tick = rng.choice([0.0, 100.0, 250.0, 262.0, 1000.0, 2000.0])
        tick_sd = rng.choice([None, 0.0, 2.0, 160.0, 600.0])
        floor = rng.choice([0.0, 0.0, 5e-5, 1.1e-4])
        sd = rng.choice([0.0, 0.02, 0.054, 0.2])
        price = rng.randrange(1_000_000, 12_000_000)
        wait_from = None if rng.random() < 0.8 else now - rng.randrange(0, 3000)
        yield (price, now - rng.randrange(0, 900), now, t0s, col, band, bands, sigma, 500,
               tick, sd), dict(tick_sd_ms=tick_sd, sigma_floor=floor, wait_from=wait_from)


def _digest(**extra):
    h = hashlib.sha256()
    for args, kw in _states():
        out = price_columns(*args, **dict(kw, **extra))
        h.update(repr(sorted((t0, sorted(c.items())) for t0, c in out.items())).encode())
    return h.hexdigest()


def test_a_ratio_of_one_prices_bit_for_bit_as_before_the_hook():
    assert _digest() == BASE_DIGEST
    assert _digest(window_vr=1.0) == BASE_DIGEST
    # the digest can tell: a ratio 1 + 1e-5 moves some multiplier
    assert _digest(window_vr=1.0 + 1e-5) != BASE_DIGEST


def test_a_ratio_of_one_through_the_grid_and_the_repricer():
    cfg = Config()
    now = 1_750_000_001_234
    args = (cfg, 9_500_300, now - 40, 1.07e-4, now, 1, 100.0, 0.054, 2.0)
    plain = price_grid(*args, sigma_floor=5e-5).columns
    assert price_grid(*args, sigma_floor=5e-5, window_vr=1.0).columns == plain
    assert price_grid(*args, sigma_floor=5e-5, cache=Repricer(), window_vr=1.0).columns == plain
    # the ratio is part of the Repricer's state: another ratio is another price
    r = Repricer()
    wider = price_grid(*args, sigma_floor=5e-5, cache=r, window_vr=1.05).columns
    assert wider != plain and r.statistics().states == 1


def test_a_ratio_above_one_widens_the_window_only():
    # s2 = sigma sqrt(VR window), s1 = sigma sqrt(wait) unchanged: every
    # cell is touched at least as often, so no multiplier rises, and some
    # fall in a column about to start as in one 40 windows out.
    col = 5000
    now = 1_750_000_001_234
    first = (now // col + 1) * col
    near, far = first, first + 40 * col
    kw = dict(tick_sd_ms=2.0, sigma_floor=5e-5)
    one = price_columns(9_500_300, now - 40, now, [near, far], col, 1000, 30, 1e-4, 500,
                        100.0, 0.054, **kw)
    vr = price_columns(9_500_300, now - 40, now, [near, far], col, 1000, 30, 1e-4, 500,
                       100.0, 0.054, window_vr=1.1, **kw)
    for t0 in (near, far):
        assert all(vr[t0].get(lo, 0) <= m for lo, m in one[t0].items())
        assert sum(vr[t0].get(lo, 0) < m for lo, m in one[t0].items()) >= 10

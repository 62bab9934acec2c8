"""The online sigma: unbiased on a clean walk, blind to bid/ask bounce, quick to follow a
change of regime, and honest about its own error (``log_sd``)."""
import math
import random

import pytest

from actors import Volatility

PRICE = 6_000_000


def _walk(rng, sigma, seconds, gap_s, t0=0.0, x0=math.log(PRICE), noise=0.0):
    """(price, ts) of a Gaussian walk ticking every ``gap_s`` plus iid
    observation noise of s.d. ``noise`` in log price (bounce)."""
    t, x = t0, x0
    out = []
    while t < t0 + seconds:
        out.append((round(math.exp(x + rng.gauss(0.0, noise))), int(t * 1000)))
        t += gap_s
        x += sigma * math.sqrt(gap_s) * rng.gauss(0.0, 1.0)
    return out, x


def _feed(v, ticks):
    for price, ts in ticks:
        v.update(price, ts)


def test_a_price_flipping_between_two_levels_has_no_sigma():
    # Every quarter second the bid or the ask at random, $5 apart, for an
    # hour: the tick returns alone say 1.2e-4 per sqrt(s) (more than BTC's
    # ~1e-4), the 1 s grid the old estimator used ~0.6e-4 (over the floor);
    # the price goes nowhere.
    rng = random.Random(5)
    v = Volatility(half_life_s=600.0)
    naive = 0.0
    prev = None
    for i in range(4 * 3600):
        price = PRICE + rng.choice((0, 500))
        v.update(price, i * 250)
        if prev is not None:
            naive += math.log(price / prev) ** 2
        prev = price
    naive = math.sqrt(naive / 3600)
    assert naive > 1.1e-4
    # What is left is the kernel's own noise (about a tenth of the bounce's
    # variance over this half-life, the square root of it as a sigma).
    assert v.estimate ** 2 < 0.1 * naive ** 2
    assert v.estimate < v.floor and v.sigma == v.floor
    # With the default (60 s) half-life the estimate is noisier but centred
    # on zero (only its clipping at 0 leaves a few % of the bounce's
    # variance; the 1 s grid kept a quarter of it).
    v = Volatility()
    seen = []
    for i in range(4 * 3600):
        v.update(PRICE + rng.choice((0, 500)), i * 250)
        if i > 4 * 600:
            seen.append(v.estimate ** 2)
    assert sum(seen) / len(seen) < 0.05 * naive ** 2


def test_bounce_on_a_walk_is_taken_out():
    # A 60 %/yr walk at 100 ms ticks seen through 0.42 bp of noise (2 w^2
    # three times the walk's own variance per tick): plain tick variance
    # says sigma x 2, 1 s returns x 1.15; the estimate stays within its
    # error of the walk's.
    rng = random.Random(8)
    true = 1.07e-4
    ticks, _ = _walk(rng, true, 3600, 0.1, noise=4.2e-5)
    v = Volatility(half_life_s=600.0)
    _feed(v, ticks)
    rv = sum(math.log(b[0] / a[0]) ** 2 for a, b in zip(ticks, ticks[1:])) / 3600
    assert math.sqrt(rv) > 1.8 * true
    assert v.estimate == pytest.approx(true, rel=max(0.05, 3 * v.log_sd))
    assert v.log_sd < 0.05       # the noise widens the error, says so, and no more


@pytest.mark.parametrize("gap_s", [0.1, 1.0])
def test_a_step_in_volatility_is_followed_within_five_half_lives(gap_s):
    rng = random.Random(13)
    v = Volatility()
    calm, x = _walk(rng, 1e-4, 900, gap_s)
    _feed(v, calm)
    assert v.estimate == pytest.approx(1e-4, rel=0.15)
    # Doubled: after 5 half-lives (300 s) the old regime weighs 3 % of the variance.
    wild, x = _walk(rng, 2e-4, 300, gap_s, t0=900.0, x0=x)
    _feed(v, wild)
    assert v.estimate == pytest.approx(2e-4, rel=0.15)
    # And back down as fast.
    quiet, _ = _walk(rng, 1e-4, 300, gap_s, t0=1200.0, x0=x)
    _feed(v, quiet)
    assert v.estimate == pytest.approx(1e-4, rel=0.2)


@pytest.mark.parametrize("gap_s", [0.1, 1.0])
def test_log_sd_is_the_estimates_real_error(gap_s):
    # Over many independent walks the spread of log(estimate) is what
    # log_sd says: the pricer widens far cells' prices by exactly it. The
    # kernel at 100 ms ticks has ~3x the samples of 1 s returns for one
    # sample's extra variance: about half the old 0.054 error.
    rng = random.Random(21)
    logs, sds = [], []
    for _ in range(150):
        v = Volatility()
        ticks, _ = _walk(rng, 1e-4, 400, gap_s)
        _feed(v, ticks)
        logs.append(math.log(v.estimate))
        sds.append(v.log_sd)
    mean = sum(logs) / len(logs)
    spread = math.sqrt(sum((y - mean) ** 2 for y in logs) / (len(logs) - 1))
    said = sum(sds) / len(sds)
    # 150 walks pin the spread to ~6 %.
    assert spread == pytest.approx(said, rel=0.2)
    assert mean == pytest.approx(math.log(1e-4), abs=3 * said / math.sqrt(len(logs)) + said ** 2)
    if gap_s < 1:
        assert said < 0.035

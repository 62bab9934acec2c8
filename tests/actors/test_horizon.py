"""The variance ratio at a few seconds: 1 for independent moves on any clock, the
known ratio for dependent ones, blind to bid/ask bounce, and beside sigma, not in it."""
import math
import random

import pytest

from actors import Volatility
from actors._horizon import HorizonRatio

PRICE = 6_000_000


def _gaps(rng, n, mean_ms, cv):
    """Gamma gaps (cv 0: a clock), at least 1 ms."""
    if cv == 0:
        return [mean_ms] * n
    k = 1.0 / (cv * cv)
    return [max(1, round(rng.gammavariate(k, mean_ms / k))) for _ in range(n)]


def _feed(h, rng, n, mean_ms, cv, sigma, rho=0.0, noise=0.0):
    """Log prices of AR(1) tick returns (rho, innovations of sigma over each
    gap) plus iid observation noise of s.d. ``noise`` into ``h``."""
    t, x, prev = 0, 0.0, 0.0
    for g in _gaps(rng, n, mean_ms, cv):
        t += g
        prev = rho * prev + sigma * math.sqrt(g / 1000.0) * rng.gauss(0.0, 1.0)
        x += prev
        h.update(x + rng.gauss(0.0, noise) if noise else x, t)


@pytest.mark.parametrize("mean_ms,cv", [(100, 0.03), (262, 0.62), (1000, 0.0)])
def test_independent_moves_have_a_ratio_of_one_on_any_clock(mean_ms, cv):
    # Ten hours: the estimate's own noise is ~0.01 at this half-life.
    rng = random.Random(mean_ms)
    h = HorizonRatio(k_s=2.5, half_life_s=36_000.0)
    _feed(h, rng, int(36_000_000 / mean_ms), mean_ms, cv, 1e-4)
    assert h.raw() == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("rho", [0.2, -0.2])
def test_dependent_moves_give_their_known_ratio(rho):
    # Ticks every second, AR(1) returns: 3-tick returns (the last tick 2.5 s
    # or more back) have 1 + 2 (2/3 rho + 1/3 rho^2) times three ticks' variance.
    rng = random.Random(3)
    h = HorizonRatio(k_s=2.5, half_life_s=36_000.0)
    _feed(h, rng, 36_000, 1000, 0.0, 1e-4, rho=rho)
    want = 1.0 + 2.0 * (2.0 / 3.0 * rho + rho * rho / 3.0)
    assert h.raw() == pytest.approx(want, abs=0.03)
    assert abs(h.raw() - 1.0) > 0.15       # the test can tell it from 1


def test_bounce_is_taken_out_when_its_size_is_given():
    # A walk at 100 ms ticks through 0.42 bp of noise (2 w^2 three times a
    # tick's variance): 1 s returns carry 2 w^2 more, 2.5 s ones too, so
    # the plain ratio reads well under 1; given w^2 it is 1 again.
    rng = random.Random(8)
    w = 4.2e-5
    h = HorizonRatio(k_s=2.5, half_life_s=36_000.0)
    _feed(h, rng, 360_000, 100, 0.03, 1.07e-4, noise=w)
    assert h.raw() < 0.9
    assert h.raw(noise=w * w) == pytest.approx(1.0, abs=0.03)


def test_the_prior_and_the_clip():
    h = HorizonRatio(k_s=3.0, clip=(0.9, 1.2))
    assert h.ratio() == pytest.approx(1.0, rel=1e-12)
    for i in range(20_000):                       # every move undone: ratio 1/3
        h.update(1e-4 * (i % 2), i * 1000)
    assert h.raw() < 0.4 and h.ratio() == 0.9
    with pytest.raises(ValueError):
        HorizonRatio(k_s=1.0)
    with pytest.raises(ValueError):
        HorizonRatio(clip=(1.1, 1.5))


def _ticks(rng, seconds, gap_ms, sigma, rho=0.0):
    t, x, prev = 0, math.log(PRICE), 0.0
    out = []
    while t < seconds * 1000:
        out.append((round(math.exp(x)), t))
        t += gap_ms
        prev = rho * prev + sigma * math.sqrt(gap_ms / 1000.0) * rng.gauss(0.0, 1.0)
        x += prev
    return out


def test_volatility_learns_the_ratio_beside_its_sigma():
    rng = random.Random(11)
    ticks = _ticks(rng, 3600, 1000, 1e-4, rho=0.3)
    off, on = Volatility(horizon_s=None), Volatility()
    for price, ts in ticks:
        off.update(price, ts)
        on.update(price, ts)
    # Not learnt: a ratio of 1.
    assert off.horizon_ratio == 1.0
    # Learnt (the default): the ratio the feed shows (AR(1) 0.3: ~1.46 at
    # 3 ticks, learnt over an hour against a 5 min prior of 1) ...
    assert 1.2 < on.horizon_ratio <= 1.5
    # ... and the sigma (the kernel's) and its error untouched by it.
    assert on.estimate == off.estimate and on.log_sd == off.log_sd


def test_a_bouncing_price_keeps_its_ratio_near_one():
    # The kernel's bounce (a negative lag-1 autocovariance) is taken out of
    # both horizons: a walk seen through bounce is not priced as mean-reverting.
    rng = random.Random(8)
    v = Volatility(half_life_s=600.0)
    t, x = 0, math.log(PRICE)
    for _ in range(36_000):
        v.update(round(math.exp(x + rng.gauss(0.0, 4.2e-5))), t)
        t += 100
        x += 1.07e-4 * math.sqrt(0.1) * rng.gauss(0.0, 1.0)
    assert v.horizon_ratio == pytest.approx(1.0, abs=0.05)


def test_the_ratio_is_shrunk_towards_one_by_its_own_error():
    # Independent moves, 1 s ticks, 40 min paths at the default half-life
    # (as a bench path is played): the raw ratio's spread over paths is the
    # standard error ``se`` says, and the shrunk ratio is 1 on most paths.
    raws, shrunk, ses = [], [], []
    for p in range(12):
        h = HorizonRatio()
        _feed(h, random.Random(p), 2400, 1000, 0.0, 1e-4)
        raws.append(h.raw())
        shrunk.append(h.ratio())
        ses.append(h.se())
    rms = math.sqrt(sum((r - 1.0) ** 2 for r in raws) / len(raws))
    assert 0.6 * ses[0] < rms < 1.6 * ses[0]
    assert sum(s == 1.0 for s in shrunk) >= len(shrunk) // 2
    assert all(abs(s - 1.0) < abs(r - 1.0) or s == r == 1.0 for s, r in zip(shrunk, raws))
    # A ratio well clear of its error is kept nearly whole: AR(1) 0.2 at
    # 1 s ticks for an hour, 1.31 raw, shrunk by under 1 %.
    h = HorizonRatio()
    _feed(h, random.Random(5), 3600, 1000, 0.0, 1e-4, rho=0.2)
    assert h.raw() > 1.2 and h.ratio() == pytest.approx(h.raw(), rel=0.01)
    # shrink 0: the raw ratio, clipped
    h0 = HorizonRatio(shrink=0.0)
    _feed(h0, random.Random(0), 2400, 1000, 0.0, 1e-4)
    assert h0.ratio() == min(1.5, max(0.8, h0.raw()))
    with pytest.raises(ValueError):
        HorizonRatio(shrink=-1.0)

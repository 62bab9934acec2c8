"""The few-ticks touch chance against simulated walks of the same law.

The Resolver calls a band touched when the prevailing price at t0 or a tick
of the window lands in it (the path's range meets the band); ``_discrete``
solves that walk on a grid. Each case draws the walk itself: X_0 ~ N(0, v^2)
(the prevailing price after the wait), then m standard Gaussian steps
(m + 1 with the probability of the fractional part).
"""
import math

import numpy as np
import pytest

from actors._discrete import column_curve, mixture_touch, phase_mix, touch_from_curve

CASES = [   # (steps, wait in ticks, a, b): band edges in tick s.d. from the last tick
    (5, 0.0, 2.0, 3.0),        # 1 s ticks, no wait: the closed form is worst here
    (5, 0.5, 0.3, 1.3),        # the band just above the price, half a tick of wait
    (5, 4.0, -3.0, -2.0),      # below, a long wait (a far column)
    (20, 2.25, 3.0, 4.0),
    (40, 9.0, -0.5, 0.5),      # the price's own band, start spread
    (12.4, 1.0, 1.0, 2.0),     # a window of a fractional number of ticks
    (5, 0.5, 6.0, 7.0),        # a far cell: a small chance
]


def simulate(steps, wait, a, b, n, rng):
    m = int(steps)
    k = np.where(rng.random(n) < steps - m, m + 1, m)
    x0 = rng.standard_normal(n) * math.sqrt(wait)
    walk = x0[:, None] + np.cumsum(rng.standard_normal((n, m + 1)), axis=1)
    seen = np.arange(m + 1)[None, :] < k[:, None]
    high = np.maximum(x0, np.where(seen, walk, -np.inf).max(axis=1))
    low = np.minimum(x0, np.where(seen, walk, np.inf).min(axis=1))
    return ((high >= a) & (low <= b)).mean()


@pytest.mark.parametrize("steps,wait,a,b", CASES)
def test_the_grid_walk_touches_as_the_simulated_one(steps, wait, a, b):
    rng = np.random.default_rng(17)
    n = 200_000
    mc = simulate(steps, wait, a, b, n, rng)
    se = math.sqrt(max(mc * (1 - mc), 1e-4) / n)
    h = 1.7e-4     # any tick s.d.: the curve is in its units
    p = float(touch_from_curve(column_curve(steps, wait), np.array([a * h]), np.array([b * h]), h)[0])
    assert abs(p - mc) < 4 * se + 2e-4, (p, mc, se)


def test_bands_far_off_the_grid_and_the_lowest_band():
    curve = column_curve(5, 1.0)
    far = touch_from_curve(curve, np.array([500.0]), np.array([501.0]), 1.0)
    assert far[0] == 0.0
    # lo = 0: the band reaches down to log(0) = -inf, and the price is in it.
    assert touch_from_curve(curve, np.array([-np.inf]), np.array([0.5]), 1.0)[0] > 0.5
    assert touch_from_curve(curve, np.array([-0.5]), np.array([0.5]), 1.0)[0] > \
        touch_from_curve(curve, np.array([0.5]), np.array([1.5]), 1.0)[0]


@pytest.mark.parametrize("ahead,window,sd", [
    (5.3, 5.0, 0.0),       # a clock without jitter: one outcome
    (5.97, 5.0, 0.02),     # a tick just before or after t0
    (20.5, 5.2, 0.3),      # a far column, a fractional window, a loose clock
])
def test_phase_mix_counts_the_ticks_the_resolver_sees(ahead, window, sd):
    # Ticks at k - e (k = 1, 2, ...; e the clock's error, in ticks): the
    # prevailing one is the last strictly before t0, the window holds those
    # in [t0, t0 + window).
    rng = np.random.default_rng(3)
    n = 100_000
    e = rng.standard_normal(n) * sd
    k = np.arange(1, int(ahead + window) + 40)[None, :] - e[:, None]
    before = (k < ahead).sum(axis=1)
    inside = ((k >= ahead) & (k < ahead + window)).sum(axis=1)
    mix = phase_mix(ahead, window, sd)
    assert sum(w for w, _, _ in mix) == pytest.approx(1.0)
    seen = {}
    for j, m in zip(before.tolist(), inside.tolist()):
        seen[(j, m)] = seen.get((j, m), 0) + 1
    for w, j, m in mix:
        f = seen.pop((j, m), 0) / n
        assert abs(f - w) < 4 * math.sqrt(w * (1 - w) / n) + 1e-4, (j, m, w, f)
    assert sum(seen.values()) / n < 1e-3


def test_a_clock_priced_at_its_phase_touches_as_its_walk():
    # 5 ticks a window, the prevailing tick 5 steps after the last one seen
    # (t0 is 5.98 steps away; the mean phase would wait 5.48):
    # the mix's chance is the walk's, and it is not the mean phase's.
    rng = np.random.default_rng(11)
    n = 200_000
    a, b = 6.0, 7.0       # a far cell: 4 % apart, 11 % of its chance
    x0 = rng.standard_normal((n, 5)).sum(axis=1)
    walk = x0[:, None] + np.cumsum(rng.standard_normal((n, 5)), axis=1)
    high = np.maximum(x0, walk.max(axis=1))
    low = np.minimum(x0, walk.min(axis=1))
    mc = ((high >= a) & (low <= b)).mean()
    se = math.sqrt(mc * (1 - mc) / n)
    h = 1.0
    p = float(mixture_touch(phase_mix(5.98, 5.0, 0.0), np.array([a]), np.array([b]), h)[0])
    assert abs(p - mc) < 4 * se + 2e-4, (p, mc, se)
    mean_phase = float(touch_from_curve(column_curve(5.0, 5.98 - 0.5), np.array([a]),
                                        np.array([b]), h)[0])
    assert abs(mean_phase - mc) > 8 * se, (mean_phase, mc)

"""The walk the pricer prices a column as (``actors._spacing``): the gaps' effective
spacing and mean age against their exact values for a known gap law, a clock's
period kept, the few-ticks guard, and BGK's shift as the first term."""
import math

import numpy as np
import pytest

from actors._spacing import (BGK_BETA, MIN_WALK_STEPS, column_walks, discrete_shift, mean_age,
                             phases, walk_ms)


def _gamma_moment(shape, scale, p):
    """E[g^p] for gaps g ~ Gamma(shape, scale)."""
    return scale ** p * math.exp(math.lgamma(shape + p) - math.lgamma(shape))


@pytest.mark.parametrize("cv,tol", [(0.62, 0.015), (0.3, 0.002), (0.03, 1e-6)])
def test_the_effective_spacing_is_the_gaps_overshoot_moment(cv, tol):
    # (E[g^1.5] / E[g])^2, exactly, for gamma gaps of this cv (the recorded
    # sample's is 0.62): the second-order rule is 1.3 % long there (for
    # the recorded gaps themselves, 0.1 %).
    mean = 262.0
    shape = 1.0 / (cv * cv)
    exact = (_gamma_moment(shape, mean / shape, 1.5) / mean) ** 2
    assert walk_ms(mean, cv * mean) == pytest.approx(exact, rel=tol)
    assert walk_ms(mean, None) == mean         # spread unknown: the mean gap


def test_the_mean_age_is_the_renewal_processs():
    # The prevailing tick's age at moments chosen without regard to the
    # ticks: E[g^2] / (2 E[g]) = dt (1 + cv^2) / 2, measured on gamma gaps.
    rng = np.random.default_rng(4)
    gaps = rng.gamma(2.0, 125.0, 200_000)          # mean 250, cv 0.71
    ends = np.cumsum(gaps)
    moments = np.sort(rng.uniform(ends[10], ends[-10], 100_000))
    ages = moments - ends[np.searchsorted(ends, moments) - 1]
    assert ages.mean() == pytest.approx(mean_age(250.0, 250.0 / math.sqrt(2.0)), rel=0.01)
    assert mean_age(100.0, 0.0) == 50.0            # a clock: half a tick


def test_a_clock_keeps_its_period_and_few_ticks_keep_the_mean_gap():
    window = np.array([5000.0, 5000.0, 600.0])
    tick, sd = 250.0, 150.0
    walks = column_walks([[(1.0, 3, 20)], None, None], window, tick, sd)
    assert walks[0] == tick                          # a clock's phase mix: its period
    assert walks[1] == pytest.approx(walk_ms(tick, sd)) and walks[1] > tick
    assert walks[2] == tick       # a window of ~2 ticks: no longer than window / MIN_WALK_STEPS
    assert column_walks([None], np.array([1200.0]), tick, 3 * tick)[0] == 1200.0 / MIN_WALK_STEPS


def test_phases_place_a_clocks_ticks_and_not_random_ones():
    ahead, window = np.array([3100.0, 20_100.0]), np.array([5000.0, 5000.0])
    clock = phases(ahead, window, 100.0, 3.0)
    assert all(m is not None for m in clock)
    assert sum(w for w, _, _ in clock[0]) == pytest.approx(1.0)
    assert phases(ahead, window, 262.0, 160.0) == [None, None]
    assert phases(ahead, window, 100.0, None) == [None, None]


def test_the_shift_is_bgks_over_a_long_window_and_less_over_a_short_one():
    sigma = 1e-4
    s2, delta = discrete_shift(1.0, 1e9, sigma, 100.0)
    assert s2 == pytest.approx(1.0) and delta == pytest.approx(BGK_BETA * sigma * math.sqrt(0.1))
    # a walk of 5 steps: the shift and the s.d. both scaled by 1 / (1 - KAPPA / 5)
    s5, d5 = discrete_shift(1.0, 500.0, sigma, 100.0)
    assert s5 > 1.0 and d5 / delta == pytest.approx(s5)


"""The pricer's pass restructured for fewer array calls (stop 26): the same
bits as the masked, one-range-at-a-time form it replaced.

The reference below is that form, netlib's three ranges each in its own
Horner loop over its own cells; ``erfc`` now runs all three as one padded
recurrence, and the landing and bivariate Phi terms of a pass share one
call. Multipliers are floors of 9,500 / (100 p): a last-bit change of p
can move one, so equality here is exact, not approximate.
"""
import math

import numpy as np

from actors import _erfc
from actors._pricer import bvn_upper, erfc, price_columns, touch_probabilities


def _reference_erfc(x):
    x = np.asarray(x, dtype=float)
    y = np.abs(x)
    out = np.empty_like(x)
    near = y <= 0.46875
    if near.any():
        xs = x[near]
        z = xs * xs
        num, den = _erfc._CA[4] * z, z
        for i in range(3):
            num = (num + _erfc._CA[i]) * z
            den = (den + _erfc._CB[i]) * z
        out[near] = 1.0 - xs * (num + _erfc._CA[3]) / (den + _erfc._CB[3])
    mid = ~near & (y <= 4.0)
    if mid.any():
        ym = y[mid]
        num, den = _erfc._CC[8] * ym, ym
        for i in range(7):
            num = (num + _erfc._CC[i]) * ym
            den = (den + _erfc._CD[i]) * ym
        out[mid] = _erfc._exp_minus_square(ym) * (num + _erfc._CC[7]) / (den + _erfc._CD[7])
    far = y > 4.0
    if far.any():
        yf = np.minimum(y[far], _erfc._ERFC_ZERO)
        z = 1.0 / (yf * yf)
        num, den = _erfc._CP[5] * z, z
        for i in range(4):
            num = (num + _erfc._CP[i]) * z
            den = (den + _erfc._CQ[i]) * z
        r = z * (num + _erfc._CP[4]) / (den + _erfc._CQ[4])
        out[far] = np.where(y[far] >= _erfc._ERFC_ZERO, 0.0,
                            _erfc._exp_minus_square(yf) * (1.0 / math.sqrt(math.pi) - r) / yf)
    neg = ~near & (x < 0)
    out[neg] = 2.0 - out[neg]
    return out


def _bits(a):
    return np.asarray(a, dtype=float).view(np.int64)


def test_erfc_is_bit_for_bit_the_three_range_form():
    rng = np.random.default_rng(26)
    edges = np.array([0.46875, 4.0, 26.543, 0.0, 1e-300, 5e-324, 1e300, np.inf])
    edges = np.concatenate([edges, np.nextafter(edges, 0.0), np.nextafter(edges, np.inf)])
    xs = np.concatenate([edges, -edges, rng.normal(0, 0.4, 20000), rng.normal(0, 3, 20000),
                         rng.uniform(-40, 40, 20000)])
    want = _reference_erfc(xs)
    assert np.array_equal(_bits(erfc(xs)), _bits(want))
    # a cell's value does not depend on what else is in its call, and the
    # flat recurrence (short calls) agrees with the masked form (long ones)
    for n in (1, 2, 7, 101):
        assert np.array_equal(_bits(erfc(xs[:n])), _bits(want[:n]))
    assert xs.size > _erfc._FLAT_MAX >= 1000
    for i in range(0, xs.size, 1000):
        assert np.array_equal(_bits(erfc(xs[i:i + 1000])), _bits(want[i:i + 1000]))
    assert np.array_equal(_bits(erfc(xs.reshape(3, -1))), _bits(want.reshape(3, -1)))


def test_bvn_upper_is_the_same_whatever_branches_share_a_call():
    rng = np.random.default_rng(7)
    n = 3000
    h, k = rng.uniform(-6, 6, n), rng.uniform(-6, 6, n)
    r = np.where(rng.random(n) < 0.5, rng.uniform(-0.92, 0.92, n), rng.uniform(0.93, 1.0, n))
    r = np.where(rng.random(n) < 0.3, -r, r)
    both = bvn_upper(h, k, r)
    lo = np.abs(r) < 0.925
    assert 0 < lo.sum() < n
    assert np.array_equal(_bits(both[lo]), _bits(bvn_upper(h[lo], k[lo], r[lo])))
    assert np.array_equal(_bits(both[~lo]), _bits(bvn_upper(h[~lo], k[~lo], r[~lo])))


def test_a_column_prices_the_same_alone_as_in_a_pass():
    # The fast path (every column waits) against the general one, and a
    # column alone against the same column among others.
    col = 5000
    now = 1_750_000_001_234
    first = (now // col + 2) * col
    t0s = [first + col * i for i in range(12)]
    args = (9_500_300, now - 40, now)
    kw = dict(tick_sd_ms=2.0, sigma_floor=0.0)
    together = price_columns(*args, t0s, col, 1000, 50, 1e-4, 500, 100.0, 0.054, **kw)
    for t0 in t0s:
        alone = price_columns(*args, [t0], col, 1000, 50, 1e-4, 500, 100.0, 0.054, **kw)
        assert alone[t0] == together[t0] and together[t0]
    a = np.log(np.array([1.001, 1.002, 0.999, 2.0]))
    b = a + 0.001
    s1 = np.array([0.001, 0.002, 0.003, 0.001])
    s2 = np.array([0.002, 0.001, 0.004, 0.0])
    general = touch_probabilities(np.append(a, 0.01), np.append(b, 0.02), np.append(s1, 0.0),
                                  np.append(s2, 0.01))
    fast = touch_probabilities(a, b, s1, s2)
    assert np.array_equal(_bits(general[:4]), _bits(fast))

"""The pricer's pass restructured for fewer array calls (stop 26): the same
bits as the masked, one-range-at-a-time form it replaced.

That form, netlib's three ranges each in its own Horner loop over its own
cells, lives on in ``actors._erfc`` for long calls (``_erfc_by_range``);
short calls run all three as one padded recurrence, and the landing and
bivariate Phi terms of a pass share one call. The two must agree bit for
bit, and a SHA-256 of their bits over fixed inputs, taken when they were
split, pins both against a later edit. Multipliers are floors of
9,500 / (100 p): a last-bit change of p can move one, so equality here is
exact, not approximate.
"""
import hashlib
import math

import numpy as np

from actors import _erfc
from actors._pricer import bvn_upper, erfc, price_columns, touch_probabilities


def _bits(a):
    return np.asarray(a, dtype=float).view(np.int64)


def _erfc_inputs():
    rng = np.random.default_rng(26)
    edges = np.array([0.46875, 4.0, 26.543, 0.0, 1e-300, 5e-324, 1e300, np.inf])
    edges = np.concatenate([edges, np.nextafter(edges, 0.0), np.nextafter(edges, np.inf)])
    return np.concatenate([edges, -edges, rng.normal(0, 0.4, 20000), rng.normal(0, 3, 20000),
                           rng.uniform(-40, 40, 20000)])


# The bits of the three-range form over _erfc_inputs(), when the flat
# recurrence was written against it (stop 26).
ERFC_BITS_SHA256 = "2108ebafb13496fe24e305a61db0faa3bdcace3d0a583d41409b1f1ca57d147d"


def test_the_three_range_form_keeps_its_bits_and_is_erfc():
    xs = _erfc_inputs()
    want = _erfc._erfc_by_range(xs)
    assert hashlib.sha256(_bits(want).tobytes()).hexdigest() == ERFC_BITS_SHA256
    # and it is erfc: within a few ulps of the C library's, wherever that is normal
    libm = np.array([math.erfc(x) for x in xs])
    normal = libm > 1e-300
    assert np.allclose(want[normal], libm[normal], rtol=1e-14, atol=0)


def test_erfc_is_bit_for_bit_the_three_range_form():
    xs = _erfc_inputs()
    want = _erfc._erfc_by_range(xs)
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

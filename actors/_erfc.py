"""erfc over numpy arrays, to ~1e-15 relative, for the pricer (``_pricer``).

W. J. Cody's rational Chebyshev approximations, as netlib's CALERF
evaluates them. Two forms with the same roundings per element: short
arrays (a pricing pass's few hundred cells) run the three ranges as one
padded recurrence, which is a third of the array calls; long ones a range
at a time, which does the fewest operations per cell. Multipliers are
floors of 9,500 / (100 p), so the two must agree to the last bit
(``tests/actors/test_pricer_passes.py``).
"""
import math

import numpy as np

__all__ = ["erfc"]

_SQRT_PI = math.sqrt(math.pi)
# W. J. Cody, "Rational Chebyshev approximations for the error function",
# Math. Comp. 23 (1969), as netlib's specfun CALERF evaluates them: erf
# below |x| = 0.46875, erfc up to 4, erfc's asymptotic form beyond.
_CA = (3.1611237438705656, 113.864154151050156, 377.485237685302021, 3209.37758913846947,
       0.185777706184603153)
_CB = (23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062)
_CC = (0.564188496988670089, 8.88314979438837594, 66.1191906371416295, 298.635138197400131,
       881.95222124176909, 1712.04761263407058, 2051.07837782607147, 1230.33935479799725,
       2.15311535474403846e-8)
_CD = (15.7449261107098347, 117.693950891312499, 537.181101862009858, 1621.38957456669019,
       3290.79923573345963, 4362.61909014324716, 3439.36767414372164, 1230.33935480374942)
_CP = (0.305326634961232344, 0.360344899949804439, 0.125781726111229246, 0.0160837851487422766,
       6.58749161529837803e-4, 0.0163153871373020978)
_CQ = (2.56852019228982242, 1.87295284992346725, 0.527905102951428412, 0.0605183413124413191,
       0.00233520497626869185)
_ERFC_ZERO = 26.543     # erfc underflows beyond

# Each range's rational function as one recurrence from 0, ``s = (s + c) * v``
# (v: x^2 below 0.46875, |x| up to 4, 1 / x^2 beyond), then ``s + c_last``.
# Leading zeros line the three up to the longest (8 steps): (0 + 0) * v = 0
# and (0 + c) * v = c * v exactly, so each element gets the same roundings as
# the range's own loop (netlib's order: num = c_top * v, den = v, then
# (num + c_i) * v).
_HORNER = np.array([
    [[0.0] * 4 + [_CA[4], _CA[0], _CA[1], _CA[2], _CA[3]],
     [_CC[8]] + list(_CC[:8]),
     [0.0] * 3 + [_CP[5]] + list(_CP[:5])],
    [[0.0] * 4 + [1.0, _CB[0], _CB[1], _CB[2], _CB[3]],
     [1.0] + list(_CD[:8]),
     [0.0] * 3 + [1.0] + list(_CQ[:5])],
]).transpose(2, 0, 1).reshape(9, 6).copy()      # (9 steps, range + 3 x den)


def _exp_minus_square(y):
    """exp(-y^2) without the rounding of y^2: y^2 = ys^2 + (y - ys)(y + ys), ys on a 1/16 grid."""
    ys = np.trunc(y * 16.0) / 16.0
    return np.exp(-ys * ys) * np.exp(-(y - ys) * (y + ys))


def erfc(x):
    """Complementary error function of an array, to ~1e-15 relative (Cody's
    rational approximations: a dozen array operations a range, where the
    series and continued fraction this replaced took ~400, most of a grid's
    pricing time on arrays of a few hundred cells).

    The three ranges run as one recurrence over the whole array (numerator
    and denominator stacked, each range's coefficients picked per element;
    see ``_HORNER``), not three masked passes: the same roundings per
    element, in a third of the array calls (~50 µs a call was mostly their
    fixed cost, and a pricing pass makes three or four)."""
    x = np.asarray(x, dtype=float)
    if x.size > _FLAT_MAX:
        return _erfc_by_range(x)
    shape = x.shape
    x = x.ravel()
    n = x.size
    y = np.abs(x)
    g = np.empty(2 * n, dtype=np.intp)           # the range, numerator's then denominator's
    gn = g[:n]
    np.greater(y, 0.46875, out=gn, casting="unsafe")
    gn += y > 4.0
    near, far = gn == 0, gn == 2
    np.add(gn, 3, out=g[n:])
    yf = np.minimum(y, _ERFC_ZERO)
    with np.errstate(all="ignore"):
        zf = 1.0 / (yf * yf)
        v = np.where(near, x * x, np.where(far, zf, y))
        v = np.concatenate([v, v])
        k = _HORNER[:, g]                         # (steps, 2n): flat, not (2, n), which
        s = np.zeros(2 * n)                       # broadcasting made 3x slower a step
        for c in k[:-1]:
            s += c
            s *= v
        s += k[-1]
        e = _exp_minus_square(np.where(far, yf, y))
        r = np.where(near, x, np.where(far, zf, e)) * s[:n] / s[n:]
        tail = np.where(y >= _ERFC_ZERO, 0.0, e * (1.0 / _SQRT_PI - r) / yf)
    out = np.where(near, 1.0 - r, np.where(far, tail, r))
    return np.where(~near & (x < 0), 2.0 - out, out).reshape(shape)


# Past this many cells the masked form below is cheaper: it runs each
# range's few steps on that range's cells only, where the flat recurrence
# runs all eight on every cell (their per-call costs cross near 1,500).
_FLAT_MAX = 1500


def _erfc_by_range(x):
    """``erfc`` a range at a time (the same roundings, per element)."""
    y = np.abs(x)
    out = np.empty_like(x)
    near = y <= 0.46875
    if near.any():
        xs = x[near]
        z = xs * xs
        num, den = _CA[4] * z, z
        for i in range(3):
            num = (num + _CA[i]) * z
            den = (den + _CB[i]) * z
        out[near] = 1.0 - xs * (num + _CA[3]) / (den + _CB[3])
    mid = ~near & (y <= 4.0)
    if mid.any():
        ym = y[mid]
        num, den = _CC[8] * ym, ym
        for i in range(7):
            num = (num + _CC[i]) * ym
            den = (den + _CD[i]) * ym
        out[mid] = _exp_minus_square(ym) * (num + _CC[7]) / (den + _CD[7])
    far = y > 4.0
    if far.any():
        yf = np.minimum(y[far], _ERFC_ZERO)
        z = 1.0 / (yf * yf)
        num, den = _CP[5] * z, z
        for i in range(4):
            num = (num + _CP[i]) * z
            den = (den + _CQ[i]) * z
        r = z * (num + _CP[4]) / (den + _CQ[4])
        out[far] = np.where(y[far] >= _ERFC_ZERO, 0.0,
                            _exp_minus_square(yf) * (1.0 / _SQRT_PI - r) / yf)
    neg = ~near & (x < 0)
    out[neg] = 2.0 - out[neg]
    return out

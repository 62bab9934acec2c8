"""The touch chance of a path seen only at its ticks, computed, not approximated.

When a window holds few ticks (5 at 1 s ticks in a 5 s column) the
continuity correction of ``_spacing.discrete_shift`` (BGK's shift plus a fitted
second-order term) misjudges how often a *tick* reaches a band: it is an
expansion in 1 / sqrt(ticks) and the prevailing price at ``t0`` (a tick
of unknown place, half a tick or more after the last one seen) sits where
it is worst. Here the walk is solved on a grid instead.

In units of h = sigma sqrt(dt) the Resolver sees X_0 (the price in force
at ``t0``, N(0, v^2) from the last tick with v^2 = wait / dt) and X_1..X_m
(the window's ticks), X_k = X_0 + a standard Gaussian random walk. The band
[a, b] is missed when every X_k < a or every X_k > b, so

    P(touch) = 1 - C_m,v(-a / h) - C_m,v(b / h)

with A_m(y) = P(a walk from y < 0 stays below 0 for m more steps) and
C_m,v(x) = E A_m(x + v Z). A_m for every m <= MAX_STEPS comes from one
backward recursion at import (cell averages on a 0.02 grid, each step a
convolution with the cell-integrated Gaussian: ~0.1 s once, before any
loop runs); C per column is one short convolution (the grid coarsened to
v / 8 when the start is spread, which the smooth kernel allows); cells
interpolate it. A fractional m (a window of 5000 / 1010 ticks) is the mix of
floor(m) and floor(m) + 1 steps that a random phase gives.

A feed that ticks on a clock (the sim: every ``dt`` on a schedule, a few ms
of jitter) does not have a random phase: from the last tick's time the
ticks to come are known to within the jitter, so the wait before ``t0`` is
a whole number of steps and the window holds a known number of ticks.
``phase_mix`` gives those (weight, steps before t0, steps in the window)
outcomes; ``mixture_touch`` prices their mix. Pricing the mean phase
instead is right on average over phases but wrong for every one of them
(at 1 s ticks a 6-band cell of the next column returns 0.80 to 1.10
depending on where the ticks fall): one process keeps one phase.
"""
import functools
import math

import numpy as np

__all__ = ["MAX_STEPS", "column_curve", "touch_from_curve", "phase_mix", "mixture_touch"]

MAX_STEPS = 40        # beyond this the closed form's correction is good enough
_DELTA = 0.04         # grid step, in h (midpoint rule: error ~1e-4 of a touch chance)
_SPAN = 40.0         # grid depth below the barrier: a 41-step walk crosses it 4e-10 of the time
_KSD = 7.5            # kernel half-width in s.d. (tail 6e-14)


def _phi(x):
    x = np.asarray(x, dtype=float)
    return 0.5 * np.vectorize(math.erfc)(-x / math.sqrt(2.0))


def _kernel(step, sd):
    """Cell-integrated N(0, sd^2) weights at offsets -K..K cells of ``step``."""
    k = int(math.ceil(_KSD * sd / step))
    off = np.arange(-k, k + 1) * step
    return _phi((off + step / 2) / sd) - _phi((off - step / 2) / sd), k


def _survival():
    n = int(round(_SPAN / _DELTA))
    w, k = _kernel(_DELTA, 1.0)
    table = np.empty((MAX_STEPS + 2, n))
    table[0] = 1.0                   # on the grid (y < 0): not yet over the barrier
    for j in range(1, MAX_STEPS + 2):
        padded = np.concatenate([np.ones(k), table[j - 1], np.zeros(k)])
        table[j] = np.convolve(padded, w, "valid")
    return table                     # cells centred at -SPAN + (i + 1/2) DELTA


_TABLE = _survival()
_N = _TABLE.shape[1]


def _curve(m, v):
    """(x grid, C_m,v on it), ascending x."""
    a = _TABLE[m]
    if v < 0.5 * _DELTA:
        xs = -_SPAN + (np.arange(_N) + 0.5) * _DELTA
        return np.append(xs, 0.0), np.append(a, 0.0)
    r = max(1, int(v / (8 * _DELTA)))
    pad = (-_N) % r
    a = np.concatenate([np.ones(pad), a]).reshape(-1, r).mean(axis=1)
    step = r * _DELTA
    w, k = _kernel(step, v)
    right = int(math.ceil(_KSD * v / step)) + 1
    padded = np.concatenate([np.ones(k), a, np.zeros(right + k)])
    c = np.convolve(padded, w, "valid")
    xs = -(_N + pad) * _DELTA + (np.arange(c.size) + 0.5) * step
    return xs, c


def column_curve(steps, wait_ticks):
    """The miss curve of one column: ``steps`` = window / dt (may be
    fractional, <= MAX_STEPS + 1), ``wait_ticks`` = wait / dt of the
    prevailing price at t0 after the last tick seen."""
    m0 = int(math.floor(steps))
    f = steps - m0
    v = math.sqrt(max(wait_ticks, 0.0))
    xs0, c0 = _curve(m0, v)
    if f < 1e-9:
        return xs0, c0
    xs1, c1 = _curve(m0 + 1, v)
    return xs0, (1 - f) * c0 + f * np.interp(xs0, xs1, c1, left=1.0, right=0.0)


def touch_from_curve(curve, a, b, h):
    """P(a tick meets [a, b]) (log distances from the last tick; a may be
    -inf) for tick s.d. ``h`` (arrays broadcast)."""
    xs, c = curve
    with np.errstate(invalid="ignore"):
        lo = np.interp(np.nan_to_num(-a / h, posinf=1e300, neginf=-1e300), xs, c, left=1.0, right=0.0)
        hi = np.interp(np.nan_to_num(b / h, posinf=1e300, neginf=-1e300), xs, c, left=1.0, right=0.0)
    return np.clip(1.0 - lo - hi, 0.0, 1.0)


@functools.lru_cache(maxsize=512)
def _whole_curve(m, waited):
    """``_curve`` for a wait of a whole number of steps: a regular feed asks
    for the same few (m, steps) pairs grid after grid."""
    return _curve(m, math.sqrt(waited))


_MIX_MIN = 1e-6      # outcomes rarer than this are dropped (their weight is renormalised)


def phase_mix(ahead, window, sd):
    """[(weight, steps before t0, steps in the window)] for a feed whose next
    ticks fall at k = 1, 2, ... steps after the last one, each to within a
    Gaussian error of ``sd`` steps. ``ahead`` = (t0 - last tick) / dt and
    ``window`` = window / dt, in steps.

    With x = ahead - error: the ticks before t0 are ceil(x) - 1 (the
    Resolver's prevailing price is the last tick strictly before t0) and
    those inside [t0, t0 + window) are ceil(x + window) - ceil(x).
    """
    whole = int(math.floor(window))
    f = window - whole
    if sd <= 0.0:
        c = int(math.ceil(ahead))
        return [(1.0, max(0, c - 1), int(math.ceil(ahead + window)) - max(c, 0))]
    lo = max(0, int(math.floor(ahead - 8.5 * sd)) - 1)
    hi = int(math.ceil(ahead + 8.5 * sd)) + 1
    scale = 1.0 / (sd * math.sqrt(2.0))

    def cdf(x):
        # P(ahead - error <= x); past 7 s.d. it is 0 or 1 to 1e-12, below
        # what any outcome kept here weighs, and erfc need not be called
        z = (ahead - x) * scale
        return 0.0 if z > 4.95 else 1.0 if z < -4.95 else 0.5 * math.erfc(z)

    out = []
    x_prev = c_prev = None
    for j in range(lo, hi + 1):
        for m, x0, x1 in ((whole, j, j + 1 - f), (whole + 1, j + 1 - f, j + 1)):
            if x1 <= x0:
                continue
            # P(x0 < x <= x1), x ~ N(ahead, sd^2); j = 0 takes all of x <= 1 - f.
            # Each boundary's CDF once: an outcome's top is the next one's bottom.
            bot = 0.0 if j == 0 and x0 <= 0 else c_prev if x0 == x_prev else cdf(x0)
            top = cdf(x1)
            x_prev, c_prev = x1, top
            w = top - bot
            if w > _MIX_MIN:
                out.append((w, j, m))
    total = sum(w for w, _, _ in out)
    return [(w / total, j, m) for w, j, m in out]


def mixture_touch(mix, a, b, h):
    """P(a tick meets [a, b]) under ``phase_mix``'s outcomes (arrays as in
    ``touch_from_curve``)."""
    p = 0.0
    for w, j, m in mix:
        p = p + w * touch_from_curve(_whole_curve(m, j), a, b, h)
    return p

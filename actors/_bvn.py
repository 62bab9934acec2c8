"""The bivariate normal upper tail over arrays, its work shared by cells of one correlation.

``_odds._bvn_upper`` (Genz 2004, after Drezner & Wesolowsky) over numpy
arrays, 20-point Gauss-Legendre. A pricing pass asks it for a few hundred
(h, k) pairs but only a few dozen correlations: r = -s1 / sY is one value
per (column, sigma node), whatever the band. Everything Genz's rule
computes from r alone (arcsin r and the twenty sines of the |r| < 0.925
branch, the nodes' 1 - r^2 weights and their square roots in the other)
is computed here once per correlation (``Correlations``) and picked per
cell, instead of once per cell: the same operations on the same values,
so the same bits (``tests/actors/test_bvn.py``), in about half the work
(the sines were a third of the near columns' pass).

A caller that takes its own Phi terms in the same erfc call splits the
evaluation in two: ``prepare`` gives the arguments whose Phi it needs,
``finish`` the probabilities from them (erfc's fixed cost is most of a
call at a pass's sizes).
"""
import math
import threading

import numpy as np

from ._erfc import erfc
from ._odds import _GL20, _genz_series

__all__ = ["Correlations", "bvn_upper", "prepare", "finish", "phi", "phis"]

_SQRT2 = math.sqrt(2.0)
_TWO_PI = 2.0 * math.pi
_SQRT_TWO_PI = math.sqrt(_TWO_PI)
# Half the nodes for Genz's |r| < 0.925 sum (it folds the other half in),
# all twenty for the |r| >= 0.925 one.
_GH_X = np.array([x for x, _ in _GL20])
_GH_W = np.array([w for _, w in _GL20])
_GL_X = np.concatenate([_GH_X, -_GH_X])
_GL_W = np.concatenate([_GH_W, _GH_W])
# Below this |r| Genz's first form (the sines), from it the |r| near 1 series.
R_SPLIT = 0.925


def phi(x):
    """Standard normal CDF of an array."""
    return 0.5 * erfc(-np.asarray(x, dtype=float) / _SQRT2)


def phis(*args):
    """Phi of several 1-d arrays (of any lengths) in one erfc call."""
    flat = phi(np.concatenate(args))
    out, i = [], 0
    for a in args:
        j = i + a.size
        out.append(flat[i:j])
        i = j
    return out


class Correlations:
    """What Genz's rule computes from r alone, for a few correlations."""
    __slots__ = ("r", "lo", "asr", "sn1", "den1", "sn2", "den2", "as_", "a", "a_half", "xs",
                 "rs", "dd")

    def __init__(self, r):
        r = np.asarray(r, dtype=float).ravel()
        self.r = r
        self.lo = np.abs(r) < R_SPLIT
        with np.errstate(all="ignore"):
            asr = np.arcsin(r)[:, None]
            self.asr = asr[:, 0]
            self.sn1 = np.sin(asr * (_GH_X + 1) / 2)
            self.sn2 = np.sin(asr * (1 - _GH_X) / 2)
            self.den1 = 1 - self.sn1 * self.sn1
            self.den2 = 1 - self.sn2 * self.sn2
            as_ = (1 - r) * (1 + r)
            self.as_ = as_
            self.a = np.sqrt(as_)
            self.a_half = self.a / 2
            self.xs = as_[:, None] * (_GL_X + 1) ** 2 / 4
            self.rs = np.sqrt(1 - self.xs)
            self.dd = 2 * (1 + self.rs) ** 2


_local = threading.local()


def _scratch(rows, cols):
    """Four (rows, cols) float arrays for a finish step's temporaries, this
    thread's own and reused: a fresh array of a far column's size (~230 KB)
    costs its page faults every time, which made the |r| near 1 terms half
    again as slow as with the memory reused."""
    size = rows * cols
    bufs = getattr(_local, "bufs", None)
    if bufs is None or bufs[0].size < size:
        bufs = _local.bufs = [np.empty(max(size, 1 << 14)) for _ in range(4)]
    return [buf[:size].reshape(rows, cols) for buf in bufs]


def bvn_upper(h, k, r):
    """P(U > h, V > k) elementwise, U, V standard normal with correlation r."""
    h, k, r = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (h, k, r)))
    shape = h.shape
    h, k, r = h.ravel(), k.ravel(), r.ravel()
    corr = Correlations(r)
    parts, args = prepare(h, k, np.arange(h.size), corr)
    return finish(parts, phis(*args) if args else []).reshape(shape)


def prepare(h, k, g, corr):
    """``bvn_upper`` of cells (h, k) of correlations ``corr.r[g]`` up to
    its Phi terms: (what ``finish`` needs, the arrays whose Phi it needs)."""
    lo = corr.lo[g]
    n = h.size
    nlo = int(np.count_nonzero(lo))
    args = []
    low = high = None
    if nlo:
        low = (h, k, g) if nlo == n else (h[lo], k[lo], g[lo])
        args += [-low[0], -low[1]]
    if nlo < n:
        hi = ~lo
        high = _high_prepare(*((h, k, g) if nlo == 0 else (h[hi], k[hi], g[hi])), corr)
        args += high[-1]
    return (n, lo, nlo, low, high, corr), args


def finish(parts, phis):
    n, lo, nlo, low, high, corr = parts
    if n == 0:
        return np.empty(0)
    with np.errstate(all="ignore"):
        if high is None:
            return _low_finish(low, phis[0], phis[1], corr)
        hi = _high_finish(high, phis[2:] if low is not None else phis, corr)
        if low is None:
            return hi
        out = np.empty(n)
        out[lo] = _low_finish(low, phis[0], phis[1], corr)
        out[~lo] = hi
    return out


def _low_finish(low, ph, pk, corr):
    h, k, g = low
    n = h.size
    e1, e2, t, _ = _scratch(n, _GH_X.size)
    hk = (h * k)[:, None]
    hs = ((h * h + k * k) / 2)[:, None]
    for e, sn, den in ((e1, corr.sn1, corr.den1), (e2, corr.sn2, corr.den2)):
        # exp((sn hk - hs) / (1 - sn^2)), sn and 1 - sn^2 the cell's correlation's
        np.take(sn, g, axis=0, out=e)
        e *= hk
        e -= hs
        np.take(den, g, axis=0, out=t)
        e /= t
        np.exp(e, out=e)
    e1 += e2
    e1 *= _GH_W
    s = e1.sum(axis=1)
    return s * corr.asr[g] / (2 * _TWO_PI) + ph * pk


def _high_prepare(h, k, g, corr):
    r = corr.r[g]
    k = np.where(r < 0, -k, k)
    hk = h * k
    as_, a = corr.as_[g], corr.a[g]
    with np.errstate(all="ignore"):
        bs = (h - k) ** 2
        b = np.sqrt(bs)
        # Phi(-max(h, k)) is read only where r > 0, the two below only
        # where r <= 0 and k > h: the other cells' are not taken.
        top = np.flatnonzero(r > 0)
        below = np.flatnonzero((r <= 0) & (k > h))
        hb, kb = h[below], k[below]
        args = [-b / a, -np.maximum(h[top], k[top]), np.where(hb < 0, kb, -hb),
                np.where(hb < 0, hb, -kb)]
    return g, hk, as_, a, bs, b, top, below, args


def _high_finish(high, phis, corr):
    g, hk, as_, a, bs, b, top, below, _ = high
    pba, ptop, pu, pv = phis
    c, d, bvn = _genz_series(hk, bs, as_, a, np.exp)
    tail = (np.exp(-hk / 2) * _SQRT_TWO_PI * pba * b
            * (1 - c * bs * (1 - d * bs / 5) / 3))
    bvn = bvn - np.where(hk > -160, tail, 0.0)
    xs, e, f, q = _scratch(hk.size, _GL_X.size)
    np.take(corr.xs, g, axis=0, out=xs)
    hk2, c2, d2 = hk[:, None], c[:, None], d[:, None]
    # GL_W exp(-(bs / xs + hk) / 2) (exp(-hk xs / (2 (1 + rs)^2)) / rs
    # - (1 + c xs (1 + d xs))), in place, each operation as written there
    # (x * -0.5 and -x / 2 are the same rounding of the same number).
    np.divide(bs[:, None], xs, out=e)
    e += hk2
    e *= -0.5
    np.exp(e, out=e)
    e *= _GL_W
    np.multiply(-hk2, xs, out=f)
    np.take(corr.dd, g, axis=0, out=q)
    f /= q
    np.exp(f, out=f)
    np.take(corr.rs, g, axis=0, out=q)
    f /= q
    np.multiply(d2, xs, out=q)
    q += 1
    xs *= c2
    q *= xs
    q += 1
    f -= q
    e *= f
    bvn = bvn + corr.a_half[g] * e.sum(axis=1)
    bvn = np.where(as_ > 0, -bvn / _TWO_PI, 0.0)   # |r| = 1: no integral term
    add = np.zeros(bvn.size)
    add[below] = pu - pv
    out = -bvn + add
    out[top] = bvn[top] + ptop
    return out

"""The grid's odds in one vectorised pass (numpy), so pricing never holds the GIL for long.

The model is ``_odds``' closed form (see its docstring), evaluated for every
cell of every open column at once, with two corrections for the path the
Resolver actually judges: discrete ticks joined as a line.

- The window's path is the prevailing tick at ``t0`` plus the ticks inside
  it, so a cell is touched when a *tick* reaches the band: each column is
  priced as the walk ``_spacing`` says (BGK's continuity correction, both
  crossing terms against the far-shifted edges; a clock's ticks placed by
  phase, random ticks walked at their gaps' effective spacing).
- The price is the last tick, not a price "now": the landing variance runs
  from that tick's time to the prevailing tick at ``t0``, whenever the grid
  happens to be priced (``_spacing.phases`` for a clock, the renewal age
  ``_spacing.mean_age`` otherwise).
- sigma is an estimate; the probability priced is the one that keeps the
  edge whatever the true sigma (``_estimate_aware``).

With ``tick_ms = 0``, ``sigma_sd = 0`` and ``wait_ms`` measured from ``now`` this is exactly
``_odds.touch_probability`` (the tests hold it to that within 1e-12).

Why numpy: 12-13 columns x 101 bands of bivariate-normal terms were 6-25 ms
of pure Python per grid on this box (perf/bench_pricer.py, bench_odds), all
of it under the GIL (the event loop waited a switch interval, 5 ms, at a
time). Here the work is a few dozen array operations over ~1,300 cells
(x3 sigma nodes); numpy's loops release the GIL over arrays of that size,
and the Python between them is microseconds.
"""
import math

import numpy as np

from ._erfc import erfc
from ._discrete import MAX_STEPS, column_curve, mixture_touch, touch_from_curve
from ._odds import _GL20, _MAX_MULT, _genz_series, multiplier
from ._spacing import BGK_BETA, column_walks, discrete_shift, mean_age, phases

__all__ = ["touch_probabilities", "window_touch", "multipliers", "price_columns", "BGK_BETA"]

_SQRT2 = math.sqrt(2.0)
_TWO_PI = 2.0 * math.pi
# Half the nodes for Genz's |r| < 0.925 sum (it folds the other half in),
# all twenty for the |r| >= 0.925 one.
_GH_X = np.array([x for x, _ in _GL20])
_GH_W = np.array([w for _, w in _GL20])
# Gauss-Hermite, 3 points, for E f(Z), Z ~ N(0, 1).
_GH3_X = np.array([-math.sqrt(3.0), 0.0, math.sqrt(3.0)])
_GH3_W = np.array([1 / 6, 2 / 3, 1 / 6])
_GL_X = np.concatenate([_GH_X, -_GH_X])
_GL_W = np.concatenate([_GH_W, _GH_W])
def phi(x):
    """Standard normal CDF of an array."""
    return 0.5 * erfc(-np.asarray(x, dtype=float) / _SQRT2)


def _phis(*args):
    """Phi of several 1-d arrays (of any lengths) in one pass (fewer, larger loops)."""
    flat = phi(np.concatenate(args))
    out, i = [], 0
    for a in args:
        j = i + a.size
        out.append(flat[i:j])
        i = j
    return out


# 2 Phi(z) under this z is below 1e-13 (_odds._NEGLIGIBLE): the term cannot move a multiplier.
_Z_NEGLIGIBLE = -7.55


def bvn_upper(h, k, r):
    """P(U > h, V > k) elementwise, U, V standard normal with correlation r:
    ``_odds._bvn_upper`` (Genz 2004) over arrays, 20-point Gauss-Legendre."""
    h, k, r = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (h, k, r)))
    parts, args = _bvn_prepare(h, k, r)
    return _bvn_finish(parts, _phis(*args) if args else [])


def _bvn_prepare(h, k, r):
    """``bvn_upper`` up to its Phi terms: (what ``_bvn_finish`` needs, the
    arrays whose Phi it needs). Split so that a caller can take these Phi
    in the same pass as its own (``_touch_after_wait``): a pass of erfc
    costs ~50 µs whatever its length, and pricing made three in a row."""
    lo = np.abs(r) < 0.925
    hi = ~lo
    args = []
    low = high = None
    if lo.any():
        low = h[lo], k[lo], r[lo]
        args += [-low[0], -low[1]]
    if hi.any():
        high = _bvn_high_prepare(h[hi], k[hi], r[hi])
        args += high[-1]
    return (h.shape, lo, hi, low, high), args


def _bvn_finish(parts, phis):
    shape, lo, hi, low, high = parts
    out = np.empty(shape)
    i = 0
    if low is not None:
        hl, kl, rl = low
        hk = (hl * kl)[:, None]
        hs = ((hl * hl + kl * kl) / 2)[:, None]
        asr = np.arcsin(rl)[:, None]
        sn1 = np.sin(asr * (_GH_X + 1) / 2)
        sn2 = np.sin(asr * (1 - _GH_X) / 2)
        s = (_GH_W * (np.exp((sn1 * hk - hs) / (1 - sn1 * sn1))
                      + np.exp((sn2 * hk - hs) / (1 - sn2 * sn2)))).sum(axis=1)
        ph, pk = phis[0], phis[1]
        i = 2
        out[lo] = s * asr[:, 0] / (2 * _TWO_PI) + ph * pk
    if high is not None:
        out[hi] = _bvn_high_finish(high, phis[i:i + 4])
    return out


def _bvn_high_r(h, k, r):
    high = _bvn_high_prepare(h, k, r)
    return _bvn_high_finish(high, _phis(*high[-1]))


def _bvn_high_prepare(h, k, r):
    neg = r < 0
    k = np.where(neg, -k, k)
    hk = h * k
    as_ = (1 - r) * (1 + r)
    with np.errstate(all="ignore"):
        a = np.sqrt(as_)
        bs = (h - k) ** 2
        b = np.sqrt(bs)
        top = np.maximum(h, k)
        args = [-b / a, -top, np.where(h < 0, k, -h), np.where(h < 0, h, -k)]
    return h, k, r, hk, as_, a, bs, b, args


def _bvn_high_finish(high, phis):
    h, k, r, hk, as_, a, bs, b, _ = high
    with np.errstate(all="ignore"):
        c, d, bvn = _genz_series(hk, bs, as_, a, np.exp)
        pba, ptop, pu, pv = phis
        tail = (np.exp(-hk / 2) * math.sqrt(_TWO_PI) * pba * b
                * (1 - c * bs * (1 - d * bs / 5) / 3))
        bvn = bvn - np.where(hk > -160, tail, 0.0)
        xs = as_[:, None] * (_GL_X + 1) ** 2 / 4
        rs = np.sqrt(1 - xs)
        hk2, bs2, c2, d2 = hk[:, None], bs[:, None], c[:, None], d[:, None]
        terms = _GL_W * np.exp(-(bs2 / xs + hk2) / 2) * (
            np.exp(-hk2 * xs / (2 * (1 + rs) ** 2)) / rs - (1 + c2 * xs * (1 + d2 * xs)))
        bvn = bvn + a / 2 * terms.sum(axis=1)
        bvn = np.where(as_ > 0, -bvn / _TWO_PI, 0.0)   # |r| = 1: no integral term
    below = -bvn + np.where(k > h, pu - pv, 0.0)
    return np.where(r > 0, bvn + ptop, below)


def touch_probabilities(a, b, s1, s2, delta=0.0):
    """``_odds._touch`` over arrays (a may be -inf), each crossing term
    against its edge shifted ``delta`` further out (0: continuous path)."""
    a, b, s1, s2, delta = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (a, b, s1, s2, delta)))
    p = np.zeros(a.shape)
    with np.errstate(all="ignore"):
        inside = (a <= 0.0) & (b >= 0.0)
        # No wait: the window starts at the current price.
        z = s1 <= 0.0
        if z.any():
            up = 2.0 * phi(-(a[z] + delta[z]) / s2[z])
            down = 2.0 * phi((b[z] - delta[z]) / s2[z])
            pz = np.where(a[z] > 0.0, up, down)
            pz = np.where(s2[z] > 0.0, np.minimum(pz, 1.0), 0.0)
            p[z] = np.where(inside[z], 1.0, pz)
        w = ~z
        if w.any():
            p[w] = _touch_after_wait(a[w], b[w], s1[w], s2[w], delta[w])
    return np.clip(p, 0.0, 1.0)


def _touch_after_wait(a, b, s1, s2, delta):
    with np.errstate(all="ignore"):
        # Start inside the band; subtract the far tail to keep precision.
        land_args = [np.where(a > 0.0, -a / s1, b / s1), np.where(a > 0.0, -b / s1, a / s1)]
        sy = np.sqrt(s1 * s1 + s2 * s2)
        rho = s1 / sy
        a2, b2 = a + delta, b - delta
        finite = np.isfinite(a)
        up = finite & (s2 > 0) & (np.minimum(a / s1, -a2 / sy) > _Z_NEGLIGIBLE)
        down = (s2 > 0) & (np.minimum(-b / s1, b2 / sy) > _Z_NEGLIGIBLE)
        # Both crossings in one bivariate pass.
        h = np.concatenate([-a[up] / s1[up], b[down] / s1[down]])
        k = np.concatenate([a2[up] / sy[up], -b2[down] / sy[down]])
        r = np.concatenate([-rho[up], -rho[down]])
        parts = None
        if h.size:
            parts, bvn_args = _bvn_prepare(h, k, r)
            land_args += bvn_args
        # Every Phi of the pass in one erfc call (the landing term's and the
        # bivariate terms'): the same values, a third of the calls.
        phis = _phis(*land_args)
        p = phis[0] - phis[1]
        if parts is not None:
            v = 2.0 * _bvn_finish(parts, phis[2:])
            nu = int(up.sum())
            p[up] += v[:nu]
            p[down] += v[nu:]
    return p


def multipliers(p, edge_bp=500, min_mult=101, max_mult=10000):
    """``_odds.multiplier`` over an array: hundredths, 0 where not offered."""
    p = np.minimum(np.asarray(p, dtype=float), 1.0)
    num = 10000 - edge_bp
    with np.errstate(all="ignore"):
        q = num / (p * 100.0)
        m = np.floor(q)
        frac = q - m
    capped = (p == 0.0) | (q >= max_mult)
    exact = ~capped & (p > 0.0) & ((frac < 1e-6) | (frac > 1 - 1e-6))
    m = np.minimum(m, max_mult)
    np.copyto(m, 0.0, where=np.isnan(m))     # nan_to_num's one effect here, without its ~15 µs
    m = np.where(capped, max_mult, m).astype(np.int64)
    for i in np.flatnonzero(exact):   # near an integer: the exact decimal rule, rare
        m[i] = multiplier(float(p[i]), edge_bp, min_mult, max_mult) or 0
    m[(m < min_mult) | np.isnan(p)] = 0
    return m


def window_touch(price, lo, hi, wait_ms, window_ms, sigma, tick_ms):
    """P(a tick of a path sampled every ``tick_ms`` meets [lo, hi) within a
    window of ``window_ms`` starting ``wait_ms`` after the price (arrays ok)."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    with np.errstate(divide="ignore"):
        a = np.log(lo / price)
    s1 = sigma * np.sqrt(np.asarray(wait_ms, dtype=float) / 1000.0)
    s2, delta = discrete_shift(sigma * np.sqrt(np.asarray(window_ms, dtype=float) / 1000.0),
                               np.asarray(window_ms, dtype=float), sigma, tick_ms)
    return touch_probabilities(a, np.log(hi / price), s1, s2, delta)


def _estimate_aware(pr):
    """The probability to price from p at sigma x exp(node * sd), nodes -1.7/0/+1.7.

    The house needs E[p(true) / p(priced)] = 1 whatever the true sigma is,
    the expectation over the estimate's error eta. With the estimate as the
    truth that asks for p(priced) = p0^2 E[1 / p(sigma e^eta)]: for a chance
    log-linear in log sigma it is the plain mean E[p], but far cells are
    concave there, and the mean alone leaves about half the noise with the
    players. Where a node underflows to 0 (deep in capped cells) the mean does.
    """
    p0 = pr[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        freq = p0 * p0 * (_GH3_W @ (1.0 / pr))
    return np.where((pr > 0).all(axis=0), freq, _GH3_W @ pr)


def price_columns(price, price_ts, now, t0s, column_ms, band_cents, max_bands, sigma,
                  edge_bp=500, tick_ms=0.0, sigma_sd=0.0, wait_from=None, tick_sd_ms=None,
                  sigma_floor=0.0, window_vr=1.0):
    """{t0: {lo: mult}} of the offered cells of every column in ``t0s``.

    ``sigma`` is the estimate (``Volatility.estimate``) and ``sigma_floor``
    the least sigma the market is priced for (``Volatility.floor``): a bound
    on the true sigma, not on the estimate. Clipping the estimate at the
    floor priced a feed just above it as if every low estimate were the
    floor's own (the 30 %/yr sim, the floor 28 %, returned 0.90 in its
    10-99.99x bucket); here only the values of the estimate's error below
    the floor are taken as the floor.

    ``price`` is the last tick (at ``price_ts``); ``tick_ms`` the feed's
    mean tick interval and ``tick_sd_ms`` the spread of its gaps
    (``Volatility.tick_sd_ms``; None: unknown, priced as a clock of random
    phase); ``sigma_sd`` the standard error of log(sigma)
    (``Volatility.log_sd``). ``wait_from`` overrides where the landing variance
    starts (``now`` gives the plain closed form of ``column_multipliers``).

    ``now`` only matters once a column has started (``t0 < now``: its
    window is shorter): before, the window starts at ``t0`` and the landing
    variance runs from ``price_ts`` to ``t0``, so a column priced from a
    tick stays right until the next one (``_reprice`` keeps it that long).

    ``window_vr`` is the variance ratio at a few seconds against 1 s
    (``Volatility.horizon_ratio``, shrunk towards 1 by its own error): the
    window's path is priced at sigma sqrt(VR), the landing at sigma (its
    wait divided by VR below, so s1 is unchanged). A feed whose moves
    range further within a few seconds than their 1 s sigma says (the
    recording: +4-5 % at 2-3 s, none at 5-60 s) is priced for that within
    the window only; scaling the whole sigma over-corrects far cells
    (perf/README.md, stop 26). 1.0 prices exactly as without it.
    """
    if price <= 0 or band_cents <= 0 or max_bands < 0 or window_vr <= 0:
        raise ValueError("price > 0, band_cents > 0, max_bands >= 0, window_vr > 0")
    if window_vr != 1.0:
        vr_sd = math.sqrt(window_vr)
        sigma, sigma_floor = sigma * vr_sd, sigma_floor * vr_sd
    estimate, sigma = sigma, max(sigma, sigma_floor)
    base = price // band_cents * band_cents
    los = base + band_cents * np.arange(-max_bands, max_bands + 1)
    los = los[los >= 0]
    t0s = [t0 for t0 in t0s if t0 + column_ms > now]
    if not t0s or los.size == 0:
        return {t0: {} for t0 in t0s}
    origin = price_ts if wait_from is None else wait_from
    start = np.maximum(np.asarray(t0s, dtype=float), now)
    window = np.asarray(t0s, dtype=float) + column_ms - start
    mixes = phases(start - origin, window, tick_ms, tick_sd_ms if wait_from is None else None)
    if wait_from is not None:
        wait = np.maximum(start - origin, 0.0)
    else:
        wait = np.maximum(start - origin - mean_age(tick_ms, tick_sd_ms), 0.0)
        for i, mix in enumerate(mixes):
            if mix is not None:
                wait[i] = tick_ms * sum(w * j for w, j, _ in mix)
    if window_vr != 1.0:
        wait = wait / window_vr
    s1 = (sigma * np.sqrt(wait / 1000.0))[:, None]
    s2 = (sigma * np.sqrt(window / 1000.0))[:, None]
    with np.errstate(divide="ignore"):
        a = np.log(los / price)
    b = np.log((los + band_cents) / price)
    # A clock is walked at its period, random ticks at their gaps'
    # effective spacing (``_spacing``).
    walk = column_walks(mixes, window, tick_ms, tick_sd_ms)
    s2, delta = discrete_shift(s2, window[:, None], sigma, walk[:, None])
    shape = (len(t0s), los.size)
    # a, b per band and s1, s2, delta per column, combined by broadcasting
    # in each operation and picked per live cell below: the same values as
    # (columns, bands) arrays, without five np.broadcast_to (~4 µs each).
    # A band is touched at most as often as a continuous path reaches its
    # near edge before the window ends, 2 Phi(-edge / sY); where that bound
    # already earns the cap the exact terms cannot change it: skip them.
    edge = np.where(a > 0.0, a, np.where(b < 0.0, -b, 0.0))
    # sigma is an estimate: price the mean probability over its error
    # (log-normal, 3-point Gauss-Hermite). The touch chance of a far cell
    # is convex in sigma, so pricing at the point estimate alone would pay
    # the noise of the estimate back to the players in far cells.
    # The nodes sit around the unbiased log sigma: the EWMA of squared
    # returns is unbiased for the variance, so its log is low by about
    # var(log var) / 2 and log sigma by sigma_sd^2 (0.3 % at the default
    # 60 s half-life, which far cells feel ten times over).
    # Nodes under the floor are values the true sigma is taken never to have.
    scales = np.exp(_GH3_X * sigma_sd + sigma_sd * sigma_sd)
    if sigma > 0:
        scales = np.maximum(estimate * scales, sigma_floor) / sigma
    sy = np.sqrt(s1 * s1 + s2 * s2) * scales[-1]
    with np.errstate(all="ignore"):
        bound = 2.0 * phi(np.where(sy > 0, -edge / sy, -np.inf))
    live = (edge <= 0.0) | (bound > (10000 - edge_bp) / (100.0 * _MAX_MULT))
    rows, cols = np.nonzero(live)
    n = rows.size
    al, bl = a[cols], b[cols]
    if tick_ms > 0 and (window / walk).max() < MAX_STEPS + 1:
        pr = _few_ticks(live, al, bl, window, wait, sigma * scales, walk, mixes)
    else:
        s1l, s2l, dl = s1[:, 0][rows], s2[:, 0][rows], delta[:, 0][rows]
        s1s = np.concatenate([s1l * c for c in scales])
        args = (np.tile(al, 3), np.tile(bl, 3), s1s, np.concatenate([s2l * c for c in scales]),
                np.concatenate([dl * c for c in scales]))
        if (s1s <= 0.0).any():
            pr = touch_probabilities(*args)
        else:                  # every column waits (the usual case): no masks needed
            pr = np.clip(_touch_after_wait(*args), 0.0, 1.0)
        pr = pr.reshape(3, n)
    p = np.zeros(shape)
    p[live] = _estimate_aware(pr)
    m = multipliers(p.ravel(), edge_bp).reshape(shape)
    lo_list = los.tolist()
    out = {}
    for t0, row in zip(t0s, m.tolist()):
        out[t0] = {lo: mm for lo, mm in zip(lo_list, row) if mm}
    return out


def _few_ticks(live, a, b, window, wait, sigmas, walk, mixes):
    """(len(sigmas), live cells) touch chances of the walk the Resolver sees
    when a window holds few ticks (``_discrete``): one curve (or one mix of
    whole-tick curves, for a clock-like feed) per column, shared by the
    sigma nodes (wait / dt does not depend on sigma); ``walk`` is each
    column's tick spacing (``_spacing.column_walks``)."""
    rows = np.nonzero(live)[0]
    sigmas = np.asarray(sigmas)[:, None]
    pr = np.empty((sigmas.shape[0], rows.size))
    for i in np.unique(rows):
        sel = rows == i
        h = sigmas * math.sqrt(walk[i] / 1000.0)
        if mixes[i] is not None:
            pr[:, sel] = mixture_touch(mixes[i], a[sel][None, :], b[sel][None, :], h)
            continue
        curve = column_curve(window[i] / walk[i], wait[i] / walk[i])
        pr[:, sel] = touch_from_curve(curve, a[sel][None, :], b[sel][None, :], h)
    return pr

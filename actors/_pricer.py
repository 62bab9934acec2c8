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
import functools
import math

import numpy as np

from . import _bvn
from ._bvn import Correlations, bvn_upper, phi
from ._erfc import erfc
from ._discrete import MAX_STEPS, column_curve, mixture_touch, touch_from_curve
from ._odds import _MAX_MULT, multiplier
from ._spacing import BGK_BETA, column_walks, discrete_shift, mean_age, phases

__all__ = ["touch_probabilities", "window_touch", "multipliers", "price_columns", "BGK_BETA",
           "bvn_upper", "erfc", "phi"]

_SQRT2 = math.sqrt(2.0)
# Gauss-Hermite, 3 points, for E f(Z), Z ~ N(0, 1).
_GH3_X = np.array([-math.sqrt(3.0), 0.0, math.sqrt(3.0)])
_GH3_W = np.array([1 / 6, 2 / 3, 1 / 6])

# 2 Phi(z) under this z is below 1e-13 (_odds._NEGLIGIBLE): the term cannot move a multiplier.
_Z_NEGLIGIBLE = -7.55


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
    """The chance of cells whose window starts after a wait (s1 > 0), each its own group."""
    cells = np.arange(a.size)
    return _touch_cells(a, b, cells, s1, s2, delta, cells)


def _touch_cells(a, b, bi, s1, s2, delta, gi):
    """``_touch_after_wait`` of cells given by band ``bi`` (a, b per band)
    and group ``gi`` (s1 > 0, s2, delta per group: a column at a sigma
    node). The correlation of both crossing terms is the group's, so
    ``Correlations`` does its per-r work once a group, not once a cell."""
    with np.errstate(all="ignore"):
        sy = np.sqrt(s1 * s1 + s2 * s2)
        corr = Correlations(-(s1 / sy))
        s2_pos = (s2 > 0)[gi]
        a, b, dl = a[bi], b[bi], delta[gi]
        s1, sy = s1[gi], sy[gi]
        qa, qb = a / s1, b / s1           # -a / s1 is -(a / s1): negation is exact
        # Start inside the band; subtract the far tail to keep precision.
        pos = a > 0.0
        land_args = [np.where(pos, -qa, qb), np.where(pos, -qb, qa)]
        ka, kb = (a + dl) / sy, (b - dl) / sy
        up = np.isfinite(a) & s2_pos & (np.minimum(qa, -ka) > _Z_NEGLIGIBLE)
        down = s2_pos & (np.minimum(-qb, kb) > _Z_NEGLIGIBLE)
        # Both crossings in one bivariate pass.
        h = np.concatenate([-qa[up], qb[down]])
        k = np.concatenate([ka[up], -kb[down]])
        parts = None
        if h.size:
            parts, bvn_args = _bvn.prepare(h, k, np.concatenate([gi[up], gi[down]]), corr)
            land_args += bvn_args
        # Every Phi of the pass in one erfc call (the landing term's and the
        # bivariate terms'): the same values, a third of the calls.
        phis = _bvn.phis(*land_args)
        p = phis[0] - phis[1]
        if parts is not None:
            v = 2.0 * _bvn.finish(parts, phis[2:])
            nu = int(np.count_nonzero(up))
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
    with np.errstate(all="ignore"):
        return _price(price, price_ts, now, t0s, column_ms, band_cents, los, estimate, sigma,
                      edge_bp, tick_ms, sigma_sd, wait_from, tick_sd_ms, sigma_floor, window_vr)


def _price(price, price_ts, now, t0s, column_ms, band_cents, los, estimate, sigma, edge_bp,
           tick_ms, sigma_sd, wait_from, tick_sd_ms, sigma_floor, window_vr):
    """``price_columns`` past its checks, under one errstate (a pass is
    ~100 array operations; entering an errstate is ~2 µs)."""
    origin = price_ts if wait_from is None else wait_from
    t0_arr = np.asarray(t0s, dtype=float)
    start = np.maximum(t0_arr, now)
    window = t0_arr + column_ms - start
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
    # Per column (s1, s2, delta) and per band (a, b): a cell is one of each.
    s1 = sigma * np.sqrt(wait / 1000.0)
    s2 = sigma * np.sqrt(window / 1000.0)
    a = np.log(los / price)
    b = np.log((los + band_cents) / price)
    # A clock is walked at its period, random ticks at their gaps'
    # effective spacing (``_spacing``).
    walk = column_walks(mixes, window, tick_ms, tick_sd_ms)
    s2, delta = discrete_shift(s2, window, sigma, walk)
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
    live = _live(a, b, np.sqrt(s1 * s1 + s2 * s2) * scales[-1], edge_bp)
    rows, cols = np.nonzero(live)
    n = rows.size
    if tick_ms > 0 and (window / walk).max() < MAX_STEPS + 1:
        pr = _few_ticks(live, a[cols], b[cols], window, wait, sigma * scales, walk, mixes)
    else:
        # The cells at every sigma node, node by node: a group is (node,
        # column), its s1, s2 and delta the column's times the node's scale.
        s1s, s2s, ds = (np.multiply.outer(scales, v).ravel() for v in (s1, s2, delta))
        gi = (rows + len(t0s) * np.arange(3)[:, None]).ravel()
        if (s1s[gi] <= 0.0).any():
            bands = np.tile(cols, 3)
            pr = touch_probabilities(a[bands], b[bands], s1s[gi], s2s[gi], ds[gi])
        else:                  # every column waits (the usual case): no masks needed
            pr = np.clip(_touch_cells(a, b, np.tile(cols, 3), s1s, s2s, ds, gi), 0.0, 1.0)
        pr = pr.reshape(3, n)
    p = np.zeros(live.shape)
    p[live] = _estimate_aware(pr)
    m = multipliers(p.ravel(), edge_bp).reshape(live.shape)
    lo_list = los.tolist()
    out = {}
    for t0, row in zip(t0s, m.tolist()):
        # a column's cells are all offered but for the odd one near the price
        out[t0] = dict(zip(lo_list, row)) if 0 not in row else {
            lo: mm for lo, mm in zip(lo_list, row) if mm}
    return out


def _live(a, b, sy, edge_bp):
    """(columns, bands): the cells whose exact chance is needed.

    A band is touched at most as often as a continuous path reaches its
    near edge before the window ends, 2 Phi(-edge / sY) at the highest
    sigma node; where that bound already earns the cap the exact terms
    cannot change it. The bound is erfc(edge / sY / sqrt 2), a monotone
    function of x = edge / sY: ``_bound_cut`` gives x below which it is
    surely above the cap's chance and above which surely not, so only the
    cells between (if any) take an erfc; the set is the one the bound
    computed cell by cell gives."""
    edge = np.where(a > 0.0, a, np.where(b < 0.0, -b, 0.0))
    cap = (10000 - edge_bp) / (100.0 * _MAX_MULT)
    x = edge / sy[:, None]
    x_live, x_dead = _bound_cut(cap)
    inside = edge <= 0.0
    live = inside | (x <= x_live)
    unsure = ~(live | (x >= x_dead))
    if unsure.any():
        sy_u = np.broadcast_to(sy[:, None], x.shape)[unsure]
        edge_u = np.broadcast_to(edge, x.shape)[unsure]
        live[unsure] = 2.0 * phi(np.where(sy_u > 0, -edge_u / sy_u, -np.inf)) > cap
    return live


@functools.lru_cache(maxsize=16)
def _bound_cut(cap):
    """(x_live, x_dead): erfc(x / sqrt 2), as ``erfc`` computes it, is above
    ``cap`` for every x <= x_live and not above it for every x >= x_dead.

    erfc is decreasing and ``erfc`` is within 1e-14 of it relatively
    (``tests/actors/test_pricer_passes.py``); the two cuts sit 1e-6 either
    side of the crossing, where erfc differs from ``cap`` by ~1e-5
    relatively (checked below with 1e-8 to spare), so no rounding of x
    or of erfc can put a cell on the wrong side. A cap erfc cannot cross
    cleanly gives (-inf, inf): every cell takes the exact bound."""
    if not 1e-300 < cap < 1.0:
        return -math.inf, math.inf
    lo, hi = 0.0, 60.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if math.erfc(mid / _SQRT2) > cap:
            lo = mid
        else:
            hi = mid
    x_live, x_dead = lo * (1 - 1e-6), hi * (1 + 1e-6)
    e_live, e_dead = erfc(np.array([x_live, x_dead]) / _SQRT2)
    if not (e_live >= cap * (1 + 1e-8) and e_dead <= cap * (1 - 1e-8)):
        return -math.inf, math.inf
    return x_live, x_dead


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

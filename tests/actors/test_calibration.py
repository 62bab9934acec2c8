"""Calibration: a multiplier keeps its promise on the path the Resolver judges.

A seeded sim feed drives the pricer's own online Volatility; once per 5 s
window, at a random moment between the horizon and the lock, the window's
column is priced by the Market's pricer (``price_columns``, as
``price_grid`` calls it) and every offered cell within 12 bands of the
last tick is bet on 32 independent futures of the sim from that tick (its
own step law, on its own clock); the Resolver's ``path_of`` and
``touches`` settle each. Standard errors are clustered by blocks of 40
consecutive pricings (sigma's error lasts a few of its EWMA's half-lives).

The promise is checked per multiplier bucket, not only overall: the
uncapped RTP must be 0.95 +- 0.01 and every bucket with 1,000 bets or more
within 0.95 +- 0.03 (or 3 s.e., for the smallest buckets), with enough bets
that the buckets from 3x up (most bets) have an s.e. near 0.01: +- 0.03 is
three of them, not a tolerance any model passes. The touch model is judged
with the sim's own sigma (no estimation error); the whole pricer with its
EWMA sigma, whose error is shared by neighbouring windows (clusters of 40).

Feeds: ticks every 250 ms or 100 ms with each window at its own phase, and
ticks every 1000 ms on one clock for the whole run, as a live process has
(every window sees its last tick before t0 the same 50 ms early). A pricer
that prices the mean phase instead of the clock's, or a wrong sigma, must
fail the same checks; so must a sim just above sigma's floor priced with
the estimate clipped at the floor (the floor bounds the true sigma, not
its estimate).
"""
import bisect
import math
import random

import numpy as np
import pytest

from actors import MULT_BUCKETS, Config, SimFeed, Volatility, path_of, payout_for, touches
from actors import _spacing
from actors._pricer import price_columns

BUCKETS = tuple((lo, hi) for _, lo, hi in MULT_BUCKETS[:-1])   # capped cells aside
STAKE = 100
TICK_MS = 250


def play(events, sigma_scale=1.0, seed=20261202, branches=32, tick_ms=TICK_MS, lag_ms=None,
         clock=True, sigma_known=False, annual_vol=None, floor_bounds_estimate=False,
         half_life_s=60.0):
    """{event: {bucket: [bets, payout]}} of ``events`` pricings, one per window.

    ``lag_ms`` None: every window at its own phase against the ticks; else
    ticks on one clock, the last before every t0 ``lag_ms`` early.
    ``clock=False`` withholds the gaps' spread from the pricer (it then
    prices the mean phase). ``sigma_known``: price with the sim's own sigma
    (no estimation error: the touch model alone is judged)."""
    cfg = Config()
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    feed = SimFeed(seed=seed, interval_ms=tick_ms, annual_vol=annual_vol)
    step_mu, step_sd = feed._mu, feed._sigma     # the sim's own step law
    col, band, lock, horizon = cfg.column_ms, cfg.band_cents, cfg.lock_ms, cfg.horizon_ms
    start = 1_750_000_000_000
    first = start + 600_000 + horizon        # 10 minutes for sigma to settle
    if lag_ms is None:
        # Each window at its own phase against the ticks (a whole number of
        # ticks per column would otherwise give every window the same one).
        t0s = [first + i * col + rng.randrange(tick_ms) for i in range(events)]
    else:
        t0s = [first + i * col for i in range(events)]
        start += tick_ms - lag_ms
    ticks = [(ts, feed.next_price()) for ts in range(start, t0s[-1] + col, tick_ms)]
    times = [t for t, _ in ticks]
    # One pricing per window, at a roll (100 ms) between the horizon and the lock.
    plan = sorted((t0 - rng.randrange((lock + 100) // 100, horizon // 100) * 100, t0)
                  for t0 in t0s)
    vol = Volatility(half_life_s=half_life_s, initial_tick_ms=cfg.tick_interval_ms)
    stale_after = 2 * cfg.tick_interval_ms
    i = 0
    out = {}
    for now, t0 in plan:
        while i < len(ticks) and times[i] <= now:
            vol.update(ticks[i][1], ticks[i][0])
            i += 1
        ts, price = ticks[i - 1]
        sigma, sigma_sd, floor = (step_sd / math.sqrt(tick_ms / 1000), 0.0, 0.0) \
            if sigma_known else (vol.estimate, vol.log_sd, vol.floor)
        if floor_bounds_estimate:
            sigma, floor = vol.sigma, 0.0         # the floor clips the estimate (the old pricer)
        cells = price_columns(price, ts, now, [t0], col, band, cfg.max_bands,
                              sigma * sigma_scale, cfg.edge_bp, vol.tick_ms,
                              sigma_sd, tick_sd_ms=vol.tick_sd_ms if clock else None,
                              sigma_floor=floor)[t0]
        offered = _offered(cells, price, band)
        # Independent futures from the last tick (what the pricer knows), each
        # a window the Resolver settles: more windows per pricing, same law.
        steps = (t0 + col - ts) // tick_ms
        tick_ts = [ts + tick_ms * (n + 1) for n in range(steps)]
        logp = math.log(price) + np.cumsum(
            nprng.normal(step_mu, step_sd, (branches, steps)), axis=1)
        prices = np.maximum(1, np.rint(np.exp(logp))).astype(np.int64).tolist()
        lo_i = max(0, bisect.bisect_left(tick_ts, t0) - 1)
        row = out.setdefault(now, {})
        for path in prices:
            seen = [(ts, price)] if lo_i == 0 else []
            seen += list(zip(tick_ts[lo_i:], path[lo_i:]))
            _settle(row, offered, seen, t0, col, stale_after, band)
    return out


def _bucket(mult):
    return next(x for x, (a, c) in enumerate(BUCKETS) if a <= mult < c)


def _offered(cells, price, band):
    """The cells within 12 bands of the price, with their buckets (the capped 100x aside)."""
    base = price // band * band
    offered = [(base + n * band, cells.get(base + n * band)) for n in range(-12, 13)]
    return [(lo, m, _bucket(m)) for lo, m in offered if m is not None and m < 10000]


def _settle(row, offered, path, t0, col, stale_after, band):
    """Every offered cell bet on ``path``, settled by the Resolver's rule into ``row``'s buckets."""
    low, high, _ = path_of(path, t0, t0 + col, stale_after)
    for lo, mult, b in offered:
        cell = row.setdefault(b, [0, 0])
        cell[0] += 1
        if touches(lo, band, low, high):
            cell[1] += payout_for(STAKE, mult)


# Pricings share sigma's error for a few of its EWMA's half-lives (60 s):
# 40 consecutive windows (200 s) make one cluster, so the s.e. counts the
# independent sigma errors, not the windows.
BLOCK = 40


def rtp(per_window, buckets=None):
    """(RTP, s.e. clustered by blocks of BLOCK consecutive pricings, bets)."""
    blocks = {}
    for k, now in enumerate(sorted(per_window)):
        row = per_window[now]
        n = sum(v[0] for b, v in row.items() if buckets is None or b in buckets)
        pay = sum(v[1] for b, v in row.items() if buckets is None or b in buckets)
        c = blocks.setdefault(k // BLOCK, [0, 0])
        c[0] += n * STAKE
        c[1] += pay
    clusters = [c for c in blocks.values() if c[0]]
    stake = sum(s for s, _ in clusters)
    if not stake:
        return float("nan"), float("nan"), 0
    r = sum(p for _, p in clusters) / stake
    g = len(clusters)
    if g < 2:
        return r, float("nan"), stake // STAKE
    se = math.sqrt(g / (g - 1) * sum((p - r * s) ** 2 for s, p in clusters)) / stake
    return r, se, stake // STAKE


def broken_promises(per_window):
    """What the check finds wrong: [] when the promise is kept. A bucket is
    off when it misses 0.95 by more than 0.03 and by more than 3 s.e. (a
    bucket of a few thousand bets cannot be pinned to 0.03)."""
    out = []
    r, se, _ = rtp(per_window)
    if abs(r - 0.95) > 0.01:
        out.append(f"uncapped RTP {r:.4f} +- {se:.4f}, not 0.95 +- 0.01")
    for b, (lo, hi) in enumerate(BUCKETS):
        rb, seb, n = rtp(per_window, {b})
        if n >= 1000 and abs(rb - 0.95) > max(0.03, 3 * seb):
            out.append(f"bucket {lo / 100:.2f}-{hi / 100:.2f}x: RTP {rb:.4f} +- {seb:.4f} "
                       f"over {n} bets, not 0.95 +- 0.03")
    return out


def far_errors(per_window):
    """The s.e. of the three buckets from 3x up (most of the bets, and the
    ones a wrong model moves most)."""
    return [rtp(per_window, {b})[1] for b in (3, 4, 5)]


@pytest.mark.parametrize("tick_ms,lag_ms,events", [
    (250, None, 2000),     # 20 ticks a window, each window at its own phase
    (1000, 50, 2000),      # 5 ticks, one clock: the last tick 50 ms before every t0
    (100, None, 2000),     # 50 ticks: the shifted closed form, not the grid walk
])
def test_the_touch_model_keeps_the_promise_in_every_bucket(tick_ms, lag_ms, events):
    played = play(events, tick_ms=tick_ms, lag_ms=lag_ms, sigma_known=True)
    r, se, n = rtp(played)
    assert n > 500_000 and se < 0.005, (n, se)
    assert max(far_errors(played)) < 0.013
    assert broken_promises(played) == []


def test_pricing_the_mean_phase_breaks_it():
    # The same clock priced as if its ticks fell anywhere (the previous
    # model): right on average over phases, wrong for this one.
    wrong = broken_promises(play(2000, tick_ms=1000, lag_ms=50, sigma_known=True, clock=False))
    assert any("bucket" in x for x in wrong), wrong


def test_multipliers_keep_their_promise_with_sigma_estimated():
    # The pricer's own sigma (EWMA, its error priced): blocks of 40
    # pricings are the clusters, so the far buckets' s.e. is ~0.015 here.
    played = play(3000)
    r, se, n = rtp(played)
    assert n > 1_000_000 and se < 0.008, (n, se)
    assert broken_promises(played) == []


def test_a_wrong_sigma_breaks_the_promise():
    # 15 % under the truth: far cells look rarer than they are and pay too much.
    low = broken_promises(play(1000, sigma_scale=0.85, sigma_known=True))
    assert low and any("bucket" in x for x in low), low
    # 15 % over: the house keeps more than its edge.
    high = broken_promises(play(1000, sigma_scale=1.15, sigma_known=True))
    assert any("uncapped RTP" in x for x in high), high


def test_a_feed_just_above_the_floor_keeps_the_promise():
    # The sim at 30 %/yr, the floor at ~28 %: its estimate dips under the
    # floor a tenth of the time. Priced with the floor as a bound on the
    # true sigma (only the estimate's error below it is lifted to it) the
    # promise holds; clipping the estimate itself at the floor, as the
    # pricer did, keeps ~2 % more than the edge. Sigma from every tick is
    # too precise at 100 ms for the floor to matter (log_sd ~0.018); a 6 s
    # half-life gives it the error the 1 s EWMA had (0.054), where it does.
    assert broken_promises(play(3000, tick_ms=100, annual_vol=0.3)) == []
    assert broken_promises(play(3000, tick_ms=100, annual_vol=0.3, half_life_s=6.0)) == []
    clipped = broken_promises(play(3000, tick_ms=100, annual_vol=0.3, floor_bounds_estimate=True,
                                   half_life_s=6.0))
    assert any("uncapped RTP" in x for x in clipped), clipped


def play_irregular(events, shape=2.0, gap_ms=250, annual_vol=0.6, seed=20261203, branches=32):
    """``play``'s windows on a feed whose ticks fall at random: gaps drawn
    from a gamma law of ``shape`` (cv 1 / sqrt(shape): 0.71 at 2, near the
    recorded sample's 0.62) and mean ``gap_ms``, each tick's log return
    Gaussian with variance sigma^2 x its gap. Priced with the true sigma
    (the touch model alone). Each window's futures share the path up to
    the first tick after the pricing (the tap came in that gap: it is the
    one a random moment falls in) and are independent after it."""
    cfg = Config()
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    sigma = annual_vol / math.sqrt(365.25 * 86400)
    col, band, lock, horizon = cfg.column_ms, cfg.band_cents, cfg.lock_ms, cfg.horizon_ms
    start = 1_750_000_000_000
    first = start + 600_000 + horizon
    t0s = [first + i * col for i in range(events)]
    span = t0s[-1] + col - start + 2 * horizon
    gaps = np.maximum(1, np.rint(nprng.gamma(shape, gap_ms / shape, int(span / gap_ms * 1.2))))
    times = (start + np.cumsum(gaps)).astype(np.int64)
    logp = math.log(6_000_000) + np.cumsum(nprng.normal(0.0, sigma * np.sqrt(gaps / 1000.0)))
    ticks = list(zip(times.tolist(), np.rint(np.exp(logp)).astype(np.int64).tolist()))
    plan = sorted((t0 - rng.randrange((lock + 100) // 100, horizon // 100) * 100, t0)
                  for t0 in t0s)
    vol = Volatility(initial_tick_ms=cfg.tick_interval_ms)     # for the gaps' mean and spread
    stale_after = 2 * cfg.tick_interval_ms
    i = 0
    out = {}
    for now, t0 in plan:
        while ticks[i][0] <= now:
            vol.update(ticks[i][1], ticks[i][0])
            i += 1
        ts, price = ticks[i - 1]
        cells = price_columns(price, ts, now, [t0], col, band, cfg.max_bands, sigma,
                              cfg.edge_bp, vol.tick_ms, 0.0, tick_sd_ms=vol.tick_sd_ms)[t0]
        offered = _offered(cells, price, band)
        nxt_ts, nxt = ticks[i]
        steps = int((t0 + col - nxt_ts) / gap_ms * 1.5) + 40
        g = np.maximum(1, np.rint(nprng.gamma(shape, gap_ms / shape, (branches, steps))))
        fts = (nxt_ts + np.cumsum(g, axis=1)).astype(np.int64)
        flp = math.log(nxt) + np.cumsum(nprng.normal(0.0, sigma * np.sqrt(g / 1000.0)), axis=1)
        fp = np.rint(np.exp(flp)).astype(np.int64)
        row = out.setdefault(now, {})
        for ft, fpr in zip(fts.tolist(), fp.tolist()):
            assert ft[-1] >= t0 + col
            path = [(ts, price), (nxt_ts, nxt)] + list(zip(ft, fpr))
            _settle(row, offered, path, t0, col, stale_after, band)
    return out


def test_ticks_at_random_keep_the_promise(monkeypatch):
    # Irregular ticks reach a level less often than as many evenly spaced
    # ones: priced as a clock of their mean gap the house kept ~1.5 % more
    # than its edge on the recorded sample's gaps (perf/bench_odds.py,
    # replay-blocks-gauss, 0.938 +- 0.002); at the gaps' effective spacing
    # (_spacing.walk_ms) the promise holds. The mean gap must break it.
    played = play_irregular(2000)
    r, se, n = rtp(played)
    assert n > 500_000 and se < 0.005, (n, se)
    assert broken_promises(played) == []
    monkeypatch.setattr(_spacing, "walk_ms", lambda tick_ms, tick_sd_ms: tick_ms)
    wrong = broken_promises(play_irregular(2000))
    assert any("uncapped RTP" in x for x in wrong), wrong


def test_a_few_ticks_of_gap_statistics_keep_the_mean_gap(monkeypatch):
    # Three ticks seen (a sim paused after its first tick, then two pushed:
    # gaps of 5 s and 0.2 s) say cv > 1 of a 4.9 s mean gap; the effective
    # spacing would then be ~9 s, wider than the window, and price every
    # cell as far rarer than the mean gap does (tests/web/test_odds_tolerance
    # saw every multiplier jump on one $1 tick). A window keeps at least 4
    # ticks' worth of walk: here the mean gap's pricing, to the hundredth.
    args = (6_000_000, 0, 200, [10_000, 15_000], 5000, 1000, 6, 1e-4, 500, 4904.0, 0.05)
    guarded = price_columns(*args, tick_sd_ms=6000.0)
    monkeypatch.setattr(_spacing, "walk_ms", lambda tick_ms, tick_sd_ms: tick_ms)
    assert guarded == price_columns(*args, tick_sd_ms=6000.0)
    # and where the window holds many ticks the effective spacing is priced
    monkeypatch.undo()
    few = price_columns(6_000_000, 0, 200, [10_000], 5000, 1000, 6, 1e-4, 500, 262.0, 0.05,
                        tick_sd_ms=159.0)
    monkeypatch.setattr(_spacing, "walk_ms", lambda tick_ms, tick_sd_ms: tick_ms)
    mean = price_columns(6_000_000, 0, 200, [10_000], 5000, 1000, 6, 1e-4, 500, 262.0, 0.05,
                         tick_sd_ms=159.0)
    assert all(few[10_000][lo] >= mean[10_000][lo] for lo in mean[10_000])
    assert few != mean

"""Calibration: a multiplier keeps its promise on the path the Resolver judges.

A seeded sim feed (250 ms ticks) drives the pricer's own online Volatility;
once per 5 s window, at a random moment between the horizon and the lock,
the window's column is priced by the MarketMaker's pricer (``price_columns``,
as ``price_grid`` calls it) and every offered cell within 12 bands of the
last tick is bet on 32 independent futures of the sim from that tick (its
own step law); the Resolver's ``path_of`` and ``touches`` settle each.
Standard errors are clustered by pricing (its futures share its sigma).
The realised return to player of uncapped cells must be 0.95 +- 0.01, and no
bucket with 1,000 bets or more may return over 1.00; a pricer with a wrong
sigma must fail the same check.
"""
import bisect
import math
import random

import numpy as np

from actors import MULT_BUCKETS, Config, SimFeed, Volatility, path_of, payout_for, touches
from actors._pricer import price_columns

BUCKETS = tuple((lo, hi) for _, lo, hi in MULT_BUCKETS[:-1])   # capped cells aside
STAKE = 100
TICK_MS = 250


def play(events, sigma_scale=1.0, seed=20261202, branches=32):
    """{event: {bucket: [bets, payout]}} of ``events`` pricings, one per window."""
    cfg = Config()
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    feed = SimFeed(seed=seed, interval_ms=TICK_MS)
    step_mu, step_sd = feed._mu, feed._sigma     # the sim's own step law
    col, band, lock, horizon = cfg.column_ms, cfg.band_cents, cfg.lock_ms, cfg.horizon_ms
    start = 1_750_000_000_000
    first = start + 300_000 + horizon        # 5 minutes for sigma to settle
    # Each window at its own phase against the ticks (a whole number of
    # ticks per column would otherwise give every window the same one).
    t0s = [first + i * col + rng.randrange(TICK_MS) for i in range(events)]
    ticks = [(ts, feed.next_price()) for ts in range(start, t0s[-1] + col, TICK_MS)]
    times = [t for t, _ in ticks]
    # One pricing per window, at a roll (100 ms) between the horizon and the lock.
    plan = sorted((t0 - rng.randrange((lock + 100) // 100, horizon // 100) * 100, t0)
                  for t0 in t0s)
    vol = Volatility(initial_tick_ms=cfg.tick_interval_ms)
    stale_after = 2 * cfg.tick_interval_ms
    i = 0
    out = {}
    for now, t0 in plan:
        while i < len(ticks) and times[i] <= now:
            vol.update(ticks[i][1], ticks[i][0])
            i += 1
        ts, price = ticks[i - 1]
        cells = price_columns(price, ts, now, [t0], col, band, cfg.max_bands,
                              vol.sigma * sigma_scale, cfg.edge_bp, vol.tick_ms,
                              vol.log_sd)[t0]
        base = price // band * band
        offered = [(base + n * band, cells.get(base + n * band)) for n in range(-12, 13)]
        offered = [(lo, m, _bucket(m)) for lo, m in offered if m is not None and m < 10000]
        # Independent futures from the last tick (what the pricer knows), each
        # a window the Resolver settles: more windows per pricing, same law.
        steps = (t0 + col - ts) // TICK_MS
        tick_ts = [ts + TICK_MS * (n + 1) for n in range(steps)]
        logp = math.log(price) + np.cumsum(
            nprng.normal(step_mu, step_sd, (branches, steps)), axis=1)
        prices = np.maximum(1, np.rint(np.exp(logp))).astype(np.int64).tolist()
        lo_i = max(0, bisect.bisect_left(tick_ts, t0) - 1)
        row = out.setdefault(now, {})
        for path in prices:
            seen = [(ts, price)] if lo_i == 0 else []
            seen += list(zip(tick_ts[lo_i:], path[lo_i:]))
            low, high, _ = path_of(seen, t0, t0 + col, stale_after)
            for lo, mult, b in offered:
                cell = row.setdefault(b, [0, 0])
                cell[0] += 1
                if touches(lo, band, low, high):
                    cell[1] += payout_for(STAKE, mult)
    return out


def _bucket(mult):
    return next(x for x, (a, c) in enumerate(BUCKETS) if a <= mult < c)


def rtp(per_window, buckets=None):
    """(RTP, s.e. clustered by window, bets)."""
    clusters = []
    for row in per_window.values():
        n = sum(v[0] for b, v in row.items() if buckets is None or b in buckets)
        pay = sum(v[1] for b, v in row.items() if buckets is None or b in buckets)
        if n:
            clusters.append((n * STAKE, pay))
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
    """What the check finds wrong: [] when the promise is kept."""
    out = []
    r, se, _ = rtp(per_window)
    if abs(r - 0.95) > 0.01:
        out.append(f"uncapped RTP {r:.4f} +- {se:.4f}, not 0.95 +- 0.01")
    for b, (lo, hi) in enumerate(BUCKETS):
        rb, seb, n = rtp(per_window, {b})
        if n >= 1000 and rb > 1.0:
            out.append(f"bucket {lo / 100:.2f}-{hi / 100:.2f}x: RTP {rb:.4f} +- {seb:.4f} over {n} bets")
    return out


def test_multipliers_keep_their_promise():
    played = play(3000)
    r, se, n = rtp(played)
    assert n > 100_000 and se < 0.005, (n, se)
    assert broken_promises(played) == []


def test_a_wrong_sigma_breaks_the_promise():
    # 15 % under the truth: far cells look rarer than they are and pay too much.
    low = broken_promises(play(800, sigma_scale=0.85))
    assert low and any("bucket" in x for x in low), low
    # 15 % over: the house keeps more than its edge.
    high = broken_promises(play(800, sigma_scale=1.15))
    assert any("uncapped RTP" in x for x in high), high

"""Do the multipliers keep their promise? A calibration benchmark in compressed time.

Price paths come from the sim feed (``SimFeed``: many seeds, several
volatilities and tick rates; the first feed is the one ``make run``
serves, BTC's 60 %/yr every ``sim_interval_ms``) and from the recorded
ticks of ``actors/data/sample_ticks.csv``. Each path is played as the
server plays it, with no wall clock: every tick updates the pricer's own
online ``Volatility`` (as the Watchdog does); at random ticks a tap
arrives a random moment before the next tick and every open column is
priced from that tick exactly as the Column prices a tap (``price_columns``
with the live sigma, its error, the feed's tick spacing and its spread).
Every offered cell within ``--bands`` of the tick's price is bet on (a
random cell, summed over every choice) and settled with the Resolver's own
``path_of`` and ``touches``.

The sim's ticks keep a clock as a live process does (scheduled every
interval, each stamped a little late: ``--jitter-ms``), with a period a
little off the nominal one, so the phase of the ticks against the column
boundaries turns slowly and each window sees its own phase.

A sim pricing is settled on ``--futures`` independent futures of the path
from the priced tick (the sim's own step law on the path's own clock):
one path's big move decides every far cell of a minute of columns, noise
that futures average away where only many more hours of path would. The
pricer's sigma is learnt from the path itself, so its error, which far
cells feel most and which lasts a few EWMA half-lives, is what it is live:
standard errors are clustered by 200 s blocks of a path (each block's
pricings share that error), with the per-pricing ("window") clustering
beside them. The plain replays of recorded ticks are settled on the path
itself; the bootstrap on futures of its own (below).

Reported per multiplier bucket, overall and per feed: bets, clusters, the
realised win rate against the implied one ((1 - edge) / mult), the return
to player (payouts / stakes), and the pricer's sigma against the path's
realised sigma, and the variance ratio at 2.5 s the pricer's Volatility
learnt and priced into the window (``Volatility.horizon_ratio``, perf/README.md stop 26).
``--sigma true`` prices the sim with its own sigma and the
replay with its realised one, held constant (the touch model alone, no
estimation error).

Recorded ticks. ``actors/data/sample_ticks.csv`` is 685 ticks over 180 s
(gaps of 40-640 ms, mean 262, cv 0.62; moves Gaussian for their gaps;
lag-1 autocorrelation +0.03) that fall $175.75, 1.3 s.d. of its own moves:
one path, whose trend is a draw, not a property of the feed. Replays:

- ``replay``: the recording pass after pass, alternating forward,
  time-reversed, mirrored and both, each pass continuing from the price
  the previous one ended on (``ReplayFeed`` jumps back to the first price
  instead, a $175 move no pricer should see). Every pass repeats the same
  three minutes, the fall kept for two passes (six minutes) at a time:
  its s.e. counts the windows, not the few independent moves it has, and
  the repeated trend pays far cells a driftless pricer cannot and should
  not price (perf/README.md, stop 23: 0.97; 1.01 at ``--sigma true``).
- ``replay-detrended``: the same passes less the recording's mean drift
  over every gap (the trend removed, every move's shape, spacing and
  order kept). Still one path repeated: a second draw, not a measurement.
- ``replay-blocks``: the measurement. A stationary block bootstrap
  (``BlockBootstrap``) of the detrended recording: each tick is a recorded
  (gap, return) pair; blocks start at a random tick, run forward or
  backward, keep or flip their returns' sign, and last a geometric number
  of ticks (``--block-s``, 5 s, on average); within a block the
  recording's gaps, moves and their dependence are kept; across blocks no
  trend is. Each pricing is settled on ``--futures`` continuations of the
  chain from the tick after the tap (the path's own: the tap came in that
  gap), so the outcome noise averages as the sim's does, and every path is
  independent (``--blocks-hours`` x ``--hours`` of them, 200 s clusters).
  Detrended because a block of L seconds keeps the drift mu over it and a
  random sign turns those into a random walk of block trends: +mu^2
  E[L^2] / E[L] of variance, +9 % at 5 s for the sample
  (``replay-blocks-drift`` keeps it, to show it).
- ``replay-blocks-gauss``: the bootstrap's gaps with Gaussian returns of
  the recording's sigma: its clock alone (irregular ticks) against the sim's.
- ``replay-blocks-clock``: the recorded moves, each scaled to the mean gap,
  on an even clock of it: their dependence alone, without the clock.

``ar:RHO:VOL:MS``: the sim's clock with AR(1) tick returns (``ar_ticks``):
dependence between neighbouring moves by a known law at a known long-run
sigma (``--sigma true`` prices that sigma).

``--sigma true`` prices replays at their tick-level realised sigma held
constant; where returns are autocorrelated (the recording's +0.03) that
is not the variance rate a minute feels (1 + 2 rho of it), which the
pricer's kernel estimator is. A features table (mean gap, cv, sigma, lag-1
autocorrelation, kurtosis of gap-standardised returns, variance ratios at
10 s and 60 s, drift) sets each feed beside the recording.

    python perf/bench_odds.py                       # ~2.5 min on a quiet box
    python perf/bench_odds.py --feeds make-run --hours 1
"""
import argparse
import bisect
import json
import math
import os
import random
import sys
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from actors import (MULT_BUCKETS, Config, SimFeed, Volatility, open_columns,  # noqa: E402
                    path_of, payout_for, price_columns, touches)
from actors.feeds import SAMPLE_TICKS, load_ticks  # noqa: E402

BUCKETS = MULT_BUCKETS    # the last one is the capped 100x
CAPPED = len(BUCKETS) - 1
T_START = 1_750_000_000_000
STAKE = 100
_MS_PER_YEAR = 365.25 * 24 * 3600 * 1000
BLOCK_MS = 200_000        # sigma's error lasts a few of its EWMA's 60 s half-lives


def bucket_of(mult):
    for i, (_, lo, hi) in enumerate(BUCKETS):
        if lo <= mult < hi:
            return i
    raise ValueError(mult)


def sim_ticks(seed, interval_ms, annual_vol, seconds, jitter_ms):
    """The sim's prices on a live process's clock: tick k is scheduled at
    k periods from a random start, the period off the nominal one by up to
    0.05 % (the phase against the columns turns by a tick every few
    minutes), and each is stamped an exponential ``jitter_ms`` late (the
    loop was busy); one price per ms, as the Watchdog keeps it."""
    r = random.Random(seed)
    feed = SimFeed(seed=seed, interval_ms=interval_ms, annual_vol=annual_vol)
    period = interval_ms * (1.0 + r.uniform(-5e-4, 5e-4))
    start = T_START + r.random() * interval_ms
    out = []
    last = -1
    for k in range(int(seconds * 1000 // interval_ms)):
        ts = int(start + k * period + (r.expovariate(1.0 / jitter_ms) if jitter_ms > 0 else 0.0))
        ts = max(ts, last + 1)
        last = ts
        out.append((ts, feed.next_price()))
    return out


def ar_ticks(seed, rho, interval_ms, annual_vol, seconds, jitter_ms):
    """``sim_ticks``' clock with AR(1) tick returns: r_k - mu = rho (r_(k-1) -
    mu) + e_k, the innovations' s.d. (1 - rho) x the sim's step so that the
    long-run variance (over many ticks) is the sim's: a feed whose
    neighbouring moves are dependent, by a known law, at a known sigma.
    The tick-level variance is (1 - rho) / (1 + rho) of it, and the lag-1
    kernel gamma0 + 2 gamma1 sees (1 - rho)(1 + 2 rho) / (1 + rho) of it
    (0.89 at rho 0.3, whose long-run sigma it prices 6 % low).
    Returns the ticks and the return into each tick (the chain's state)."""
    clock = sim_ticks(seed, interval_ms, annual_vol, seconds, jitter_ms)
    mu, sd = sim_step(annual_vol, interval_ms)
    e = np.random.default_rng(seed).normal(0.0, sd * (1.0 - rho), len(clock))
    rets = np.empty(len(clock))
    prev = 0.0
    for k in range(len(clock)):
        prev = rets[k] = rho * prev + e[k]
    rets[0] = 0.0
    logp = math.log(clock[0][1]) + np.cumsum(rets + mu)
    prices = np.maximum(1, np.rint(np.exp(logp))).astype(np.int64).tolist()
    return [(ts, p) for (ts, _), p in zip(clock, prices)], rets


def ar_futures(nprng, rho, mu, sd, last, n, steps):
    """(n, steps) log-price increments continuing ``ar_ticks``' chain from
    a tick whose return (less mu) was ``last``."""
    e = nprng.normal(0.0, sd * (1.0 - rho), (n, steps))
    prev = np.full(n, float(last))
    for k in range(steps):
        prev = e[:, k] = rho * prev + e[:, k]
    return np.cumsum(e + mu, axis=1)


def sim_step(annual_vol, interval_ms):
    """(mu, sd) of the sim's log return per tick (``SimFeed``'s own law)."""
    feed = SimFeed(seed=0, interval_ms=interval_ms, annual_vol=annual_vol)
    return feed._mu, feed._sigma


def _recorded(path=SAMPLE_TICKS, detrend=False):
    """The recording's first price and its (gaps in ms, log returns);
    ``detrend``: every return less the recording's mean drift over its gap
    (its linear trend removed; its moves, spacing and order kept)."""
    rec = load_ticks(path)
    gaps = [b.ts - a.ts for a, b in zip(rec, rec[1:])]
    rets = [math.log(b.price / a.price) for a, b in zip(rec, rec[1:])]
    if detrend:
        mu = sum(rets) / sum(gaps)
        rets = [r - mu * g for g, r in zip(gaps, rets)]
    return rec[0].price, gaps, rets


def replay_ticks(seconds, path=SAMPLE_TICKS, detrend=False):
    """Recorded ticks, pass after pass (forward, reversed, mirrored, both),
    each continuing from the last price; the recorded spacing is kept
    (``detrend``: ``_recorded``'s)."""
    first, gaps, rets = _recorded(path, detrend)
    gap_ms = sorted(gaps)[len(gaps) // 2]
    out = [(T_START, first)]
    x = math.log(first)
    k = 0
    while out[-1][0] - T_START < seconds * 1000:
        g, r = (gaps, rets) if k % 2 == 0 else (gaps[::-1], rets[::-1])
        sign = -1.0 if (k // 2) % 2 else 1.0
        ts = out[-1][0] + gap_ms
        out.append((ts, out[-1][1]))       # the first tick of a pass repeats the last price
        for dt, dr in zip(g, r):
            ts += dt
            x += sign * dr
            out.append((ts, round(math.exp(x))))
        k += 1
    return out


class BlockBootstrap:
    """A stationary block bootstrap (Politis and Romano 1994) of recorded
    ticks: each step is one recorded (gap, log return) pair; blocks start
    at a random tick, run forward or backward (time-reversed), with their
    returns' sign kept or flipped (mirrored), all at random, and last a
    geometric number of ticks of mean ``block_ticks`` (wrapping round the
    recording). Inside a block the recording's order is kept (its gaps'
    rhythm, its returns' dependence, their joint law); across blocks no
    trend survives: the sign is a coin flip.

    The state is (tick, direction, sign); the next step depends on it
    alone, so ``fork`` gives independent futures with the right law from
    any point of a path (the Markov chain continued)."""

    def __init__(self, gaps, rets, block_ticks, rng, gauss_sigma=None):
        self.gaps, self.rets = gaps, rets
        self.p_new = 1.0 / block_ticks
        self.rng = rng
        # Gaussian returns of this sigma (per sqrt s) over the same gaps:
        # the recording's clock with the sim's moves.
        self.gauss_sigma = gauss_sigma
        self._new_block()

    def _new_block(self):
        r = self.rng
        self.j, self.d, self.s = r.randrange(len(self.gaps)), r.choice((1, -1)), r.choice((1.0, -1.0))

    @property
    def state(self):
        return self.j, self.d, self.s

    def fork(self, state, rng):
        """A chain at ``state`` drawing from ``rng``."""
        f = BlockBootstrap.__new__(BlockBootstrap)
        f.__dict__.update(self.__dict__)
        f.j, f.d, f.s = state
        f.rng = rng
        return f

    def step(self):
        """(gap ms, log return) of the next tick."""
        if self.rng.random() < self.p_new:
            self._new_block()
        else:
            self.j = (self.j + self.d) % len(self.gaps)
        g = self.gaps[self.j]
        if self.gauss_sigma is not None:
            return g, self.rng.gauss(0.0, self.gauss_sigma * math.sqrt(g / 1000.0))
        return g, self.s * self.rets[self.j]

    def extend(self, ts, x, until_ms):
        """Ticks (ts, price) from (ts, log price x) until ``until_ms``."""
        out = []
        while ts < until_ms:
            g, r = self.step()
            ts += g
            x += r
            out.append((ts, round(math.exp(x))))
        return out


def block_ticks(seconds, rng, block_s, gauss=False, detrend=True, path=SAMPLE_TICKS,
                clock=False):
    """A stationary block bootstrap path of the recording (``BlockBootstrap``,
    blocks of ``block_s`` seconds on average), from its first price; the
    chain that made it and its state at every tick (to fork futures from).
    ``detrend`` (the default): blocks of the detrended returns; a block of
    L seconds keeps the recording's drift mu over it, a random sign makes
    that a random walk of block trends, and the variance over a minute
    grows by mu^2 E[L^2] / E[L] (+9 % for the sample's drift, 5 s blocks)."""
    first, gaps, rets = _recorded(path, detrend)
    mean_gap = sum(gaps) / len(gaps)
    if clock:
        # Every move scaled to the mean gap, on an even clock of it: the
        # recorded moves' dependence without the recording's irregular ticks.
        g0 = round(mean_gap)
        rets = [r * math.sqrt(g0 / g) for g, r in zip(gaps, rets)]
        gaps = [g0] * len(gaps)
    sig = math.sqrt(sum(r * r for r in rets) / (sum(gaps) / 1000.0)) if gauss else None
    chain = BlockBootstrap(gaps, rets, max(1.0, block_s * 1000 / mean_gap), rng, sig)
    out = [(T_START, first)]
    states = [chain.state]
    x = math.log(first)
    while out[-1][0] - T_START < seconds * 1000:
        g, r = chain.step()
        x += r
        out.append((out[-1][0] + g, round(math.exp(x))))
        states.append(chain.state)
    return out, (chain, states)


def realised_sigma(ticks):
    s = sum(math.log(b / a) ** 2 for (_, a), (_, b) in zip(ticks, ticks[1:]))
    return math.sqrt(s / ((ticks[-1][0] - ticks[0][0]) / 1000))


def features(ticks):
    """What a feed's ticks are like, beside the recording's: mean gap (ms)
    and its coefficient of variation, realised sigma, the lag-1
    autocorrelation of tick returns, the excess kurtosis of returns
    standardised by their gap's sqrt (0 for Brownian motion seen at any
    clock), the variance over 10 s and 60 s against the tick-level one
    (1 without dependence or drift), and the path's drift in s.d. of its
    own moves."""
    ts = np.array([t for t, _ in ticks], dtype=float)
    lp = np.log(np.array([p for _, p in ticks], dtype=float))
    g, r = np.diff(ts), np.diff(lp)
    span = (ts[-1] - ts[0]) / 1000
    var = float((r * r).sum()) / span
    z = r / np.sqrt(g / 1000 * var)
    out = {"gap_ms": float(g.mean()), "gap_cv": float(g.std() / g.mean()),
           "sigma": math.sqrt(var), "acf1": float(np.corrcoef(r[:-1], r[1:])[0, 1]),
           "kurt": float((z ** 4).mean() / (z * z).mean() ** 2 - 3)}
    for h in (10, 60):
        idx = np.searchsorted(ts, np.arange(ts[0], ts[-1], h * 1000), side="right") - 1
        out[f"vr{h}"] = float((np.diff(lp[idx]) ** 2).mean() / (h * var))
    out["drift_sd"] = float((lp[-1] - lp[0]) / math.sqrt(var * span))
    return out


FEATURES = ("gap_ms", "gap_cv", "sigma", "acf1", "kurt", "vr10", "vr60", "drift_sd")


def features_table(by_feed):
    """{name: [features of each path]} as a markdown table of path means."""
    lines = ["| feed | paths | mean gap ms | gap cv | σ /√s | acf(1) | kurtosis (std.) "
             "| VR 10 s | VR 60 s | drift (abs, s.d.) |", "| --- |" + " --- |" * 9]
    for name, fs in by_feed.items():
        m = {k: sum(abs(f[k]) if k == "drift_sd" else f[k] for f in fs) / len(fs)
             for k in FEATURES}
        lines.append(f"| {name} | {len(fs)} | {m['gap_ms']:.0f} | {m['gap_cv']:.2f} | "
                     f"{m['sigma']:.3e} | {m['acf1']:+.3f} | {m['kurt']:+.2f} | {m['vr10']:.3f} | "
                     f"{m['vr60']:.3f} | {m['drift_sd']:.2f} |")
    return "\n".join(lines)


class Tally:
    """Per (feed, bucket, cluster): [bets, wins, payout, implied wins]."""

    def __init__(self):
        self.cells = defaultdict(lambda: [0, 0, 0, 0.0])
        self.sigma = {}      # feed -> [pricer sigma sum, pricings, realised sigma sum, paths]
        self.paths = 0

    def add(self, feed, bucket, cluster, n, wins, pay, implied):
        c = self.cells[(feed, bucket, cluster)]
        c[0] += n
        c[1] += wins
        c[2] += pay
        c[3] += implied

    def rows(self, feed=None, cluster="fine"):
        """{bucket index | "uncapped" | "all": row} for one feed or all,
        clustered by window (a pricing's futures) or by 200 s block."""
        groups = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, 0.0]))
        for (f, b, (path, fine, block)), c in self.cells.items():
            if feed is not None and f != feed:
                continue
            key = (path, fine if cluster == "fine" else block)
            for g in (b, "all") + (("uncapped",) if b != CAPPED else ()):
                m = groups[g][key]
                for i in range(4):
                    m[i] += c[i]
        return {g: _row(list(cs.values())) for g, cs in groups.items()}


def _row(clusters):
    # The ratio estimator's variance from its cluster residuals.
    n = sum(c[0] for c in clusters)
    pay = sum(c[2] for c in clusters)
    stake = STAKE * n
    rtp = pay / stake
    g = len(clusters)
    e2 = sum((c[2] - rtp * STAKE * c[0]) ** 2 for c in clusters)
    se = math.sqrt(g / (g - 1) * e2) / stake if g > 1 else float("nan")
    return {"bets": n, "windows": g, "win_rate": sum(c[1] for c in clusters) / n,
            "implied": sum(c[3] for c in clusters) / n, "rtp": rtp, "se": se}


def play_path(label, ticks, cfg, rng, tally, args, step=None, true_sigma=None, chain=None,
              ar=None):
    """Tap at random over ``ticks`` as the Column prices taps; returns
    (pricings, seconds spent pricing).

    ``step``: the sim's (mu, sd) of a tick's log return. Each pricing is then
    settled on ``args.futures`` independent futures of the path from the
    priced tick (the sim's own step law, on the path's own clock, so the
    tick in force at each t0 is where it would be): the outcome noise of
    one path's windows is shared by every cell of a big move, and futures
    average it away where only more hours of path would. The pricer still
    learns sigma from the path itself, so its error is what it is live.
    ``chain``: (``BlockBootstrap``, its state at every tick) of a bootstrap
    path; each pricing is then settled on ``args.futures`` continuations of
    the chain from the tick after the priced one (the path's own: the tap
    came before it, and the tap's moment inside that gap is what the
    pricer's phase model is judged on), each with its own gaps.
    Neither (recorded ticks): every bet is settled on the path.
    ``true_sigma``: price with it and no estimation error (the touch model alone).
    ``ar``: (rho, the return into each tick less mu) of an ``ar_ticks`` path:
    its futures continue the AR(1) chain from the priced tick (``step`` the
    sim's (mu, sd) it was made from).
    """
    tally.paths += 1
    path_no = tally.paths
    nprng = np.random.default_rng(rng.randrange(1 << 32))
    times = [t for t, _ in ticks]
    band, col_ms = cfg.band_cents, cfg.column_ms
    edge = (10000 - cfg.edge_bp) / 10000
    stale_after = 2 * cfg.tick_interval_ms
    vol = Volatility(initial_tick_ms=cfg.tick_interval_ms)     # as MarketContext makes it
    warm_until = times[0] + args.warmup_s * 1000
    end = times[-1] - cfg.horizon_ms - 2 * col_ms
    windows = {}
    n_priced = 0
    price_s = 0.0
    sig_sum = 0.0
    vr_sum = 0.0
    gap_s = (times[-1] - times[0]) / 1000 / max(1, len(times) - 1)
    rate = min(1.0, args.pricings_per_s * gap_s)       # a pricing on this share of the ticks
    for i, (ts, price) in enumerate(ticks[:-1]):
        vol.update(price, ts)
        if ts < warm_until or ts >= end or rng.random() >= rate:
            continue
        now = ts + int(rng.random() * (times[i + 1] - ts))   # before the next tick arrives
        t0s = list(open_columns(cfg, now))[:args.columns]
        if not t0s:
            continue
        if true_sigma is None:
            sigma, sigma_sd, floor, vr = vol.estimate, vol.log_sd, vol.floor, vol.horizon_ratio
        else:
            sigma, sigma_sd, floor, vr = true_sigma, 0.0, 0.0, 1.0
        t = time.perf_counter()
        grid = price_columns(price, ts, now, t0s, col_ms, band, args.bands,
                             sigma * args.sigma_scale, cfg.edge_bp, vol.tick_ms, sigma_sd,
                             tick_sd_ms=vol.tick_sd_ms, sigma_floor=floor, window_vr=vr)
        price_s += time.perf_counter() - t
        n_priced += 1
        sig_sum += max(sigma, floor)
        vr_sum += vr
        if step is not None:
            j = bisect.bisect_left(times, t0s[-1] + col_ms)
            ftimes = times[i:j]
            if ar is None:
                logp = math.log(price) + np.cumsum(
                    nprng.normal(step[0], step[1], (args.futures, j - i - 1)), axis=1)
            else:
                logp = math.log(price) + ar_futures(nprng, ar[0], step[0], step[1], ar[1][i],
                                                    args.futures, j - i - 1)
            fprices = np.maximum(1, np.rint(np.exp(logp))).astype(np.int64).tolist()
            futures = [(ftimes, list(zip(ftimes, [price] + row))) for row in fprices]
        elif chain is not None:
            until = t0s[-1] + col_ms
            ts1, x1 = ticks[i + 1][0], math.log(ticks[i + 1][1])
            futures = []
            for _ in range(args.futures):
                f = ticks[i:i + 2] + chain[0].fork(chain[1][i + 1], random.Random(
                    rng.getrandbits(64))).extend(ts1, x1, until)
                futures.append(([t for t, _ in f], f))
        block = now // BLOCK_MS
        for t0 in t0s:
            if step is None and chain is None:
                path = windows.get(t0)
                if path is None:
                    a = bisect.bisect_left(times, t0 - 4 * stale_after)
                    b = bisect.bisect_left(times, t0 + col_ms)
                    path = windows[t0] = path_of(ticks[a:b], t0, t0 + col_ms, stale_after)
                ranges = [path[:2]]
                cluster = (path_no, t0, block)
            else:
                ranges = []
                for ft, f in futures:
                    a = max(0, bisect.bisect_left(ft, t0) - 1)
                    b = bisect.bisect_left(ft, t0 + col_ms)
                    ranges.append(path_of(f[a:b], t0, t0 + col_ms, stale_after)[:2])
                cluster = (path_no, n_priced, block)
            n = len(ranges)
            for lo, mult in grid[t0].items():
                w = sum(touches(lo, band, low, high) for low, high in ranges)
                tally.add(label, bucket_of(mult), cluster, n, w, w * payout_for(STAKE, mult),
                          n * edge * 100 / mult)
    s = tally.sigma.setdefault(label, [0.0, 0, 0.0, 0, 0.0])
    s[0] += sig_sum
    s[1] += n_priced
    s[2] += realised_sigma([tk for tk in ticks if tk[0] >= warm_until])
    s[3] += 1
    s[4] += vr_sum
    return n_priced, price_s


def table(tally, feed=None):
    rows = tally.rows(feed)
    blocks = tally.rows(feed, cluster="block")
    lines = ["| multiplier | bets | windows | win rate | implied | RTP ± s.e. (200 s block) "
             "| s.e. (window) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, name in [(i, b[0]) for i, b in enumerate(BUCKETS)] + [("uncapped", "uncapped"),
                                                                   ("all", "all")]:
        r = rows.get(key)
        if r:
            lines.append(f"| {name} | {r['bets']:,} | {r['windows']:,} | {r['win_rate']:.4f} | "
                         f"{r['implied']:.4f} | {r['rtp']:.3f} ± {blocks[key]['se']:.3f} | "
                         f"{r['se']:.3f} |")
    return "\n".join(lines)


def _worst(rows):
    big = [(rows[i]["rtp"], BUCKETS[i][0]) for i in range(CAPPED)
           if i in rows and rows[i]["bets"] >= 1000]
    return min(big) if big else (float("nan"), "-")


# name -> (annual vol, tick ms); "make-run" is what `make run` serves.
def feed_specs(cfg, names):
    out = []
    for name in names.split(","):
        name = name.strip()
        if name == "make-run":
            out.append(("sim", 0.6, cfg.sim_interval_ms))
        elif name in REPLAYS:
            out.append((name, None, None))
        elif name.startswith("ar:"):           # ar:RHO:VOL:MS, AR(1) tick returns
            _, rho, v, ms = name.split(":")
            out.append((f"ar{float(rho)}", float(v), int(ms)))
        else:                                  # sim:VOL:MS, e.g. sim:0.3:1000
            _, v, ms = name.split(":")
            out.append(("sim", float(v), int(ms)))
    return out


# replay: the recording pass after pass; replay-detrended: the same less its
# drift; replay-blocks: a block bootstrap of it; replay-blocks-gauss: the
# bootstrap's gaps with Gaussian returns (the recording's clock alone).
# replay-blocks-drift: the bootstrap of the raw returns (drift kept).
# replay-blocks-clock: the recorded moves (scaled to the mean gap) on an
# even clock: their dependence without the irregular ticks.
REPLAYS = {"replay": "replay sample_ticks", "replay-detrended": "replay detrended",
           "replay-blocks": "replay blocks", "replay-blocks-gauss": "replay blocks gauss",
           "replay-blocks-drift": "replay blocks drift",
           "replay-blocks-clock": "replay blocks clock"}
DEFAULT_FEEDS = ("make-run,sim:0.3:100,sim:1.2:100,sim:0.6:250,sim:0.6:1000,replay,"
                 "replay-blocks")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", default=DEFAULT_FEEDS,
                    help="make-run (the sim `make run` serves), sim:VOL:MS, ar:RHO:VOL:MS "
                         "(AR(1) tick returns), " + ", ".join(REPLAYS))
    ap.add_argument("--hours", type=float, default=4.0,
                    help="hours of play per feed (the make-run feed gets three times as many)")
    ap.add_argument("--segment-s", type=float, default=1800.0,
                    help="seconds of play per path (each its own seed and a fresh pricer)")
    ap.add_argument("--pricings-per-s", type=float, default=0.2,
                    help="taps priced a second of feed time (each bets every offered cell "
                         "within --bands in every open column)")
    ap.add_argument("--futures", type=int, default=8,
                    help="independent futures each sim or replay-blocks pricing is settled on")
    ap.add_argument("--block-s", type=float, default=5.0,
                    help="replay-blocks: mean seconds of a bootstrap block")
    ap.add_argument("--blocks-hours", type=float, default=3.0,
                    help="replay-blocks feeds get this many times --hours")
    ap.add_argument("--bands", type=int, default=12, help="cells within this many bands of the price")
    ap.add_argument("--columns", type=int, default=12, help="taps in the N nearest open columns")
    ap.add_argument("--jitter-ms", type=float, default=2.0, help="the sim's mean emission delay")
    ap.add_argument("--warmup-s", type=float, default=600.0,
                    help="no taps in each path's first seconds: sigma starts at Volatility's "
                         "default and needs a few half-lives to forget it")
    ap.add_argument("--sigma-scale", type=float, default=1.0,
                    help="price with the estimate times this (a deliberately wrong sigma)")
    ap.add_argument("--sigma", choices=("estimated", "true"), default="estimated",
                    help="true: price the sim with its own sigma, the replay with its "
                         "realised sigma (no estimation error: the touch model alone)")
    ap.add_argument("--seed", type=int, default=17)
    args = ap.parse_args(argv)

    cfg = Config()
    rng = random.Random(args.seed)
    tally = Tally()
    t_all = time.perf_counter()
    pricings = 0
    price_s = 0.0
    seed = args.seed * 1000
    labels = []
    rec = [(t.ts, t.price) for t in load_ticks(SAMPLE_TICKS)]
    feats = {"recording (sample_ticks.csv, once)": [features(rec)]}
    for kind, vol, iv in feed_specs(cfg, args.feeds):
        hours = args.hours * (3 if (kind, vol, iv) == ("sim", 0.6, cfg.sim_interval_ms) else
                              args.blocks_hours if kind.startswith("replay-blocks") else 1)
        left = hours * 3600
        label = (f"sim {vol:.0%}/yr {iv} ms" if kind == "sim" else
                 f"AR(1) {kind[2:]} {vol:.0%}/yr {iv} ms" if kind.startswith("ar") else
                 REPLAYS[kind])
        labels.append(label)
        while left > 0:
            seed += 1
            span = min(args.segment_s, left)
            secs = span + args.warmup_s + cfg.horizon_ms / 1000 + 20
            chain = ar = None
            if kind == "sim":
                ticks = sim_ticks(seed, iv, vol, secs, args.jitter_ms)
            elif kind.startswith("ar"):
                ticks, rets = ar_ticks(seed, float(kind[2:]), iv, vol, secs, args.jitter_ms)
                ar = (float(kind[2:]), rets)
            elif kind.startswith("replay-blocks"):
                ticks, chain = block_ticks(secs, random.Random(seed), args.block_s,
                                           gauss=kind.endswith("gauss"),
                                           detrend=not kind.endswith("drift"),
                                           clock=kind.endswith("clock"))
            else:
                ticks = replay_ticks(secs, detrend=kind == "replay-detrended")
            # The replay's "true" sigma: its own realised one, held constant.
            true = (None if args.sigma != "true" else vol * math.sqrt(1000 / _MS_PER_YEAR)
                    if kind == "sim" or ar else realised_sigma(ticks))
            step = sim_step(vol, iv) if (kind == "sim" or ar) and args.futures > 0 else None
            feats.setdefault(label, []).append(features(ticks))
            g, p = play_path(label, ticks, cfg, rng, tally, args, step, true,
                             chain if args.futures > 0 else None, ar if step else None)
            pricings += g
            price_s += p
            left -= span
        print(f"# {label}: done at {time.perf_counter() - t_all:.0f} s", file=sys.stderr)
    wall = time.perf_counter() - t_all

    print(f"## All feeds ({len(labels)})\n")
    print(table(tally))
    print("\n## Per feed: RTP, pricer sigma vs realised\n")
    print("| feed | bets | RTP all ± s.e. | RTP uncapped ± s.e. | worst bucket (n ≥ 1000) "
          "| pricer σ | realised σ | VR 2.5 s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    per_feed = {}
    for f in labels:
        rows = tally.rows(f, cluster="block")
        allr, unc = rows["all"], rows["uncapped"]
        worst = _worst(rows)
        s = tally.sigma[f]
        per_feed[f] = {"rtp": round(allr["rtp"], 4), "rtp_uncapped": round(unc["rtp"], 4),
                       "horizon_ratio": round(s[4] / max(1, s[1]), 4),
                       "se_uncapped": round(unc["se"], 4),
                       "rtp_by_bucket": {BUCKETS[i][0]: round(rows[i]["rtp"], 4)
                                         for i in range(len(BUCKETS)) if i in rows}}
        print(f"| {f} | {allr['bets']:,} | {allr['rtp']:.3f} ± {allr['se']:.3f} | "
              f"{unc['rtp']:.3f} ± {unc['se']:.3f} | {worst[1]}: {worst[0]:.3f} | "
              f"{s[0] / max(1, s[1]):.3e} | {s[2] / s[3]:.3e} | {s[4] / max(1, s[1]):.3f} |")
    print("\n## Feeds' features (per path, averaged)\n")
    print(features_table(feats))
    for f in labels:
        print(f"\n### {f}\n")
        print(table(tally, f))
    rows = tally.rows(cluster="block")
    fine = tally.rows()
    allr = rows["all"]
    print(f"\n{allr['bets']:,} bets over {pricings:,} pricings in {wall:.0f} s "
          f"({price_s / max(1, pricings) * 1000:.2f} ms a pricing)")
    head = per_feed[labels[0]] if labels else {}
    print(json.dumps({
        "bench": "odds", "rtp": round(allr["rtp"], 4), "rtp_se": round(allr["se"], 4),
        "rtp_uncapped": round(rows["uncapped"]["rtp"], 4),
        "rtp_uncapped_se": round(rows["uncapped"]["se"], 4),
        "rtp_by_bucket": {BUCKETS[i][0]: round(rows[i]["rtp"], 4)
                          for i in range(len(BUCKETS)) if i in rows},
        "se_by_bucket": {BUCKETS[i][0]: round(rows[i]["se"], 4)
                         for i in range(len(BUCKETS)) if i in rows},
        "se_by_bucket_window": {BUCKETS[i][0]: round(fine[i]["se"], 4)
                                for i in range(len(BUCKETS)) if i in fine},
        "worst_bucket_rtp": round(_worst(rows)[0], 4), "bets": allr["bets"],
        "first_feed": labels[0] if labels else None, "first_feed_rtp_uncapped":
            head.get("rtp_uncapped"), "per_feed": per_feed, "pricings": pricings,
        "ms_per_pricing": round(price_s / max(1, pricings) * 1000, 3),
        "seconds": round(wall, 1)}))


if __name__ == "__main__":
    main()

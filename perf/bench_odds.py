"""Do the multipliers keep their promise? A calibration benchmark in compressed time.

Price paths come from the sim feed (``SimFeed.next_price``, many seeds,
several volatilities and tick rates) and from the recorded ticks of
``actors/data/sample_ticks.csv``. Over each path the MarketMaker is replayed
without a wall clock: every tick updates the pricer's own online
``Volatility``; every 100 ms "roll" reprices the grid with the MarketMaker's
``price_grid`` when a tick came and 500 ms have passed, as ``MarketMaker._roll``
does. Random taps between rolls take the multiplier of the grid then
current (the Column's rule: open columns only, the cell must be offered),
on cells within ``--bands`` of the price of the moment. Every bet is settled
with the Resolver's own ``path_of`` and ``touches``.

Reported per multiplier bucket, overall and per feed: bets, windows, the
realised win rate against the implied one ((1 - edge) / mult) and the
return to player (payouts / stakes) with standard errors clustered by
window (bets of one window share its path; windows are independent), and
the pricer's sigma against the path's realised sigma.

The recorded sample is only three minutes long; it is replayed pass after
pass, alternating forward, time-reversed, mirrored and both, each pass
continuing from the price the previous one ended on (``ReplayFeed`` jumps
back to the first price instead, a $175 move no pricer should see). Its
windows repeat the same few moves, so its standard errors are optimistic.

    python perf/bench_odds.py                 # ~5 min on this box
    python perf/bench_odds.py --hours 0.2     # a quick look
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from actors import (MULT_BUCKETS, Config, SimFeed, Volatility, open_columns,  # noqa: E402
                    path_of, payout_for, price_grid, touches)
from actors.feeds import SAMPLE_TICKS, load_ticks  # noqa: E402

BUCKETS = MULT_BUCKETS    # the last one is the capped 100x
ROLL_MS = 100      # MarketMaker.schedule_every(0.1, "roll")
REPRICE_MS = 500   # MarketMaker(reprice_ms=500)
T_START = 1_750_000_000_000
STAKE = 100


def bucket_of(mult):
    for i, (_, lo, hi) in enumerate(BUCKETS):
        if lo <= mult < hi:
            return i
    raise ValueError(mult)


def sim_ticks(seed, interval_ms, annual_vol, seconds):
    """The sim's prices at its rhythm; the phase against the columns is
    random, as with a wall clock."""
    feed = SimFeed(seed=seed, interval_ms=interval_ms, annual_vol=annual_vol)
    n = int(seconds * 1000 // interval_ms)
    t = T_START + random.Random(seed).randrange(interval_ms)
    return [(t + i * interval_ms, feed.next_price()) for i in range(n)]


def replay_ticks(seconds, path=SAMPLE_TICKS):
    """Recorded ticks, pass after pass (forward, reversed, mirrored, both),
    each continuing from the last price; the recorded spacing is kept."""
    rec = load_ticks(path)
    gaps = [b.ts - a.ts for a, b in zip(rec, rec[1:])]
    rets = [math.log(b.price / a.price) for a, b in zip(rec, rec[1:])]
    gap_ms = sorted(gaps)[len(gaps) // 2]
    out = [(T_START, rec[0].price)]
    x = math.log(rec[0].price)
    k = 0
    while out[-1][0] - T_START < seconds * 1000:
        g, r = (gaps, rets) if k % 2 == 0 else (gaps[::-1], rets[::-1])
        sign = -1.0 if (k // 2) % 2 else 1.0
        ts = out[-1][0] + gap_ms
        # the first tick of a pass repeats the last price, one gap later
        out.append((ts, out[-1][1]))
        for dt, dr in zip(g, r):
            ts += dt
            x += sign * dr
            out.append((ts, round(math.exp(x))))
        k += 1
    return out


def realised_sigma(ticks):
    s = sum(math.log(b / a) ** 2 for (_, a), (_, b) in zip(ticks, ticks[1:]))
    return math.sqrt(s / ((ticks[-1][0] - ticks[0][0]) / 1000))


class Tally:
    """Per (feed, bucket, window): bets, wins, payouts, implied wins."""

    def __init__(self):
        self.cells = defaultdict(lambda: [0, 0, 0, 0.0])
        self.sigma = {}      # feed -> [sum of pricer sigma, grids, realised sigma sum, paths]

    def add(self, feed, bucket, window, won, pay, implied):
        c = self.cells[(feed, bucket, window)]
        c[0] += 1
        c[1] += won
        c[2] += pay
        c[3] += implied

    def summary(self, feed=None):
        """{bucket: row} (and "all", "uncapped") for one feed or all."""
        groups = defaultdict(list)
        for (f, b, w), c in self.cells.items():
            if feed is None or f == feed:
                groups[b].append(c)
                groups["all"].append(c)
                if b != len(BUCKETS) - 1:
                    groups["uncapped"].append(c)
        return {b: _row(cs) for b, cs in groups.items()}


def _row(clusters):
    # One cluster per window (a bucket's rows, or a window's rows merged for
    # "all"): the ratio estimator's variance from the cluster residuals.
    n = sum(c[0] for c in clusters)
    wins = sum(c[1] for c in clusters)
    pay = sum(c[2] for c in clusters)
    implied = sum(c[3] for c in clusters)
    stake = STAKE * n
    rtp = pay / stake
    g = len(clusters)
    e2 = sum((c[2] - rtp * STAKE * c[0]) ** 2 for c in clusters)
    se = math.sqrt(g / (g - 1) * e2) / stake if g > 1 else float("nan")
    return {"bets": n, "windows": g, "win_rate": wins / n, "implied": implied / n,
            "rtp": rtp, "se": se}


def _merge_windows(tally, feed=None):
    """Clusters for "all": one per window, all buckets of it together."""
    by_win = defaultdict(lambda: [0, 0, 0, 0.0])
    for (f, b, w), c in tally.cells.items():
        if feed is None or f == feed:
            m = by_win[(f, w)]
            for i in range(4):
                m[i] += c[i]
    return _row(list(by_win.values()))


def run_path(label, ticks, cfg, rng, tally, taps_per_roll, bands, warmup_s):
    """Replay the MarketMaker's pricing over ``ticks`` and tap at random; returns
    (grids priced, seconds spent pricing)."""
    times = [t for t, _ in ticks]
    band = cfg.band_cents
    edge = (10000 - cfg.edge_bp) / 10000
    stale_after = 2 * cfg.tick_interval_ms
    vol = Volatility(initial_tick_ms=cfg.tick_interval_ms)   # as MarketMaker.on_start
    paths = {}
    grid = None
    last = None
    priced_at = -10 ** 18
    dirty = False
    ti = 0
    n_grids = 0
    price_s = 0.0
    sig_sum = 0.0
    end = times[-1] - cfg.horizon_ms - 2 * cfg.column_ms
    warm_until = times[0] + warmup_s * 1000
    now = times[0]
    while now < end:
        while ti < len(ticks) and times[ti] <= now:
            last = ticks[ti]
            vol.update(last[1], last[0])
            dirty = True
            ti += 1
        if last is not None and dirty and now - priced_at >= REPRICE_MS:
            dirty = False
            priced_at = now
            t = time.perf_counter()
            grid = price_grid(cfg, last[1], last[0], vol.sigma, now, n_grids, vol.tick_ms,
                              vol.log_sd)
            price_s += time.perf_counter() - t
            n_grids += 1
            sig_sum += grid.sigma
        if grid is not None and now >= warm_until:
            for _ in range(taps_per_roll):
                tt = now + rng.randrange(ROLL_MS)
                price = ticks[bisect.bisect_right(times, tt) - 1][1]
                cols = [t0 for t0 in open_columns(cfg, tt) if t0 in grid.columns]
                if not cols:
                    continue
                t0 = rng.choice(cols)
                lo = (price // band + rng.randint(-bands, bands)) * band
                mult = grid.columns[t0].get(lo)
                if mult is None:
                    continue       # bad_cell: not offered
                rng_ = paths.get(t0)
                if rng_ is None:
                    i = bisect.bisect_left(times, t0 - 4 * stale_after)
                    j = bisect.bisect_left(times, t0 + cfg.column_ms)
                    rng_ = paths[t0] = path_of(ticks[i:j], t0, t0 + cfg.column_ms, stale_after)
                low, high, _stale = rng_
                won = touches(lo, band, low, high)
                tally.add(label, bucket_of(mult), t0, int(won),
                          payout_for(STAKE, mult) if won else 0, edge * 100 / mult)
        now += ROLL_MS
    s = tally.sigma.setdefault(label, [0.0, 0, 0.0, 0])
    s[0] += sig_sum
    s[1] += n_grids
    s[2] += realised_sigma(ticks)
    s[3] += 1
    return n_grids, price_s


def table(tally, feed=None):
    rows = tally.summary(feed)
    lines = ["| multiplier | bets | windows | win rate | implied | RTP ± s.e. |",
             "| --- | --- | --- | --- | --- | --- |"]
    for i, (name, _, _) in enumerate(BUCKETS):
        r = rows.get(i)
        if r:
            lines.append(f"| {name} | {r['bets']:,} | {r['windows']:,} | {r['win_rate']:.4f} | "
                         f"{r['implied']:.4f} | {r['rtp']:.3f} ± {r['se']:.3f} |")
    for name in ("uncapped", "all"):
        r = rows.get(name)
        if r:
            lines.append(f"| {name} | {r['bets']:,} | | {r['win_rate']:.4f} | {r['implied']:.4f} "
                         f"| {r['rtp']:.3f} ± {r['se']:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=2.0,
                    help="sim hours per (volatility, tick rate); the replay gets --hours x 3")
    ap.add_argument("--segment-s", type=float, default=1800.0,
                    help="seconds per sim path (each its own seed and a fresh pricer)")
    ap.add_argument("--vols", default="0.3,0.6,1.2", help="sim annual volatilities")
    ap.add_argument("--intervals", default="100,250,1000", help="sim tick intervals, ms")
    ap.add_argument("--taps", type=int, default=4, help="taps per 100 ms roll")
    ap.add_argument("--bands", type=int, default=12, help="taps within this many bands of the price")
    ap.add_argument("--warmup-s", type=float, default=300.0,
                    help="no taps in each path's first seconds (the pricer's sigma settles)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--no-replay", action="store_true")
    args = ap.parse_args(argv)

    cfg = Config()
    rng = random.Random(args.seed)
    tally = Tally()
    t_all = time.perf_counter()
    grids = 0
    price_s = 0.0
    seed = args.seed * 1000
    seg = args.segment_s + args.warmup_s
    for vol in [float(v) for v in args.vols.split(",")]:
        for iv in [int(v) for v in args.intervals.split(",")]:
            label = f"sim {vol:.0%}/yr {iv} ms"
            left = args.hours * 3600
            while left > 0:
                seed += 1
                ticks = sim_ticks(seed, iv, vol, min(seg, left + args.warmup_s)
                                  + cfg.horizon_ms / 1000 + 20)
                g, p = run_path(label, ticks, cfg, rng, tally, args.taps, args.bands,
                                args.warmup_s)
                grids += g
                price_s += p
                left -= args.segment_s
            print(f"# {label}: done at {time.perf_counter() - t_all:.0f} s", file=sys.stderr)
    if not args.no_replay:
        ticks = replay_ticks(args.hours * 3 * 3600 + args.warmup_s + cfg.horizon_ms / 1000 + 20)
        g, p = run_path("replay sample_ticks", ticks, cfg, rng, tally, args.taps, args.bands,
                        args.warmup_s)
        grids += g
        price_s += p
    wall = time.perf_counter() - t_all

    feeds = sorted(tally.sigma)
    print(f"## All feeds ({len(feeds)} feeds)\n")
    print(table(tally))
    print("\n## Per feed: uncapped RTP, pricer sigma vs realised\n")
    print("| feed | bets | RTP all ± s.e. | RTP uncapped ± s.e. | worst bucket (n ≥ 1000) "
          "| pricer σ | realised σ |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    per_feed = {}
    for f in feeds:
        rows = tally.summary(f)
        allr = _merge_windows(tally, f)
        unc = rows["uncapped"]
        big = [(rows[i]["rtp"], BUCKETS[i][0]) for i in range(len(BUCKETS) - 1)
               if i in rows and rows[i]["bets"] >= 1000]
        worst = min(big) if big else (float("nan"), "-")
        s = tally.sigma[f]
        per_feed[f] = {"rtp": round(allr["rtp"], 4), "rtp_uncapped": round(unc["rtp"], 4)}
        print(f"| {f} | {allr['bets']:,} | {allr['rtp']:.3f} ± {allr['se']:.3f} | "
              f"{unc['rtp']:.3f} ± {unc['se']:.3f} | {worst[1]}: {worst[0]:.3f} | "
              f"{s[0] / max(1, s[1]):.3e} | {s[2] / s[3]:.3e} |")
    for f in feeds:
        print(f"\n### {f}\n")
        print(table(tally, f))
    rows = tally.summary()
    allr = _merge_windows(tally)
    by_bucket = {BUCKETS[i][0]: round(rows[i]["rtp"], 4) for i in range(len(BUCKETS)) if i in rows}
    se_by_bucket = {BUCKETS[i][0]: round(rows[i]["se"], 4) for i in range(len(BUCKETS)) if i in rows}
    worst = min(rows[i]["rtp"] for i in range(len(BUCKETS) - 1)
                if i in rows and rows[i]["bets"] >= 1000)
    print(f"\n{allr['bets']:,} bets over {grids:,} grids in {wall:.0f} s "
          f"({price_s / max(1, grids) * 1000:.2f} ms pricing per grid)")
    print(json.dumps({"bench": "odds", "rtp": round(allr["rtp"], 4),
                      "rtp_se": round(allr["se"], 4),
                      "rtp_uncapped": round(rows["uncapped"]["rtp"], 4),
                      "rtp_by_bucket": by_bucket, "se_by_bucket": se_by_bucket,
                      "worst_bucket_rtp": round(worst, 4), "bets": allr["bets"],
                      "per_feed": per_feed, "grids": grids,
                      "ms_per_grid": round(price_s / max(1, grids) * 1000, 3),
                      "seconds": round(wall, 1)}))


if __name__ == "__main__":
    main()

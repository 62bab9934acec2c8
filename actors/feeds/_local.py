"""Price feeds: where the market's ticks come from.

Every feed has the same shape: `feed.run(emit)` runs in the calling greenlet
and calls `emit(Tick(price_cents, ts_ms))` per tick until `feed.stop()`;
`expected_interval_ms` tells the stale watchdog how often ticks should come;
`stats` counts ticks, errors and reconnects. Kinds: sim, replay, coinbase,
binance (see `make_feed`).

    >>> import gevent
    >>> feed = SimFeed(seed=7, interval_ms=10)
    >>> ticks = []
    >>> def emit(tick):
    ...     ticks.append(tick)
    ...     if len(ticks) == 3:
    ...         feed.stop()
    >>> gevent.spawn(feed.run, emit).join(timeout=5)
    >>> [t.price for t in ticks] == ticks_of(7, 3, interval_ms=10)
    True
    >>> parse_price_cents("99728.83"), iso_to_ms("2024-12-07T18:00:00.542551Z")
    (9972883, 1733594400542)
"""
import math
import os
import random
import statistics
import time
from time import monotonic

import gevent
from gevent.event import Event

from ._exchange import BinanceFeed, CoinbaseFeed, iso_to_ms, parse_price_cents
from ._base import Feed, FeedStats, Tick

__all__ = ["Tick", "Feed", "FeedStats", "SimFeed", "ReplayFeed", "CoinbaseFeed",
           "BinanceFeed", "make_feed", "load_ticks", "parse_price_cents",
           "iso_to_ms", "ticks_of", "SAMPLE_TICKS", "FEED_KINDS"]


SAMPLE_TICKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "data", "sample_ticks.csv")
FEED_KINDS = ("sim", "replay", "coinbase", "binance")
_MS_PER_YEAR = 365.25 * 24 * 3600 * 1000


def load_ticks(path):
    """Read a `ts_ms,price_cents` CSV (header optional, extra columns and
    `#` lines ignored) into a list of Ticks; ValueError names the bad line."""
    ticks = []
    with open(path, newline="") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = [x.strip() for x in line.split(",")]
            if not ticks and fields[:2] == ["ts_ms", "price_cents"]:
                continue
            try:
                ts, price = int(fields[0]), int(fields[1])
            except (ValueError, IndexError):
                raise ValueError(f"{path}:{lineno}: expected 'ts_ms,price_cents', "
                                 f"got {line[:60]!r}") from None
            if price <= 0:
                raise ValueError(f"{path}:{lineno}: price must be positive cents")
            if ticks and ts < ticks[-1].ts:
                raise ValueError(f"{path}:{lineno}: timestamp goes backwards")
            ticks.append(Tick(price, ts))
    if not ticks:
        raise ValueError(f"{path}: no ticks")
    return ticks



class _LocalFeed(Feed):
    """A feed made here, so it can be paused: ticks stop, the greenlet lives
    (what the stale-price breaker tests need)."""

    def __init__(self):
        super().__init__()
        self._running = Event()
        self._running.set()

    def pause(self):
        self._running.clear()

    def resume(self):
        self._running.set()

    @property
    def paused(self):
        return not self._running.is_set()

    def stop(self):
        super().stop()
        self._running.set()  # wake a paused run() so it can return

    def _hold(self, delay):
        """Wait `delay` s (0: just yield), then as long as the feed is paused.
        Returns the seconds spent paused, so callers can shift schedules."""
        if delay > 0:
            self._stop.wait(delay)
        else:
            gevent.sleep(0)
        if self._running.is_set():
            return 0.0
        t0 = monotonic()
        self._running.wait()
        return monotonic() - t0


class SimFeed(_LocalFeed):
    """Seeded geometric random walk with BTC-like volatility. The price path
    depends only on the seed; ts is the wall clock at emission."""

    name = "sim"

    def __init__(self, seed=None, start_price=9_500_000, interval_ms=250,
                 annual_vol=0.6, clock=time.time):
        super().__init__()
        if not isinstance(start_price, int) or start_price <= 0:
            raise ValueError("start_price must be positive integer cents")
        if interval_ms <= 0 or annual_vol < 0:
            raise ValueError("interval_ms must be > 0 and annual_vol >= 0")
        self.start_price, self.interval_ms = start_price, interval_ms
        self.expected_interval_ms = interval_ms
        self._clock = clock
        self._rng = random.Random(seed)
        self._log_price = math.log(start_price)
        self._first = True
        # Lognormal step per interval; the -sigma^2/2 drift keeps the
        # expected price flat instead of drifting up.
        self._sigma = annual_vol * math.sqrt(interval_ms / _MS_PER_YEAR)
        self._mu = -0.5 * self._sigma ** 2

    def next_price(self):
        """The walk's next price in cents (the first is start_price)."""
        if self._first:
            self._first = False
            return self.start_price
        self._log_price += self._rng.gauss(self._mu, self._sigma)
        return max(1, round(math.exp(self._log_price)))

    def run(self, emit):
        interval = self.interval_ms / 1000
        next_at = monotonic()
        while not self.stopped:
            next_at += self._hold(next_at - monotonic())
            if self.stopped:
                break
            self._emit(emit, Tick(self.next_price(), int(self._clock() * 1000)))
            next_at += interval
            if next_at < monotonic() - interval:
                next_at = monotonic()  # fell behind (blocked hub): no burst of catch-up ticks


def ticks_of(seed, n, skip=0, **kw):
    """The first `n` prices (after `skip`) a SimFeed with `seed` would emit."""
    feed = SimFeed(seed=seed, **kw)
    prices = [feed.next_price() for _ in range(skip + n)]
    return prices[skip:]


class ReplayFeed(_LocalFeed):
    """Replays recorded ticks. With rebase the first tick is stamped "now"
    and later ones keep their recorded spacing divided by `speed`, so
    timestamps track the wall clock even when sped up. Without loop, run()
    returns at the end of the file."""

    name = "replay"

    def __init__(self, path=SAMPLE_TICKS, speed=1.0, loop=True, rebase=True,
                 clock=time.time):
        super().__init__()
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.path, self.speed, self.loop, self.rebase = path, speed, loop, rebase
        self._clock = clock
        self.ticks = load_ticks(path)
        gaps = [b.ts - a.ts for a, b in zip(self.ticks, self.ticks[1:])]
        self._gap_ms = statistics.median(gaps) if gaps else 1000
        # Median recorded gap: a recording with a real outage should still
        # look stale on replay, while ordinary jitter should not.
        self.expected_interval_ms = max(1, round(self._gap_ms / speed))

    def run(self, emit):
        first = self.ticks[0].ts
        while not self.stopped:
            base_ms, start = int(self._clock() * 1000), monotonic()
            for tick in self.ticks:
                offset_ms = (tick.ts - first) / self.speed
                paused = self._hold(start + offset_ms / 1000 - monotonic())
                start += paused
                base_ms += round(paused * 1000)
                if self.stopped:
                    return
                ts = base_ms + round(offset_ms) if self.rebase else tick.ts
                self._emit(emit, Tick(tick.price, ts))
            if not self.loop:
                return
            # One typical gap between the last tick of a pass and the next first.
            self._hold(self._gap_ms / self.speed / 1000)


def make_feed(kind, *, url=None, file=None, seed=None):
    """Build a feed by name: sim | replay | coinbase | binance. `file` is
    for replay (default: the shipped sample), `url` for the exchanges;
    a stray file/url is a ValueError. `seed` drives sim and is ignored by
    the others, since a run-wide --seed is normal."""
    name = kind.strip().lower() if isinstance(kind, str) else kind
    if name not in FEED_KINDS:
        raise ValueError(f"unknown feed kind {kind!r}: expected one of {', '.join(FEED_KINDS)}")
    if url is not None and name not in ("coinbase", "binance"):
        raise ValueError(f"url= applies to coinbase/binance feeds, not {name}")
    if file is not None and name != "replay":
        raise ValueError(f"file= applies to the replay feed, not {name}")
    if name == "sim":
        return SimFeed(seed=seed)
    if name == "replay":
        return ReplayFeed(file or SAMPLE_TICKS)
    if name == "coinbase":
        return CoinbaseFeed(url)
    return BinanceFeed(url)

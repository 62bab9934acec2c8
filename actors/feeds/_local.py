"""Price feeds: where the market's ticks come from.

Every feed has the same shape: `feed.run(emit)` runs in the calling greenlet
and calls `emit(Tick(price_cents, ts_ms))` per tick until `feed.stop()`;
`expected_interval_ms` tells the stale watchdog how often ticks should come;
`stats` counts ticks, errors and reconnects. Kinds: sim, replay, coinbase,
binance, kraken (see `make_feed`); `make_sources` builds the configured
list of an asset's sources (several `sim` share one walk, each with its own
noise and lag).

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
from collections import deque
from time import monotonic

import gevent
from gevent.event import Event

from ._exchange import (BinanceFeed, CoinbaseFeed, KrakenFeed, iso_to_ms,
                        parse_price_cents)
from ._base import Feed, FeedStats, Tick

__all__ = ["Tick", "Feed", "FeedStats", "SimFeed", "ReplayFeed", "CoinbaseFeed",
           "BinanceFeed", "KrakenFeed", "make_feed", "make_sources", "load_ticks",
           "parse_price_cents", "iso_to_ms", "ticks_of", "SAMPLE_TICKS", "FEED_KINDS",
           "SIM_ASSETS"]


SAMPLE_TICKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "data", "sample_ticks.csv")
FEED_KINDS = ("sim", "replay", "coinbase", "binance", "kraken")
#: simulated assets: start price (cents), annual volatility, correlation with
#: BTC's walk (each asset's step = rho * BTC's shock + sqrt(1-rho^2) * its own)
SIM_ASSETS = {"BTC-USD": (9_500_000, 0.6, 1.0), "ETH-USD": (350_000, 0.75, 0.8),
              "SOL-USD": (20_000, 1.0, 0.7)}
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
    """Seeded geometric random walk, per asset (``SIM_ASSETS``: BTC-like
    volatility by default). The price path depends only on the seed and the
    asset; ts is the wall clock at emission. Assets with the same seed move
    together: every asset's shock is drawn from BTC's stream plus its own.

    Several sources of one asset (``source=0, 1, ...`` with the same seed)
    see the same walk, each with its own noise (``noise_bp``, a Gaussian
    with that many basis points of spread) and ``lag_ms`` (it shows the
    walk's price from that long ago). ``diverge(bp)`` shifts one source's
    prices by bp (tests of the divergence breaker); ``pause()`` stalls it."""

    name = "sim"

    def __init__(self, seed=None, start_price=None, interval_ms=250, annual_vol=None,
                 clock=time.time, asset="BTC-USD", source=0, noise_bp=0.0, lag_ms=0):
        super().__init__()
        if asset not in SIM_ASSETS:
            raise ValueError(f"unknown sim asset {asset!r}: one of {', '.join(SIM_ASSETS)}")
        default_price, default_vol, rho = SIM_ASSETS[asset]
        start_price = default_price if start_price is None else start_price
        annual_vol = default_vol if annual_vol is None else annual_vol
        if not isinstance(start_price, int) or start_price <= 0:
            raise ValueError("start_price must be positive integer cents")
        if interval_ms <= 0 or annual_vol < 0 or noise_bp < 0 or lag_ms < 0:
            raise ValueError("interval_ms must be > 0; annual_vol, noise_bp, lag_ms >= 0")
        self.start_price, self.interval_ms = start_price, interval_ms
        self.asset, self.source, self.noise_bp, self.lag_ms = asset, source, noise_bp, lag_ms
        self.expected_interval_ms = interval_ms
        self._clock = clock
        self._rng = random.Random(seed)             # BTC's shocks: the common factor
        derived = (lambda tag: random.Random()) if seed is None else \
            (lambda tag: random.Random(f"{seed}/{tag}"))
        self._own = None if rho >= 1 else derived(asset)
        self._rho = rho
        self._noise = derived(f"{asset}/{source}")
        self._log_price = math.log(start_price)
        self._first = True
        self._lagged = deque(maxlen=round(lag_ms / interval_ms) + 1)
        self.offset_bp = 0
        # Lognormal step per interval; the -sigma^2/2 drift keeps the
        # expected price flat instead of drifting up.
        self._sigma = annual_vol * math.sqrt(interval_ms / _MS_PER_YEAR)
        self._mu = -0.5 * self._sigma ** 2

    def diverge(self, bp):
        """From now on, quote the walk ``bp`` basis points off (0: honest again)."""
        self.offset_bp = bp

    def walk_price(self):
        """The walk's next price in cents (the first is start_price)."""
        if self._first:
            self._first = False
            return self.start_price
        z = self._rng.gauss(0.0, 1.0)
        if self._own is not None:
            z = self._rho * z + math.sqrt(1 - self._rho ** 2) * self._own.gauss(0.0, 1.0)
        self._log_price += self._mu + z * self._sigma
        return max(1, round(math.exp(self._log_price)))

    def next_price(self):
        """This source's next quote: the walk, lagged, noised, shifted."""
        self._lagged.append(self.walk_price())
        price = self._lagged[0]
        if self.noise_bp:
            price = round(price * (1 + self._noise.gauss(0.0, self.noise_bp / 10_000)))
        if self.offset_bp:
            price = price * (10_000 + self.offset_bp) // 10_000
        return max(1, price)

    def run(self, emit):
        interval = self.interval_ms / 1000
        next_at = monotonic()
        while not self.stopped:
            next_at += self._hold(next_at - monotonic())
            if self.stopped:
                break
            ts = int(self._clock() * 1000) - self.lag_ms
            self._emit(emit, Tick(self.next_price(), ts))
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


def make_sources(cfg, start_price=None, asset="BTC-USD"):
    """The configured sources of the price (``cfg.sources``, else the one
    ``cfg.feed``) as a list of feeds; simulated ones start at
    ``start_price`` (cents; None: the asset's default). Several ``sim`` entries share the
    walk of ``cfg.seed``; from the second on each adds ``sim_noise_bp`` of
    noise and ``sim_lag_ms`` more lag. ``feed_url`` applies to a single
    exchange source only (each exchange has its own URL). ``asset`` picks
    the sim's walk and the exchanges' symbol (``ETH-USD``: Coinbase
    ``ETH-USD``, Binance ``ETHUSDT``, Kraken ``ETH/USD``); a replay file is
    BTC-USD's only."""
    kinds = list(cfg.sources) or [cfg.feed]
    if asset != "BTC-USD":
        return _asset_sources(cfg, kinds, start_price, asset)
    if len(kinds) == 1:
        kind = kinds[0]
        return [make_feed(kind, url=cfg.feed_url if kind in _EXCHANGES else None,
                          file=cfg.feed_file if kind == "replay" else None,
                          seed=cfg.seed if kind == "sim" else None,
                          start_price=start_price if kind == "sim" else None,
                          interval_ms=cfg.sim_interval_ms)]
    feeds = []
    sims = 0
    # one walk for all simulated sources, even unseeded: else they drift apart
    seed = cfg.seed if cfg.seed is not None else random.randrange(1 << 32)
    for kind in kinds:
        if kind == "sim":
            feeds.append(SimFeed(seed=seed, start_price=start_price, source=sims, noise_bp=cfg.sim_noise_bp,
                                 lag_ms=sims * cfg.sim_lag_ms, interval_ms=cfg.sim_interval_ms))
            sims += 1
        else:
            feeds.append(make_feed(kind, file=cfg.feed_file if kind == "replay" else None))
    return feeds


_EXCHANGES = ("coinbase", "binance", "kraken")


def _asset_sources(cfg, kinds, start_price, asset):
    base, _, quote = asset.partition("-")
    seed = cfg.seed if cfg.seed is not None else random.randrange(1 << 32)
    feeds = []
    sims = 0
    for kind in kinds:
        if kind == "sim":
            feeds.append(SimFeed(seed=seed, start_price=start_price, asset=asset, source=sims,
                                 noise_bp=cfg.sim_noise_bp if len(kinds) > 1 else 0.0,
                                 lag_ms=sims * cfg.sim_lag_ms, interval_ms=cfg.sim_interval_ms))
            sims += 1
        elif kind == "coinbase":
            feeds.append(CoinbaseFeed(None, product=asset))
        elif kind == "binance":
            feeds.append(BinanceFeed(None, symbol=base + ("USDT" if quote == "USD" else quote)))
        elif kind == "kraken":
            feeds.append(KrakenFeed(None, symbol=f"{base}/{quote}"))
        else:
            raise ValueError(f"a {kind} source has no {asset} prices (replay files are BTC-USD's)")
    return feeds


def make_feed(kind, *, url=None, file=None, seed=None, start_price=None, interval_ms=250):
    """Build a feed by name: sim | replay | coinbase | binance | kraken. `file` is
    for replay (default: the shipped sample), `url` for the exchanges;
    a stray file/url is a ValueError. `seed` and `start_price` (cents;
    None: the sim's default) drive sim and are ignored by the others,
    since a run-wide --seed is normal; so is ``interval_ms``, the sim's tick."""
    name = kind.strip().lower() if isinstance(kind, str) else kind
    if name not in FEED_KINDS:
        raise ValueError(f"unknown feed kind {kind!r}: expected one of {', '.join(FEED_KINDS)}")
    if url is not None and name not in _EXCHANGES:
        raise ValueError(f"url= applies to coinbase/binance/kraken feeds, not {name}")
    if file is not None and name != "replay":
        raise ValueError(f"file= applies to the replay feed, not {name}")
    if name == "sim":
        return SimFeed(seed=seed, start_price=start_price, interval_ms=interval_ms)
    if name == "replay":
        return ReplayFeed(file or SAMPLE_TICKS)
    if name == "coinbase":
        return CoinbaseFeed(url)
    if name == "kraken":
        return KrakenFeed(url)
    return BinanceFeed(url)

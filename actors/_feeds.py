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
import json
import math
import os
import random
import re
import statistics
import time
from collections import namedtuple
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from time import monotonic

import gevent
from gevent.event import Event

from actors._wsclient import WSClient, WSError

__all__ = ["Tick", "Feed", "FeedStats", "SimFeed", "ReplayFeed", "CoinbaseFeed",
           "BinanceFeed", "make_feed", "load_ticks", "parse_price_cents",
           "iso_to_ms", "ticks_of", "SAMPLE_TICKS", "FEED_KINDS"]

Tick = namedtuple("Tick", "price ts")
Tick.__doc__ = "One price observation: price in integer cents, ts in Unix ms."

SAMPLE_TICKS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "data", "sample_ticks.csv")
FEED_KINDS = ("sim", "replay", "coinbase", "binance")
_MS_PER_YEAR = 365.25 * 24 * 3600 * 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_PRICE_RE = re.compile(r"\d{1,12}(?:\.\d{1,12})?")
_ISO_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
                     r"(Z|[+-]\d\d:\d\d)")
_CENT = Decimal("0.01")


def parse_price_cents(text):
    """Exchange decimal string -> integer cents, exactly (no float).

    Sub-cent digits round half-even: BTC-USD and BTCUSDT both trade in
    0.01 steps, so they only appear as trailing zeros ("99728.83000000");
    rounding rather than rejecting means a format quirk cannot starve the
    watchdog. A price that rounds to 0 cents ("0.005") is rejected."""
    if not isinstance(text, str) or not _PRICE_RE.fullmatch(text):
        raise ValueError(f"not a decimal price: {text!r}")
    cents = int(Decimal(text).quantize(_CENT, rounding=ROUND_HALF_EVEN) * 100)
    if cents <= 0:
        raise ValueError(f"price {text!r} is not positive in cents")
    return cents


def iso_to_ms(text):
    """ISO-8601 UTC time ("2024-12-07T18:00:00.542551Z") -> Unix ms.
    Sub-millisecond digits are truncated, so a tick is never stamped later
    than it happened."""
    m = _ISO_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"not an ISO-8601 time: {text!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    dt = datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc)  # validates fields
    ms = (dt - _EPOCH) // timedelta(milliseconds=1) + int((m[7] or "").ljust(3, "0")[:3])
    zone = m[8]
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        ms -= sign * (int(zone[1:3]) * 60 + int(zone[4:6])) * 60_000
    return ms


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


class FeedStats:
    """Counters a feed keeps for /metrics and for humans."""

    __slots__ = ("ticks", "errors", "reconnects", "heartbeats", "malformed",
                 "ignored", "last_error", "last_tick")

    def __init__(self):
        self.ticks = self.errors = self.reconnects = 0
        self.heartbeats = self.malformed = self.ignored = 0
        self.last_error = None
        self.last_tick = None

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self):
        return f"FeedStats({self.as_dict()})"


class Feed:
    """Base of all feeds. A stopped feed stays stopped: make a new one. An
    exception raised by `emit` is the consumer's bug and ends run()."""

    name = "feed"
    expected_interval_ms = 1000

    def __init__(self):
        self.stats = FeedStats()
        self._stop = Event()

    def run(self, emit):
        raise NotImplementedError

    def stop(self):
        self._stop.set()

    @property
    def stopped(self):
        return self._stop.is_set()

    def _emit(self, emit, tick):
        self.stats.ticks += 1
        self.stats.last_tick = tick
        emit(tick)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name} ticks={self.stats.ticks}>"


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


class _ExchangeFeed(Feed):
    """A live WebSocket feed that reconnects by itself: exponential backoff
    with full jitter (delay ~ U(0, min(cap, base * 2**attempt))), reset once
    a connection has delivered a tick."""

    default_url = None

    def __init__(self, url=None, *, backoff_base=0.5, backoff_cap=30.0,
                 silence_timeout=10.0, connect_timeout=10.0, rng=None):
        super().__init__()
        self.url = url or self.default_url
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.silence_timeout, self.connect_timeout = silence_timeout, connect_timeout
        self._rng = rng or random.Random()
        self._ws = None
        self._healthy = False

    def stop(self):
        super().stop()
        ws = self._ws
        if ws is not None:
            ws.close(timeout=0)  # wakes the reading greenlet at once

    def run(self, emit):
        attempt = 0
        while not self.stopped:
            self._healthy = False
            try:
                self._session(emit)
                reason = None
            except (OSError, WSError) as e:
                reason = f"{type(e).__name__}: {e}"
            if self.stopped:
                break
            self.stats.errors += 1
            self.stats.last_error = reason or "connection closed"
            if self._healthy:
                attempt = 0
            delay = self._rng.uniform(0, min(self.backoff_cap,
                                             self.backoff_base * 2 ** attempt))
            attempt = min(attempt + 1, 32)
            self._stop.wait(delay)
            if self.stopped:
                break
            self.stats.reconnects += 1

    def _session(self, emit):
        ws = WSClient.connect(self.url, timeout=self.connect_timeout)
        self._ws = ws
        try:
            if self.stopped:
                return
            self._on_open(ws)
            while not self.stopped:
                try:
                    msg = ws.recv(timeout=self.silence_timeout)
                except TimeoutError:
                    # Pings count as life; only total silence is a dead link.
                    if monotonic() - ws.last_read_at < self.silence_timeout:
                        continue
                    raise TimeoutError(f"no data for {self.silence_timeout}s") from None
                if msg is None:
                    if self.stopped:
                        return
                    raise ConnectionError(f"closed by the server (code {ws.close_code})")
                self._on_message(msg, emit)
        finally:
            self._ws = None
            ws.close(timeout=0)

    def _on_open(self, ws):
        pass

    def _decode(self, msg):
        try:
            data = json.loads(msg)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self._malformed(f"not a JSON object: {str(msg)[:80]!r}")
            return None
        return data

    def _malformed(self, why):
        self.stats.malformed += 1
        self.stats.last_error = f"malformed message: {why}"

    def _tick(self, emit, price, ts):
        self._healthy = True
        self._emit(emit, Tick(price, ts))


class CoinbaseFeed(_ExchangeFeed):
    """Coinbase Exchange `ticker` + `heartbeat` channels for one product."""

    name = "coinbase"
    default_url = "wss://ws-feed.exchange.coinbase.com"

    def __init__(self, url=None, product="BTC-USD", **kw):
        super().__init__(url, **kw)
        self.product = product

    def _on_open(self, ws):
        ws.send_text(json.dumps({"type": "subscribe", "product_ids": [self.product],
                                 "channels": ["ticker", "heartbeat"]}))

    def _on_message(self, msg, emit):
        data = self._decode(msg)
        if data is None:
            return
        kind = data.get("type")
        if kind == "ticker":
            if data.get("product_id") != self.product:
                self.stats.ignored += 1
                return
            try:
                price, ts = parse_price_cents(data["price"]), iso_to_ms(data["time"])
            except (KeyError, ValueError) as e:
                self._malformed(f"ticker: {e}")
                return
            self._tick(emit, price, ts)
        elif kind == "heartbeat":
            self.stats.heartbeats += 1
        elif kind == "error":
            self.stats.errors += 1
            self.stats.last_error = f"coinbase: {data.get('message')} {data.get('reason', '')}"


class BinanceFeed(_ExchangeFeed):
    """Binance `<symbol>@trade` stream (raw or combined-stream envelope).
    Binance pings every ~20 s and sends no heartbeat messages, so the
    silence limit is longer than Coinbase's."""

    name = "binance"
    default_url = "wss://stream.binance.com:9443/ws/btcusdt@trade"

    def __init__(self, url=None, symbol="BTCUSDT", silence_timeout=60.0, **kw):
        super().__init__(url, silence_timeout=silence_timeout, **kw)
        self.symbol = symbol

    def _on_message(self, msg, emit):
        data = self._decode(msg)
        if data is None:
            return
        if isinstance(data.get("data"), dict) and "stream" in data:
            data = data["data"]
        if data.get("e") != "trade":
            return  # e.g. {"result": null, "id": 1} subscription replies
        if self.symbol and data.get("s") != self.symbol:
            self.stats.ignored += 1
            return
        ts = data.get("T")
        if type(ts) is not int:
            self._malformed(f"trade time {ts!r}")
            return
        try:
            price = parse_price_cents(data.get("p"))
        except ValueError as e:
            self._malformed(f"trade: {e}")
            return
        self._tick(emit, price, ts)


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

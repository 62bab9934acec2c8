"""Exchange feeds: Coinbase Exchange ``ticker``, Binance ``@trade`` and
Kraken WebSocket v2 ``ticker`` over WebSocket, reconnecting by themselves (exponential backoff, full jitter),
and the parsers of their price and time formats (exact: no floats).

    >>> parse_price_cents("99728.83"), iso_to_ms("2024-12-07T18:00:00.542551Z")
    (9972883, 1733594400542)
    >>> feed = CoinbaseFeed("ws://127.0.0.1:9/")   # any server speaking the format
"""
import json
import random
import re
import time
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from time import monotonic


from ._wsclient import WSClient, WSError
from ._base import Feed, Tick

__all__ = ["CoinbaseFeed", "BinanceFeed", "KrakenFeed", "parse_price_cents", "iso_to_ms"]

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

    def _decode(self, msg, parse_float=None):
        try:
            data = json.loads(msg, parse_float=parse_float)
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


class KrakenFeed(_ExchangeFeed):
    """Kraken WebSocket v2 ``ticker`` channel for one pair (``BTC/USD``).

    v2 sends prices as JSON numbers: they are read as their literal text
    (``parse_float=str``) so cents stay exact. Besides ticker snapshots and
    updates the server sends ``status`` (system online/maintenance),
    subscribe acks (``"method": "subscribe"``, ``success``), and a
    ``heartbeat`` about once a second when nothing else is sent, so a short
    silence limit is safe. A refused subscription ends the connection (and
    is retried with backoff): without it no tick would ever come."""

    name = "kraken"
    default_url = "wss://ws.kraken.com/v2"

    def __init__(self, url=None, symbol="BTC/USD", clock=time.time, **kw):
        super().__init__(url, **kw)
        self.symbol = symbol
        self.system = None              # last "status" from the server (online, maintenance...)
        self._clock = clock

    def _on_open(self, ws):
        ws.send_text(json.dumps({"method": "subscribe", "req_id": 1, "params": {
            "channel": "ticker", "symbol": [self.symbol]}}))

    def _on_message(self, msg, emit):
        data = self._decode(msg, parse_float=str)
        if data is None:
            return
        channel = data.get("channel")
        if channel == "ticker":
            return self._ticker(data, emit)
        if channel == "heartbeat":
            self.stats.heartbeats += 1
        elif channel == "status":
            items = data.get("data")
            if isinstance(items, list) and items and isinstance(items[0], dict):
                self.system = items[0].get("system")
        elif data.get("method") == "subscribe":
            if data.get("success") is not True:
                self.stats.last_error = f"kraken: subscribe refused: {data.get('error')}"
                raise ConnectionError(self.stats.last_error)
        else:
            self.stats.ignored += 1         # pong, other channels, unknown methods

    def _ticker(self, data, emit):
        items = data.get("data")
        if data.get("type") not in ("snapshot", "update") or not isinstance(items, list):
            self._malformed(f"ticker: {str(data)[:80]}")
            return
        for item in items:
            if not isinstance(item, dict):
                self._malformed("ticker item is not an object")
                continue
            if item.get("symbol") != self.symbol:
                self.stats.ignored += 1
                continue
            last = item.get("last")
            try:
                price = parse_price_cents(str(last) if type(last) is int else last)
                stamp = item.get("timestamp")
                # older v2 servers send no timestamp: then the time it arrived
                ts = iso_to_ms(stamp) if stamp is not None else int(self._clock() * 1000)
            except ValueError as e:
                self._malformed(f"ticker: {e}")
                continue
            self._tick(emit, price, ts)

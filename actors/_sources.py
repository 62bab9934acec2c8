"""One asset's price from several sources: the median of the fresh ones.

A source is fresh while its last tick is at most 2x its interval old.
The price is suspended (``state`` is not ``"ok"``) when fewer than
``quorum`` sources are fresh, or when a fresh source is more than
``divergence_bp`` basis points away from their median; it comes back by
itself as soon as both hold again. The Watchdog owns one ``SourceBoard``
per asset; /metrics reads its ``snapshot``.

Each price that enters the record carries its sources (``encode_sources``:
the first in cents, the others as offsets from it), so anyone can
recompute the median later, and a price edited alone no longer is one.

    >>> b = SourceBoard(["coinbase", "binance", "kraken"], [1000] * 3, quorum=2,
    ...                 divergence_bp=50)
    >>> b.update(0, Tick(9_500_000, 1), now_ms=0), b.update(1, Tick(9_500_400, 2), now_ms=0)
    (True, True)
    >>> b.evaluate(now_ms=10)
    ('ok', 9500200)
    >>> b.encode()
    'coinbase=9500000,binance+400'
    >>> b.update(2, Tick(9_700_000, 3), now_ms=20); b.evaluate(now_ms=20)
    True
    ('divergence', 9500400)
    >>> b.evaluate(now_ms=2021)      # no tick for 2x the interval: all three drop out
    ('quorum', None)
    >>> median_of([3, 1, 2]), median_of([1, 4]), decode_sources('coinbase=9500000,binance+400')
    (2, 2, {'coinbase': 9500000, 'binance': 9500400})
"""
import re

from .feeds import Tick  # noqa: F401  (the examples above use it)

__all__ = ["SourceBoard", "median_of", "encode_sources", "decode_sources", "source_names",
           "OK", "QUORUM", "DIVERGENCE"]

OK, QUORUM, DIVERGENCE = "ok", "quorum", "divergence"
_FIRST_RE = re.compile(r"([A-Za-z0-9_.-]+)=(\d+)")
_REST_RE = re.compile(r"([A-Za-z0-9_.-]+?)([+-]\d+)")


def median_of(prices):
    """The median in whole cents; with an even count, the mean of the two
    middle prices rounded down (prices are integers, never floats)."""
    s = sorted(prices)
    n = len(s)
    if n == 0:
        raise ValueError("median of no prices")
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) // 2


def encode_sources(prices):
    """{name: price} as ``first=cents,other+offset,...`` (offsets from the
    first price: a few bytes a source)."""
    items = list(prices.items())
    first = items[0][1]
    return ",".join([f"{items[0][0]}={first}"] + [f"{n}{p - first:+d}" for n, p in items[1:]])


def decode_sources(text):
    """The inverse of ``encode_sources``; ValueError on anything else."""
    parts = text.split(",")
    m = _FIRST_RE.fullmatch(parts[0])
    if m is None:
        raise ValueError(f"bad first source entry {parts[0]!r}")
    first = int(m[2])
    out = {m[1]: first}
    for part in parts[1:]:
        m = _REST_RE.fullmatch(part)
        if m is None:
            raise ValueError(f"bad source entry {part!r}")
        out[m[1]] = first + int(m[2])
    return out


def source_names(kinds):
    """Display names for a list of source kinds: a kind used once keeps its
    name; repeated kinds are numbered (``sim-1``, ``sim-2``...)."""
    counts = {k: kinds.count(k) for k in kinds}
    seen = {}
    names = []
    for k in kinds:
        if counts[k] == 1:
            names.append(k)
        else:
            seen[k] = seen.get(k, 0) + 1
            names.append(f"{k}-{seen[k]}")
    return names


class SourceBoard:
    """The last tick of every source and the rules above. ``now_ms`` is a
    monotonic clock in ms (when the tick arrived here, not the exchange's
    stamp: a source whose clock is wrong must still drop out when silent)."""

    def __init__(self, names, intervals_ms, quorum=1, divergence_bp=100, outlier_bp=500):
        if len(names) != len(intervals_ms) or not names:
            raise ValueError("one interval per source, at least one source")
        if len(set(names)) != len(names):
            raise ValueError("source names must be distinct")
        self.names = list(names)
        self.stale_after = [2 * i for i in intervals_ms]
        self.quorum = max(1, min(int(quorum), len(names)))
        self.divergence_bp = divergence_bp
        self.outlier_bp = outlier_bp
        n = len(names)
        self.last = [None] * n            # Tick
        self.seen = [None] * n            # monotonic ms of arrival
        self.counts = [{"ticks": 0, "outliers": 0, "out_of_order": 0} for _ in names]
        self.state = QUORUM
        self.median = None
        self._fresh = {}

    def update(self, i, tick, now_ms):
        """Take source ``i``'s tick; False (and counted) for a non-positive
        price, one older than the source's last, or a jump of more than
        ``outlier_bp`` from its last price."""
        last = self.last[i]
        c = self.counts[i]
        if tick.price <= 0:
            c["outliers"] += 1
            return False
        if last is not None:
            if tick.ts < last.ts:
                c["out_of_order"] += 1
                return False
            if abs(tick.price - last.price) * 10000 > self.outlier_bp * last.price:
                c["outliers"] += 1
                return False
        self.last[i] = tick
        self.seen[i] = now_ms
        c["ticks"] += 1
        return True

    def fresh(self, now_ms):
        """{name: price} of the sources heard from within 2x their interval."""
        return {self.names[i]: t.price for i, t in enumerate(self.last)
                if t is not None and now_ms - self.seen[i] <= self.stale_after[i]}

    def evaluate(self, now_ms):
        """(state, median): state ``ok``, ``quorum`` or ``divergence``;
        median None when no source is fresh."""
        self._fresh = fresh = self.fresh(now_ms)
        self.median = median = median_of(fresh.values()) if fresh else None
        if len(fresh) < self.quorum:
            self.state = QUORUM
        elif any(abs(p - median) * 10000 > self.divergence_bp * median for p in fresh.values()):
            self.state = DIVERGENCE
        else:
            self.state = OK
        return self.state, median

    def encode(self):
        """The record's ``src`` text for the last evaluated median: the fresh
        sources it came from (None with one source: the price is then that
        source's tick, as before sources existed)."""
        if len(self.names) == 1 or self.median is None:
            return None
        return encode_sources(self._fresh)

    def snapshot(self, now_ms):
        """Per source: age (ms since its last tick arrived), deviation from
        the median (bp), fresh; plus the quorum state, for /metrics."""
        fresh = self.fresh(now_ms)
        median = median_of(fresh.values()) if fresh else None
        sources = []
        for i, name in enumerate(self.names):
            t = self.last[i]
            dev = None
            if t is not None and median:
                dev = (t.price - median) * 10000 / median
            sources.append({"name": name, "age_ms": None if t is None else now_ms - self.seen[i],
                            "deviation_bp": dev, "fresh": name in fresh,
                            "price": None if t is None else t.price, **self.counts[i]})
        return {"state": self.state, "quorum": self.quorum, "fresh": len(fresh),
                "median": median, "divergence_bp": self.divergence_bp, "sources": sources}

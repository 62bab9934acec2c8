"""How much more (or less) a price moves over a few seconds than its 1 s moves say.

The pricer prices a window's path with one sigma, the long-run variance
rate the kernel in ``_volatility`` estimates. Where neighbouring moves are
dependent over a few seconds (a trend that persists for a second or two,
then gives way), a few seconds' variance is not k times a second's: the
variance ratio

    VR(k) = Var(k-second return) / (k Var(1-second return))

is above 1, and a window's path ranges further than a Brownian path of the
long-run sigma does. ``HorizonRatio`` estimates VR(k) online: at every tick
the return since the last tick at least 1 s (and k s) before it, squared,
over the time it spans, each weighted by the tick's gap (a ratio in time,
so irregular ticks are not miscounted), both EWMAs of one long half-life
(a property of the feed, like its bounce: 30 min), with a prior of VR = 1
as if seen for ``prior_s`` seconds. Independent moves give VR = 1 whatever
the clock, so a sim feed is priced as before.

Bid/ask bounce (observation noise of variance w^2) adds 2 w^2 to every
squared return whatever its span, which would read as VR < 1 and undo the
kernel's own correction: ``ratio(noise)`` takes 2 w^2 out of both (w^2 as
the kernel measures it, minus the lag-1 autocovariance where it is
negative).

Cost: two deques of the last k seconds' ticks and a dozen float operations
a tick (O(1) amortised, no numpy), read in O(1).

    >>> h = HorizonRatio(k_s=2.0)
    >>> round(h.ratio(), 9)           # the prior: independent moves
    1.0
    >>> x = 0.0
    >>> for i in range(40_000):      # a tick a second: +1 bp three times, then -1 bp three
    ...     x += 1e-4 if i % 6 < 3 else -1e-4
    ...     h.update(x, i * 1000)
    >>> round(h.raw(), 3)             # 2 s: (2 + 2 x 1/3) bp^2 against 2 x 1 bp^2
    1.333
    >>> round(h.se(), 3), round(h.ratio(), 3)   # an hour and a half's EWMA: shrunk by 0.1 %
    (0.014, 1.332)
    >>> h = HorizonRatio(k_s=3.0)
    >>> for i in range(40_000):      # +1 bp, -1 bp: each move undone
    ...     h.update(1e-4 * (i % 2), i * 1000)
    >>> round(h.raw(), 3), h.ratio()  # 3 s: 1 bp^2 against 3 x 1 bp^2; clipped
    (0.333, 0.8)
"""
import math
from collections import deque

__all__ = ["HorizonRatio"]

_LN2 = math.log(2.0)


class _Horizon:
    """Returns over at least ``h_s`` seconds, ending at every tick: EWMAs of
    gap x r^2, gap x span and gap (the noise term's weight)."""
    __slots__ = ("h_ms", "past", "rr", "span", "w", "w2")

    def __init__(self, h_s, prior_var, prior_s):
        self.h_ms = h_s * 1000.0
        self.past = deque()
        # A steady state of VR = 1 at the prior variance rate, prior_s seconds of it.
        self.rr, self.span, self.w = prior_var * h_s * prior_s, h_s * prior_s, prior_s
        # The same weights decayed twice as fast: w^2 / w2 is the EWMA's
        # effective length in seconds (2 / rate in the steady state).
        self.w2 = prior_s

    def add(self, x, ts, gap_s, lam):
        past = self.past
        past.append((ts, x))
        # Keep the last tick at least h before this one at the left.
        while len(past) > 2 and past[1][0] <= ts - self.h_ms:
            past.popleft()
        self.rr *= lam
        self.span *= lam
        self.w *= lam
        self.w2 *= lam * lam
        t1, x1 = past[0]
        if ts - t1 >= self.h_ms:
            r = x - x1
            self.rr += gap_s * r * r
            self.span += gap_s * (ts - t1) / 1000.0
            self.w += gap_s
            self.w2 += gap_s

    def rate(self, noise):
        """Variance per second of these returns, 2 ``noise`` taken out of each."""
        return (self.rr - 2.0 * noise * self.w) / self.span


class HorizonRatio:
    """VR(``k_s``) of log prices against 1 s returns, online, clipped to ``clip``."""

    MAX_GAP_S = 5.0     # an outage's return weighs as much as a gap of this

    def __init__(self, k_s: float = 2.5, half_life_s: float = 1800.0, prior_s: float = 300.0,
                 prior_var: float = 1e-8, clip: tuple = (0.8, 1.5), shrink: float = 1.0):
        if k_s <= 1.0 or half_life_s <= 0 or prior_s <= 0 or prior_var <= 0 \
                or not 0 < clip[0] <= 1 <= clip[1] or shrink < 0:
            raise ValueError("k_s > 1, half_life_s, prior_s, prior_var > 0, clip around 1, "
                             "shrink >= 0")
        self.k_s = k_s
        self.shrink = shrink
        self.clip = clip
        self._rate = _LN2 / half_life_s
        self._one = _Horizon(1.0, prior_var, prior_s)
        self._k = _Horizon(k_s, prior_var, prior_s)
        self._last_ts = None

    def update(self, x: float, ts_ms: int) -> None:
        """A tick of log price ``x`` at ``ts_ms`` (in order; the caller drops late ones)."""
        if self._last_ts is None:
            gap_s = 0.0
        else:
            gap_s = min((ts_ms - self._last_ts) / 1000.0, self.MAX_GAP_S)
        self._last_ts = ts_ms
        lam = math.exp(-self._rate * gap_s)
        self._one.add(x, ts_ms, gap_s, lam)
        self._k.add(x, ts_ms, gap_s, lam)

    def raw(self, noise: float = 0.0) -> float:
        """VR(k) unclipped (``noise``: the bounce's variance w^2 per tick)."""
        one = self._one.rate(noise)
        return self._k.rate(noise) / one if one > 0.0 else 1.0

    def effective_s(self) -> float:
        """Seconds of k-second returns the EWMA holds (prior included)."""
        k = self._k
        return k.w * k.w / k.w2

    def se(self) -> float:
        """Standard error of ``raw`` for independent Gaussian moves: Lo and
        MacKinlay's overlapping-returns variance 2 (2k - 1)(k - 1) / (3 k T),
        T in seconds (1 s the base return), the EWMA's effective length."""
        k = self.k_s
        return math.sqrt(2.0 * (2.0 * k - 1.0) * (k - 1.0) / (3.0 * k * self.effective_s()))

    def ratio(self, noise: float = 0.0) -> float:
        """VR(k) shrunk towards 1 by its own error, then clipped (a ratio
        outside ``clip`` is a feed this model is not for).

        The window is priced with it, so on a feed whose true ratio is 1
        its noise (+-0.02 a path after 30 min) is priced noise, which far
        cells of a feed of few ticks a window pay for most. The positive
        part of James-Stein's weight, 1 - shrink se^2 / (VR - 1)^2, keeps a
        ratio that stands well clear of its error (the recording's 1.045
        at +-0.011: weight ~0.9) and sends one within ``sqrt(shrink)`` s.e.
        of 1 to 1 exactly."""
        raw = self.raw(noise)
        d = raw - 1.0
        if d == 0.0:
            return 1.0
        se = self.se()
        w = 1.0 - self.shrink * se * se / (d * d)
        if w <= 0.0:
            return 1.0
        lo, hi = self.clip
        return min(hi, max(lo, 1.0 + w * d))

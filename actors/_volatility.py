"""Online sigma from every tick, resistant to bid/ask bounce, with its own error.

The variance rate that moves a price over seconds is the returns' long-run
variance: gamma0 + 2 gamma1 per tick (the returns' variance plus twice their
lag-1 autocovariance), divided by the mean gap. Observed prices are the
true price plus noise (a trade at the bid, the next at the ask): a noise of
variance w^2 adds 2 w^2 to every squared return and -w^2 to every product
of neighbouring returns, and cancels from gamma0 + 2 gamma1 (the first-order
realised kernel, Zhou 1996; Hansen and Lunde 2006). Without noise gamma1 is
0 and the estimate is the realised variance of every tick, ten times the
samples of 1 s returns at 100 ms ticks (a third of the error of sigma).

- gamma0: an EWMA in time (``half_life_s``, 60 s) of squared tick returns
  over an EWMA of the gaps they span (a ratio, so irregular ticks and gaps
  are scaled, not miscounted);
- gamma1: the same ratio for products of neighbouring returns, over a long
  half-life (``noise_half_life_s``, 30 min): the noise is a property of the
  feed that changes slowly, and its estimate adds little error there;
- ``log_sd``: the standard error of log sigma from the two ratios' own
  sandwich variances (sum w^2 (y - g dt)^2 / (sum w dt)^2), so fat tails,
  irregular gaps and bounce widen it as they widen the real error.

Before ticks arrive both ratios hold a prior: ``initial`` as if an EWMA's
worth of 1 s Gaussian returns had been seen, and no bounce as if for ~10 s;
the first ticks outweigh both.

    >>> v = Volatility(initial=1e-4)
    >>> round(v.estimate, 6), round(v.log_sd, 3)
    (0.0001, 0.054)
    >>> for i in range(2000):                       # a price bouncing bid/ask
    ...     v.update(6_000_000 + 500 * (i % 2), i * 250)
    >>> v.estimate, v.sigma == v.floor
    (0.0, True)
"""
import math

from ._horizon import HorizonRatio

__all__ = ["Volatility"]

_LN2 = math.log(2.0)
_MAX_LOG_SD = 0.35    # past this the floor, not the estimate, sets the price


class _Ratio:
    """sum w y / sum w dt with weights decaying in time, and its sandwich variance."""
    __slots__ = ("rate", "y", "dt", "q_yy", "q_ydt", "q_dtdt")

    def __init__(self, half_life_s, prior_rate, prior_sd, prior_half_life_s=None):
        # A steady state of 1 s samples of mean prior_rate and s.d. prior_sd,
        # as many as an EWMA of prior_half_life_s holds.
        self.rate = _LN2 / half_life_s
        lam = math.exp(-_LN2 / (prior_half_life_s or half_life_s))
        n, n2 = 1.0 / (1.0 - lam), 1.0 / (1.0 - lam * lam)
        self.y, self.dt = prior_rate * n, n
        self.q_yy = (prior_sd ** 2 + prior_rate ** 2) * n2
        self.q_ydt, self.q_dtdt = prior_rate * n2, n2

    def add(self, y, dt, gap):
        lam = math.exp(-self.rate * gap)
        l2 = lam * lam
        self.y = self.y * lam + y
        self.dt = self.dt * lam + dt
        self.q_yy = self.q_yy * l2 + y * y
        self.q_ydt = self.q_ydt * l2 + y * dt
        self.q_dtdt = self.q_dtdt * l2 + dt * dt

    def value(self):
        return self.y / self.dt

    def variance(self):
        g = self.y / self.dt
        return max(0.0, self.q_yy - 2.0 * g * self.q_ydt + g * g * self.q_dtdt) / (self.dt ** 2)


class Volatility:
    """sigma per sqrt(second) from the Watchdog's ticks; the mean tick spacing."""

    # BTC realises ~50-60 %/year: 0.55 / sqrt(365.25 * 86400 s) ~= 1e-4 per
    # sqrt(s), a sane start before ticks arrive. The floor (~28 %/year) is a
    # level BTC rarely sits under for long; without it a quiet minute would
    # price far cells as near-impossible and offer 100x just before a move.
    DEFAULT_INITIAL = 1.0e-4
    DEFAULT_FLOOR = 5.0e-5

    # Gaps longer than this are outages, not the feed's rhythm.
    MAX_GAP_MS = 5000.0

    def __init__(self, half_life_s: float = 60.0, floor: float = DEFAULT_FLOOR,
                 initial: float = DEFAULT_INITIAL, initial_tick_ms: float = 1000.0,
                 noise_half_life_s: float = 1800.0, horizon_s: float | None = 2.5):
        if half_life_s <= 0 or noise_half_life_s <= 0 or floor < 0 or initial < 0 \
                or initial_tick_ms < 0:
            raise ValueError("half lives > 0, floor >= 0, initial >= 0, initial_tick_ms >= 0")
        self.half_life_s = half_life_s
        self.floor = floor
        v0 = initial * initial
        # Squared 1 s Gaussian returns: mean v0, s.d. sqrt(2) v0, as many as
        # the EWMA holds (the error the pricer starts with); no bounce, as
        # if seen for ~10 s (the feed's own bounce outweighs it in a minute,
        # then is kept for half an hour).
        self._g0 = _Ratio(half_life_s, v0, math.sqrt(2.0) * v0)
        self._g1 = _Ratio(noise_half_life_s, 0.0, 0.0, prior_half_life_s=7.0)
        # The variance ratio at a few seconds (``_horizon``), learnt as
        # slowly as the bounce. Not in ``estimate``: scaling the whole sigma
        # by it over-corrects far cells (perf/README.md, stop 26); it is for
        # the window's variance alone (``horizon_ratio``). None: not learnt.
        self._horizon = None if horizon_s is None else HorizonRatio(
            horizon_s, half_life_s=noise_half_life_s, prior_var=max(v0, 1e-12))
        self._gap_ms = None
        self._gap_dev = None
        self._initial_tick_ms = float(initial_tick_ms)
        self._last_price = None
        self._last_ts = None
        self._last_r = None

    def update(self, price: int, ts_ms: int) -> None:
        if price <= 0 or (self._last_ts is not None and ts_ms < self._last_ts):
            return  # late or nonsense ticks would rewrite history
        if self._horizon is not None:
            self._horizon.update(math.log(price), ts_ms)
        if self._last_ts is None:
            self._last_price, self._last_ts = price, ts_ms
            return
        raw = ts_ms - self._last_ts
        gap = min(raw, self.MAX_GAP_MS)
        if self._gap_ms is None:
            self._gap_ms = gap
        else:
            # The gaps' spread says whether the feed ticks on a clock
            # (the pricer can then place the ticks to come).
            dev = abs(gap - self._gap_ms)
            self._gap_dev = dev if self._gap_dev is None else self._gap_dev + 0.02 * (dev - self._gap_dev)
            self._gap_ms += 0.02 * (gap - self._gap_ms)
        dt = raw / 1000.0       # an outage's return carries the whole outage's variance
        r = math.log(price / self._last_price)
        self._g0.add(r * r, dt, dt)
        if self._last_r is not None:
            self._g1.add(r * self._last_r, dt, dt)
        self._last_r = r
        self._last_price, self._last_ts = price, ts_ms

    def _var(self):
        return self._g0.value() + 2.0 * self._g1.value()

    @property
    def horizon_ratio(self) -> float:
        """VR at ``horizon_s`` against 1 s returns (``_horizon``), the bounce
        the kernel sees (a negative lag-1 autocovariance per tick) taken out
        of both: how much more a few seconds move than the kernel's sigma
        says (1.0 when not learnt)."""
        if self._horizon is None:
            return 1.0
        noise = max(0.0, -self._g1.value() * self.tick_ms / 1000.0)
        return self._horizon.ratio(noise)

    @property
    def log_sd(self) -> float:
        """Standard error of log(sigma): var(sigma^2) / (2 sigma^2)^2 by the
        delta method, var(sigma^2) from both ratios' sandwich variances."""
        var = self._var()
        if var <= 0.0:
            return _MAX_LOG_SD
        vv = self._g0.variance() + 4.0 * self._g1.variance()
        return min(_MAX_LOG_SD, 0.5 * math.sqrt(vv) / var)

    @property
    def tick_ms(self) -> float:
        """Mean milliseconds between ticks (EWMA over ~50 ticks)."""
        return self._initial_tick_ms if self._gap_ms is None else self._gap_ms

    @property
    def tick_sd_ms(self) -> float | None:
        """Spread of the gaps between ticks (the EWMA of |gap - mean gap|
        as a Gaussian s.d.: x sqrt(pi / 2)); None until there are three ticks."""
        return None if self._gap_dev is None else self._gap_dev * math.sqrt(math.pi / 2.0)

    @property
    def estimate(self) -> float:
        """The estimator's own sigma, under the floor too (0 when the noise
        correction exceeds the variance): the pricer takes the floor as a
        bound on the true sigma, not on this estimate of it."""
        return math.sqrt(max(0.0, self._var()))

    @property
    def sigma(self) -> float:
        return max(self.floor, self.estimate)

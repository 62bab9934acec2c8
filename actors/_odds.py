"""Odds for a grid cell: touch probability, offered multiplier (and ``Volatility``, the online sigma, from ``_volatility``).

Model. Log-price X is a driftless Brownian motion with volatility sigma per
sqrt(second); X_0 = 0 stands for the current price S0. A cell's window
starts after T1 = wait and lasts tau = window; its band [lo, hi) becomes
a = log(lo/S0), b = log(hi/S0) in log space. Write s1 = sigma*sqrt(T1),
s2 = sigma*sqrt(tau), sY = sqrt(s1^2 + s2^2), rho = s1/sY. The cell is
touched when the path over the window starts inside the band, or starts
below and its max reaches a, or starts above and its min reaches b:

  P = P(a <= X1 < b) + P(X1 < a, max >= a) + P(X1 >= b, min <= b).

Reflection: for x < a, P(max over tau >= a | X1 = x) = 2 Phi((x - a)/s2)
= 2 P(x + s2 W >= a), W ~ N(0,1). With Y = X1 + s2 W (the price at window
end), cov(X1, Y) = s1^2 and var Y = sY^2, so integrating over X1 gives

  P(X1 < a, max >= a) = 2 P(X1 < a, Y > a) = 2 L(-a/s1,  a/sY; -rho)
  P(X1 > b, min <= b) = 2 P(X1 > b, Y < b) = 2 L( b/s1, -b/sY; -rho)

where L(h, k; r) = P(U > h, V > k) for standard normals with correlation r
(computed by `_bvn_upper`, Genz's method, ~1e-15 absolute). With T1 = 0 it
collapses to the plain reflection formula 2 Phi(-a/s2) (band above),
2 Phi(b/s2) (band below) and 1 when S0 is in the band.

multiplier(p) is floor_to_0.01((1 - edge)/p), in hundredths, capped at
max_mult; cells under min_mult are not offered (None).

    >>> p = touch_probability(6_000_000, 6_001_000, 6_002_000, 0, 5_000, 1e-4)
    >>> round(p, 4)
    0.4561
    >>> multiplier(0.5), multiplier(1.0), multiplier(0.001)
    (190, None, 10000)
    >>> v = Volatility(initial=1e-4); v.update(6_000_000, 0); v.sigma
    0.0001
    >>> col = column_multipliers(6_000_500, 0, 5_000, 5_000, 1_000, 50, 1e-4)
    >>> col[6_000_000], col[6_003_000], col[6_050_000], len(col)
    (138, 534, 10000, 101)
"""
from decimal import Decimal
import math

from ._volatility import Volatility

__all__ = ["touch_probability", "multiplier", "Volatility",
           "column_multipliers", "MULT_BUCKETS", "mult_bucket"]

_SQRT2 = math.sqrt(2.0)
_TWO_PI = 2.0 * math.pi
# Terms whose upper bound is below this are dropped: a billionth of a
# percent never moves a multiplier by a hundredth.
_NEGLIGIBLE = 1e-13
_MAX_MULT = 10000  # 100x, SPEC section 3


# Multiplier buckets (hundredths, [lo, hi)) over which the edge is measured:
# bench_odds, the calibration test and /metrics use the same ones.
MULT_BUCKETS = (("1.01-1.5", 101, 150), ("1.5-2", 150, 200), ("2-3", 200, 300),
                ("3-5", 300, 500), ("5-10", 500, 1000), ("10-99.99", 1000, _MAX_MULT),
                ("100", _MAX_MULT, _MAX_MULT + 1))


def mult_bucket(mult: int) -> str:
    """The MULT_BUCKETS label of a multiplier in hundredths.

        >>> mult_bucket(190), mult_bucket(999), mult_bucket(10000)
        ('1.5-2', '5-10', '100')
    """
    for name, lo, hi in MULT_BUCKETS:
        if lo <= mult < hi:
            return name
    raise ValueError(f"multiplier out of range: {mult}")


def _phi(x):
    """Standard normal CDF; erfc keeps the far tails accurate."""
    return 0.5 * math.erfc(-x / _SQRT2)


def _gauss_legendre_half(n):
    """Negative-half Gauss-Legendre nodes/weights on [-1, 1] (Newton)."""
    out = []
    for i in range(1, n // 2 + 1):
        x = math.cos(math.pi * (i - 0.25) / (n + 0.5))
        for _ in range(100):
            p0, p1 = 1.0, x
            for j in range(2, n + 1):
                p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
            dp = n * (x * p1 - p0) / (x * x - 1)
            dx = p1 / dp
            x -= dx
            if abs(dx) < 1e-16:
                break
        out.append((-x, 2.0 / ((1 - x * x) * dp * dp)))
    return tuple(out)


# Genz uses 6, 12 and 20 points as |r| grows.
_GL6, _GL12, _GL20 = (_gauss_legendre_half(n) for n in (6, 12, 20))


def _genz_series(hk, bs, as_, a, exp):
    """Genz's |r| near 1 series: its two coefficients and leading term.

    Written once for both evaluators, the scalar one here (``math.exp``) and
    the vectorised one in ``_pricer`` (``np.exp``): the same operations in
    the same order, so both give the same bits."""
    c = (4 - hk) / 8
    d = (12 - hk) / 16
    return c, d, a * exp(-(bs / as_ + hk) / 2) * (
        1 - c * (bs - as_) * (1 - d * bs / 5) / 3 + c * d * as_ * as_ / 5)


def _bvn_upper(h, k, r):
    """P(U > h, V > k), U, V standard normal with correlation r.

    A. Genz, "Numerical computation of rectangular bivariate and trivariate
    normal and t probabilities" (2004), after Drezner & Wesolowsky (1990).
    """
    ar = abs(r)
    gl = _GL6 if ar < 0.3 else _GL12 if ar < 0.75 else _GL20
    hk = h * k
    if ar < 0.925:
        hs = (h * h + k * k) / 2
        asr = math.asin(r)
        s = 0.0
        for x, w in gl:
            sn = math.sin(asr * (x + 1) / 2)
            s += w * math.exp((sn * hk - hs) / (1 - sn * sn))
            sn = math.sin(asr * (1 - x) / 2)
            s += w * math.exp((sn * hk - hs) / (1 - sn * sn))
        return s * asr / (2 * _TWO_PI) + _phi(-h) * _phi(-k)
    if r < 0:
        k = -k
        hk = -hk
    bvn = 0.0
    if ar < 1:
        as_ = (1 - r) * (1 + r)
        a = math.sqrt(as_)
        bs = (h - k) ** 2
        c, d, bvn = _genz_series(hk, bs, as_, a, math.exp)
        if hk > -160:
            b = math.sqrt(bs)
            bvn -= (math.exp(-hk / 2) * math.sqrt(_TWO_PI) * _phi(-b / a) * b
                    * (1 - c * bs * (1 - d * bs / 5) / 3))
        a /= 2
        for x, w in gl:
            for xi in (x, -x):
                xs = as_ * (xi + 1) ** 2 / 4
                rs = math.sqrt(1 - xs)
                bvn += a * w * math.exp(-(bs / xs + hk) / 2) * (
                    math.exp(-hk * xs / (2 * (1 + rs) ** 2)) / rs
                    - (1 + c * xs * (1 + d * xs)))
        bvn = -bvn / _TWO_PI
    if r > 0:
        return bvn + _phi(-max(h, k))
    bvn = -bvn
    if k > h:
        bvn += _phi(k) - _phi(h) if h < 0 else _phi(-h) - _phi(-k)
    return bvn


def _touch(a, b, s1, s2):
    """Touch probability in log space (a may be -inf: a band down to zero)."""
    if s1 <= 0.0:
        if a <= 0.0 <= b:
            return 1.0
        if s2 <= 0.0:
            return 0.0
        return 2.0 * _phi(-a / s2) if a > 0.0 else 2.0 * _phi(b / s2)
    # Start inside the band: subtract the far tail to keep precision.
    if a > 0.0:
        p = _phi(-a / s1) - _phi(-b / s1)
    else:
        p = _phi(b / s1) - _phi(a / s1)
    if s2 <= 0.0:
        return p
    sy = math.sqrt(s1 * s1 + s2 * s2)
    rho = s1 / sy
    if a != -math.inf and 2.0 * min(_phi(a / s1), _phi(-a / sy)) > _NEGLIGIBLE:
        p += 2.0 * _bvn_upper(-a / s1, a / sy, -rho)
    if 2.0 * min(_phi(-b / s1), _phi(b / sy)) > _NEGLIGIBLE:
        p += 2.0 * _bvn_upper(b / s1, -b / sy, -rho)
    return min(1.0, max(0.0, p))


def _log_band(price, lo, hi):
    a = math.log(lo / price) if lo > 0 else -math.inf
    return a, math.log(hi / price)


def touch_probability(price: int, lo: int, hi: int, wait_ms: int,
                      window_ms: int, sigma: float) -> float:
    """P(the price path over [now+wait, now+wait+window) meets [lo, hi))."""
    if price <= 0 or hi <= lo or hi <= 0 or wait_ms < 0 or window_ms < 0 \
            or not sigma >= 0:
        raise ValueError("bad cell: price>0, lo<hi, waits>=0, sigma>=0")
    a, b = _log_band(price, lo, hi)
    return _touch(a, b, sigma * math.sqrt(wait_ms / 1000.0),
                  sigma * math.sqrt(window_ms / 1000.0))


def multiplier(p: float, edge_bp: int = 500, min_mult: int = 101,
               max_mult: int = 10000) -> int | None:
    """floor((1 - edge)/p) in hundredths, <= max_mult; None under min_mult.

    In hundredths that is floor((10000 - edge_bp) / (100 p)). The float
    quotient is right unless it sits within rounding noise of an integer;
    there we redo it exactly on the decimal that p prints as, so 0.5 gives
    190, not 189 via 0.95/0.5 = 1.8999999.
    """
    if not p > 0.0:  # zero chance (or nan: nothing sane to offer)
        return max_mult if p == 0.0 else None
    p = min(p, 1.0)
    num = 10000 - edge_bp
    q = num / (p * 100.0)
    if q >= max_mult:
        m = max_mult
    else:
        m = math.floor(q)
        frac = q - m
        if frac < 1e-6 or frac > 1 - 1e-6:
            n, d = Decimal(repr(p)).as_integer_ratio()
            m = (num * d) // (n * 100)
        m = min(m, max_mult)
    return m if m >= min_mult else None


def column_multipliers(price: int, now_ms: int, t0: int, column_ms: int,
                       band_cents: int, max_bands: int, sigma: float,
                       edge_bp: int = 500) -> dict[int, int]:
    """{lo: multiplier} for the offered cells of the column starting at t0.

    Walks out from the price's band both ways. The chance to touch a band
    is at most the chance to reach its near edge at any time before the
    window ends, 2 Phi(-|edge|/sY), which only shrinks further out; once
    that bound already earns the cap, every farther band is capped too, so
    no exact probability is computed there.
    Measured once (sigma 1e-4, $60k, $10 bands, 50 each way, CPython 3.11):
    ~0.02 ms per column at wait 0, ~0.06 ms at 3 s wait, ~0.5 ms at 60 s
    wait (about 25 bands need the bivariate terms); computing every band
    exactly instead costs 3-4x that.
    """
    if price <= 0 or band_cents <= 0 or max_bands < 0:
        raise ValueError("price > 0, band_cents > 0, max_bands >= 0")
    start = max(now_ms, t0)
    window_ms = t0 + column_ms - start
    if window_ms <= 0:
        return {}
    s1 = sigma * math.sqrt((start - now_ms) / 1000.0)
    s2 = sigma * math.sqrt(window_ms / 1000.0)
    sy = math.sqrt(s1 * s1 + s2 * s2)
    base = price // band_cents * band_cents
    out = {}
    for step in (1, -1):
        capped = False
        for k in range(0 if step == 1 else 1, max_bands + 1):
            lo = base + step * k * band_cents
            if lo < 0:
                break
            hi = lo + band_cents
            if capped:
                out[lo] = _MAX_MULT
                continue
            a, b = _log_band(price, lo, hi)
            edge = a if a > 0.0 else -b if b < 0.0 else 0.0
            if edge > 0.0 and sy > 0.0 and \
                    multiplier(2.0 * _phi(-edge / sy), edge_bp) == _MAX_MULT:
                capped = True
                out[lo] = _MAX_MULT
                continue
            m = multiplier(_touch(a, b, s1, s2), edge_bp)
            if m is not None:
                out[lo] = m
    return out

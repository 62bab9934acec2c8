"""HTTP routes the player's page added on top of v1 (every v1 client can
ignore them): the stored price record (SPEC section 9, v1.1 ``/api/ticks``)
so the chart is full on load, a demo top-up for a guest who ran out, and
the current wins feed and leaderboard (later ones come as ``feed`` frames).

    GET /api/ticks?asset=BTC-USD&from=MS&to=MS
      -> {"ticks": [[ts, price_cents], ...], "next": C | null}
    POST /api/topup   (Bearer token; demo mode, guests only)
      -> {"balance": B, "credited": N}
         404 bad_request (no demo mode), 403 bad_request (not a guest),
         409 limit (the balance is not low), 429 rate_limited (one per guest per topup_every_ms, kept by the market
         in the database; a bucket per address in each gateway too)
    GET /api/feed -> {"day", "wins": [...], "leaders": [...]}
         (the market's board, actors/_board.py, as this gateway last got it)

At most ``TICKS_MAX`` ticks a call, oldest first; ``next`` is the ``from``
of the following page (null when the range is done). The query runs in a
native thread (``run_blocking``) on a read-only connection, never on the
event loop.
"""
import time

import bottle

from ..gateway import TokenBucket

__all__ = ["add_player_routes", "AddressLimiter", "TICKS_MAX"]

TICKS_MAX = 10_000
DEFAULT_SPAN_MS = 180_000
ASSETS = ("BTC-USD",)          # without a market list: BTC-USD's record only


class AddressLimiter:
    """A token bucket per client address."""

    def __init__(self, rate, burst, max_keys=100_000):
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self.buckets = {}

    def allow(self, key):
        now = time.monotonic()
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.max_keys:
                self.buckets.clear()
            bucket = self.buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)


def _int_param(q, name, default):
    raw = q.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def _not_low(ApiError, cfg):
    return ApiError(409, "limit", f"top-ups are for a balance under {cfg.topup_below} minor units")


def add_player_routes(app, cfg, api, ApiError, address, session, market, hub):
    """Mount the routes on `app`; `api` is build_app's JSON wrapper,
    `address()` the caller's address (for the rate limits), `session()`
    the caller's session (or ApiError 401)."""
    ticks_limit = AddressLimiter(rate=5, burst=20)

    def assets():
        """Every market's asset has a record, the default market's first. Asked
        each time: a gateway learns the markets from the market, after it starts."""
        units = getattr(market, "units", None)
        return tuple(dict.fromkeys(u.spec.asset for u in units)) if units else ASSETS
    # A first filter per address, in this process; the limit per guest is
    # the market's, in the database (``MarketHandle.top_up``), so every
    # gateway process agrees on it and a restart keeps it.
    topup_limit = AddressLimiter(rate=0.1, burst=5)

    @app.post("/api/topup")
    @api
    def topup():
        if not cfg.demo:
            raise ApiError(404, "bad_request", "top-ups exist in demo mode only")
        s = session()
        if not str(s.user).startswith("guest-"):
            raise ApiError(403, "bad_request", "only demo guests can top up")
        if market.balance(s.uid) >= cfg.topup_below:
            raise _not_low(ApiError, cfg)
        if not topup_limit.allow(address()):
            bottle.response.set_header("Retry-After", "10")
            raise ApiError(429, "rate_limited", "too many top-ups from this address; slow down")
        r = market.top_up(s.uid, cfg.guest_credit, cfg.topup_below, cfg.topup_every_ms)
        if r.reason == "balance_not_low":
            raise _not_low(ApiError, cfg)
        if r.reason == "rate_limited":
            bottle.response.set_header("Retry-After", str(max(1, -(-r.retry_ms // 1000))))
            raise ApiError(429, "rate_limited", "one top-up per guest every few minutes")
        return {"balance": r.balance, "credited": r.credited}

    @app.get("/api/feed")
    @api
    def feed():
        f = getattr(hub, "feed", None)
        return f.snapshot() if f is not None else {"day": None, "wins": [], "leaders": []}

    @app.get("/api/ticks")
    @api
    def get_ticks():
        q = bottle.request.query
        known = assets()
        asset = q.get("asset") or known[0]
        if asset not in known:
            raise ApiError(400, "bad_request", f"unknown asset {asset!r}")
        now = int(time.time() * 1000)
        end = _int_param(q, "to", now + 1)
        start = _int_param(q, "from", None if end is None else end - DEFAULT_SPAN_MS)
        if start is None or end is None:
            raise ApiError(400, "bad_request", "from and to are integer Unix milliseconds")
        if start > end:
            raise ApiError(400, "bad_request", "from is after to")
        if not ticks_limit.allow(address()):
            bottle.response.set_header("Retry-After", "1")
            raise ApiError(429, "rate_limited", "too many price-record requests; slow down")
        rows = market.read_ticks(start, end, TICKS_MAX, asset)   # in a native thread, or a call
        nxt = rows[TICKS_MAX][0] if len(rows) > TICKS_MAX else None
        return {"ticks": [[ts, price] for ts, price in rows[:TICKS_MAX]], "next": nxt}

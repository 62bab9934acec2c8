"""Shared, read-mostly market state: open/suspended with a reason, and the
latest priced grid. Written by one owner each, read by many.

    >>> from actors._status import MarketStatus
    >>> st = MarketStatus()
    >>> st.set("stale_price", True); st.reason
    'stale_price'
    >>> st.set("stale_price", False); st.is_open
    True

A market's status sits under its asset's, which sits under the server's:
a cause set above holds below (``disk_low`` suspends every market, a stale
asset its own markets), and listeners below hear of it.

    >>> server = MarketStatus(); eth = MarketStatus(parent=server)
    >>> eth_5s = MarketStatus(parent=eth, market_id="ETH-USD/5s")
    >>> heard = []; eth_5s.subscribe(lambda s: heard.append(s.reason))
    >>> server.set("disk_low", True); eth.set("stale_price", True); server.set("disk_low", False)
    >>> heard, eth_5s.is_open, server.is_open
    (['disk_low', 'stale_price'], False, True)
"""
__all__ = ["MarketStatus", "Grid"]

# When several causes hold at once, the client sees the first of these.
# "disk_full" (a write failed) is reported to clients as disk_low.
_PRIORITY = ("stale_price", "starting", "disk_low", "disk_full", "overloaded")
_PUBLIC = {"disk_full": "disk_low", "starting": "stale_price"}
_REJECT_REASON = {"stale_price": "market_suspended", "disk_low": "disk_low",
                  "disk_full": "disk_low", "starting": "market_suspended",
                  "overloaded": "overloaded"}


class MarketStatus:
    def __init__(self, parent=None, market_id=None):
        self._own = set()
        self._causes = set()           # own and inherited: what readers see
        self._listeners = []
        self._children = []
        self.parent = parent
        self.market_id = market_id     # None: the server's or an asset's status
        self.changes = 0
        if parent is not None:
            parent._children.append(self)
            self._causes = set(parent._causes)

    @property
    def is_open(self):
        return not self._causes

    @property
    def reason(self):
        for cause in _PRIORITY:
            if cause in self._causes:
                return _PUBLIC.get(cause, cause)
        return next(iter(self._causes), None)

    @property
    def reject_reason(self):
        """The ack reason for a tap refused while suspended."""
        for cause in _PRIORITY:
            if cause in self._causes:
                return _REJECT_REASON[cause]
        return "market_suspended"

    def holds(self, cause):
        return cause in self._causes

    def set(self, cause, active):
        if active:
            self._own.add(cause)
        else:
            self._own.discard(cause)
        self._refresh()

    def _refresh(self):
        before = (self.is_open, self.reason)
        inherited = self.parent._causes if self.parent is not None else ()
        self._causes = self._own.union(inherited)
        for child in self._children:
            child._refresh()
        after = (self.is_open, self.reason)
        if after != before:
            self.changes += 1
            for fn in list(self._listeners):
                fn(self)

    def subscribe(self, fn):
        self._listeners.append(fn)

    def as_dict(self):
        return {"status": "open" if self.is_open else "suspended", "reason": self.reason}


class Grid:
    """One priced snapshot: ``columns`` is {t0: {lo: mult}}; replaced whole,
    never mutated, so readers need no lock."""
    __slots__ = ("version", "price", "price_ts", "sigma", "columns", "computed_at", "market_id")

    def __init__(self, version=0, price=0, price_ts=0, sigma=0.0, columns=None, computed_at=0,
                 market_id=None):
        self.market_id = market_id
        self.version = version
        self.price = price
        self.price_ts = price_ts
        self.sigma = sigma
        self.columns = columns or {}
        self.computed_at = computed_at

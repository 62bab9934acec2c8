"""Shared, read-mostly market state: open/suspended with a reason, and the
latest priced grid. Written by one owner each, read by many.

    >>> from actors._status import MarketStatus
    >>> st = MarketStatus()
    >>> st.set("stale_price", True); st.reason
    'stale_price'
    >>> st.set("stale_price", False); st.is_open
    True
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
    def __init__(self):
        self._causes = set()
        self._listeners = []
        self.changes = 0

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
        before = (self.is_open, self.reason)
        if active:
            self._causes.add(cause)
        else:
            self._causes.discard(cause)
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
    __slots__ = ("version", "price", "price_ts", "sigma", "columns", "computed_at")

    def __init__(self, version=0, price=0, price_ts=0, sigma=0.0, columns=None, computed_at=0):
        self.version = version
        self.price = price
        self.price_ts = price_ts
        self.sigma = sigma
        self.columns = columns or {}
        self.computed_at = computed_at

"""The markets as a gateway hears of them: the list the market process
publishes (``Keys.state`` field ``k``), each market with the parts the web
layer reads of a ``MarketUnit`` (``spec``, ``market_id``, ``ctx.cfg``,
``ctx.status``, ``ctx.grid``), so ``/api/markets``, ``/api/grid?market_id=``
and the per-market fan-out run unchanged on a gateway.

Until the market has been heard from, the list is empty (the default
market's status still answers: suspended, or ``overloaded`` while away).

    >>> from actors import Config
    >>> from ._watch import RemoteStatus
    >>> cat = Catalog(Config(), RemoteStatus())
    >>> cat.update({"default": "BTC-USD/5s", "markets": [
    ...     {"market_id": "BTC-USD/5s", "asset": "BTC-USD", "column_ms": 5000, "lock_ms": 3000,
    ...      "horizon_ms": 60000, "band_cents": 1000, "max_bands": 12, "cell_liability_cap": 1},
    ...     {"market_id": "ETH-USD/15s", "asset": "ETH-USD", "column_ms": 15000, "lock_ms": 3000,
    ...      "horizon_ms": 60000, "band_cents": 100, "max_bands": 12, "cell_liability_cap": 1}]})
    True
    >>> cat.unit(None).market_id, cat.unit("ETH-USD/15s").ctx.cfg.column_ms, cat.unit("X")
    ('BTC-USD/5s', 15000, None)
    >>> cat.unit(None).ctx.status is cat.default_status
    True
"""
import gevent

from engine import AskTimeout

from .._markets import MarketSpec, market_cfg, markets_body
from .._status import Grid
from ._watch import RemoteStatus

__all__ = ["Catalog", "RemoteUnit", "PublishedMarkets"]


class _Ctx:
    __slots__ = ("cfg", "status", "grid")

    def __init__(self, cfg, status):
        self.cfg, self.status, self.grid = cfg, status, Grid()


class RemoteUnit:
    """One market as published: its settings, its status, its latest grid."""
    __slots__ = ("spec", "market_id", "ctx")

    def __init__(self, spec, ctx):
        self.spec, self.market_id, self.ctx = spec, spec.market_id, ctx


class Catalog:
    def __init__(self, cfg, default_status):
        self.cfg = cfg
        self.default_status = default_status     # RemoteMarket.status: /healthz's
        self.units = []
        self.by_id = {}
        self.default_id = None
        self._head = None

    def update(self, head):
        """The market's list; True when it changed. A market kept keeps its
        status and grid; a new one starts away if the market is."""
        if head == self._head:
            return False
        specs = [MarketSpec(**{f: m[f] for f in MarketSpec._fields}) for m in head["markets"]]
        units = []
        for i, spec in enumerate(specs):
            old = self.by_id.get(spec.market_id)
            if i == 0:
                status = self.default_status
            elif old is not None and old.ctx.status is not self.default_status:
                status = old.ctx.status
            else:
                status = RemoteStatus()
                status.away = self.default_status.away
            ctx = _Ctx(market_cfg(self.cfg, spec), status)
            if old is not None:
                ctx.grid = old.ctx.grid
            units.append(RemoteUnit(spec, ctx))
        self.units = units
        self.by_id = {u.market_id: u for u in units}
        self.default_id = head["default"]
        self._head = head
        return True

    def unit(self, market_id=None):
        """The market ``market_id`` (None: the default); None when unknown."""
        if market_id is None:
            return self.units[0] if self.units else None
        return self.by_id.get(market_id)

    def statuses(self):
        return [u.ctx.status for u in self.units] or [self.default_status]

    def listing(self):
        """The ``/api/markets`` body; None before the market spoke."""
        return markets_body(self.default_id, self.units) if self.units else None


class PublishedMarkets:
    """``MarketHandle``'s names for what is on, answered from what the market
    process published (``RemoteMarket``'s ``catalog``, ``status``, ``grid``
    and ``away_listeners``)."""

    # The markets as the market process published them (``MarketHandle``'s names).
    @property
    def units(self):
        return self.catalog.units

    @property
    def by_id(self):
        return self.catalog.by_id

    @property
    def default_id(self):
        return self.catalog.default_id

    def unit(self, market_id=None):
        return self.catalog.unit(market_id)

    def default_asset(self):
        unit = self.catalog.unit(None)
        return None if unit is None else unit.spec.asset

    def markets(self):
        """``/api/markets``: what the market published; ``AskTimeout`` (a 503)
        before it ever did."""
        body = self.catalog.listing()
        if body is None:
            raise AskTimeout("the market has not published its markets yet")
        return body

    def set_away(self, away):
        """The market's heartbeat went (or came back): every market's status says so."""
        changed = away != self.status.away
        for status in self.catalog.statuses():
            status.set_away(away)
        if changed:
            for fn in list(self.away_listeners):
                fn()

    def health(self):
        return self.status.is_open, self.status.reason

    def wait_ready(self, timeout=10):
        with gevent.Timeout(timeout, False):
            while not (self.grid.columns and self.status.is_open):
                gevent.sleep(0.02)
            return True
        return False

"""The Fanout of a gateway process: it relays what the market published (the
tick, grid and market frames the market encoded once, for every market it
runs) to this gateway's connections, as the same bytes, at most
``fanout_hz`` a second like the embedded Fanout; results come from the
market's results stream.

    hub = RelayFanout(cfg, metrics)
    market = RemoteMarket(cfg); market.sinks = hub
    hub.start(market); market.start()

Per market it is the embedded Fanout (subscriptions, welcome, the
broadcaster's shared concatenations): only the frames differ, relayed here
where the embedded one encodes its own. The markets are the ones the
market process published (``RemoteMarket.unit``/``by_id``), so
``subscribe`` and ``/api/grid?market_id=`` take exactly those.

``Encoders`` is the other half: the market process encodes with it, so
the embedded server and the split send identical frames.
"""
import json

from actors import BoardView

from ._gridframes import frame, grid2_json, grid_bytes, typed_frame
from ._hub import Fanout

__all__ = ["RelayFanout", "Encoders"]


class Encoders:
    """How the market encodes its broadcasts (``actors.bus`` Publisher):
    what the embedded Fanout sends for the same market."""

    def __init__(self, cfg):
        self.cfg = cfg

    def tick(self, tick, asset=None):
        return Fanout._tick_frame(asset, tick)

    def market(self, status, market_id=None):
        body = {"type": "market", **status.as_dict()}
        if market_id is not None:
            body["market_id"] = market_id
        return frame(body)

    def grid(self, grid, status, cfg=None, market_id=None):
        cfg = cfg or self.cfg
        body = grid_bytes(cfg, grid, status, market_id)
        b2 = json.dumps(grid2_json(cfg, grid, status, market_id), separators=(",", ":")).encode()
        return (body, typed_frame(b"grid", body), typed_frame(b"grid2", b2))


class _Tick:
    __slots__ = ("price", "ts", "frame")

    def __init__(self, price, ts, frame_bytes):
        self.price, self.ts, self.frame = price, ts, frame_bytes


class _Grid:
    __slots__ = ("version", "body", "frame", "frame2")

    def __init__(self, version, body, f1, f2):
        self.version, self.body, self.frame, self.frame2 = version, body, f1, f2


class RelayFanout(Fanout):
    def __init__(self, cfg, metrics=None):
        super().__init__(cfg, metrics)
        self._relayed_market = {}           # market_id -> its last market frame

    def start(self, market):
        super().start(market)
        # The gateway's own word while the market is away (its heartbeat is missing).
        market.away_listeners.append(self._on_away)

    def relay(self, kind, head, parts):
        """A broadcast from the market: remembered (ticks, grids: sent by the
        broadcaster) or sent at once (market status). Works with no market
        started (tests): everything is then the default market's."""
        if kind == b"t":
            self.on_asset_tick(head.get("a"), _Tick(head["p"], head["t"], parts[0]))
        elif kind == b"g":
            self.on_market_grid(head.get("id") or self.default_id, _Grid(head["v"], *parts[:3]))
        elif kind == b"f":
            self.on_feed(BoardView(head["v"], head["day"], tuple(head["wins"]),
                                   tuple(head["leaders"])))
        elif kind == b"m":
            market_id = head.get("id") or self.default_id
            if self._relayed_market.get(market_id) == parts[0]:
                return                  # the same status again (a resubscribe)
            self._relayed_market[market_id] = parts[0]
            unit = self._unit(market_id)
            status = unit.ctx.status if unit is not None else getattr(self.market, "status", None)
            if status is not None and not status.away:
                self.on_market_status(market_id, status)
        elif kind == b"k" and self.market is not None:
            self.default_id = self.market.default_id

    def _on_away(self):
        units = self.market.units
        for unit in units:
            self.on_market_status(unit.market_id, unit.ctx.status)
        if not units:
            self.on_market_status(self.default_id, self.market.status)

    # --- the market's bytes, where the embedded Fanout encodes its own ------------------------

    @staticmethod
    def _tick_frame(asset, tick):
        return tick.frame

    def grid_body(self, market_id=None):
        grid = self._grids.get(market_id or self.default_id)
        return super().grid_body(market_id) if grid is None else grid.body

    def grid_frame(self, market_id=None):
        grid = self._grids.get(market_id or self.default_id)
        return super().grid_frame(market_id) if grid is None else grid.frame

    def grid2_frame(self, market_id=None):
        grid = self._grids.get(market_id or self.default_id)
        return super().grid2_frame(market_id) if grid is None else grid.frame2

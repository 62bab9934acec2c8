"""The Fanout of a gateway process: it relays what the market published (the
tick, grid and market frames the market encoded once) to this gateway's
connections, as the same bytes, at most ``fanout_hz`` a second like the
embedded Fanout; results come from the market's results stream.

    hub = RelayFanout(cfg, metrics)
    market = RemoteMarket(cfg); market.sinks = hub
    hub.start(market); market.start()

``Encoders`` is the other half: the market process encodes with it, so
the embedded server and the split send identical frames.
"""
import json
import time

import gevent

from actors import BoardView

from ._hub import Fanout, frame, grid2_json, grid_json
from ._wsfast import encode_text_frame

__all__ = ["RelayFanout", "Encoders"]


class Encoders:
    """How the market encodes its broadcasts (``actors.bus`` Publisher)."""

    def __init__(self, cfg):
        self.cfg = cfg

    def tick(self, tick):
        return encode_text_frame(b'{"type":"tick","p":%d,"t":%d}' % (tick.price, tick.ts))

    def market(self, status):
        return frame({"type": "market", **status.as_dict()})

    def grid(self, grid, status):
        body = json.dumps(grid_json(self.cfg, grid, status), separators=(",", ":")).encode()
        b2 = json.dumps(grid2_json(self.cfg, grid, status), separators=(",", ":")).encode()
        return (body, encode_text_frame(b'{"type":"grid",' + body[1:]),
                encode_text_frame(b'{"type":"grid2",' + b2[1:]))


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
        self._relayed_market = None

    def start(self, market):
        super().start(market)
        # The gateway's own word while the market is away (its heartbeat is missing).
        market.status.subscribe(self.on_market)

    def relay(self, kind, head, parts):
        """A broadcast from the market: remembered (ticks, grids: sent by the
        broadcaster) or sent at once (market status)."""
        if kind == b"t":
            self._tick = _Tick(head["p"], head["t"], parts[0])
        elif kind == b"g":
            self._grid = _Grid(head["v"], *parts[:3])
        elif kind == b"f":
            self.on_feed(BoardView(head["v"], head["day"], tuple(head["wins"]),
                                   tuple(head["leaders"])))
        elif kind == b"m":
            if parts[0] == self._relayed_market:
                return                  # the same status again (a resubscribe)
            self._relayed_market = parts[0]
            if not self.market.status.away:
                for conn in list(self.conns):
                    conn.send(parts[0])

    def welcome(self, conn, balance):
        now = int(time.time() * 1000)
        conn.send(frame({"type": "hello", "user": conn.user, "balance": balance, "server_ts": now}))
        status = self.market.status
        conn.send(self._relayed_market if self._relayed_market and not status.away
                  else frame({"type": "market", **status.as_dict()}))
        if self._grid is not None:
            conn.send(self.grid2_frame() if conn in self.compact else self.grid_frame())
        if self._tick is not None:
            conn.send(self._tick.frame)

    def grid_body(self):
        if self._grid is None:
            return super().grid_body()
        return self._grid.body

    def grid_frame(self):
        return self._grid.frame

    def grid2_frame(self):
        return self._grid.frame2

    def _broadcast(self):
        tick = self._tick
        tick_frame = b""
        if tick is not None and tick is not self._tick_sent:
            self._tick_sent = tick
            tick_frame = tick.frame
        grid = self._grid
        new_grid = grid is not None and grid is not self._grid_sent
        if new_grid:
            self._grid_sent = grid
        if not (tick_frame or new_grid):
            return
        compact = self.compact
        data = tick_frame + grid.frame if new_grid else tick_frame
        data2 = tick_frame + grid.frame2 if new_grid else tick_frame
        self.broadcasts += 1
        conns = list(self.conns)
        for i in range(0, len(conns), 500):
            for conn in conns[i:i + 500]:
                conn.send(data2 if conn in compact else data, True)
            gevent.sleep(0)

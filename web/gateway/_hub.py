"""Fan-out: the market's events, encoded once, to every connection.

The Hub is the market's ``Sinks``: ticks and grids are only remembered
when they arrive, and a broadcaster greenlet sends the latest of each at
most ``fanout_hz`` times a second, one encoding per broadcast shared by all
connections. Results go to the player's own connections; market changes go
to everyone at once. Nothing here blocks the caller.

    hub = Hub(cfg, metrics)
    market = start_market(system, cfg, sinks=hub)
    hub.start(market)
"""
import json
import time

import gevent

from actors import OUTCOME_NAMES, Sinks

from ._wsfast import encode_text_frame

__all__ = ["Hub", "grid_json", "frame"]


def frame(obj):
    return encode_text_frame(json.dumps(obj, separators=(",", ":")).encode())


def grid_json(cfg, grid, status):
    """The ``/api/grid`` body (and the ``grid`` frame without its type)."""
    return {
        "column_ms": cfg.column_ms, "band_cents": cfg.band_cents, "lock_ms": cfg.lock_ms,
        "horizon_ms": cfg.horizon_ms, "price": grid.price, "price_ts": grid.price_ts,
        "market": "open" if status.is_open else "suspended",
        "columns": [{"t0": t0, "cells": [{"lo": lo, "mult": m} for lo, m in sorted(cells.items())]}
                    for t0, cells in sorted(grid.columns.items())],
    }


class Hub(Sinks):
    def __init__(self, cfg, metrics=None):
        self.cfg = cfg
        self.metrics = metrics
        self.conns = set()
        self.by_user = {}
        self.market = None
        self._tick = None
        self._tick_sent = None
        self._grid = None
        self._grid_sent = None
        self._grid_cache = (None, None, None)    # (version, market status, json bytes)
        self._loop = None
        self.broadcasts = 0

    def start(self, market):
        self.market = market
        self._loop = gevent.spawn(self._broadcast_loop)

    def stop(self):
        if self._loop is not None:
            self._loop.kill(block=False)

    # --- connections -------------------------------------------------------------------

    def add(self, conn):
        self.conns.add(conn)
        self.by_user.setdefault(conn.uid, set()).add(conn)

    def remove(self, conn):
        self.conns.discard(conn)
        mine = self.by_user.get(conn.uid)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del self.by_user[conn.uid]

    def welcome(self, conn, balance):
        """The first frames of a new connection: hello, market, grid, tick."""
        now = int(time.time() * 1000)
        conn.send(frame({"type": "hello", "user": conn.user, "balance": balance, "server_ts": now}))
        status = self.market.status
        conn.send(frame({"type": "market", **status.as_dict()}))
        if self._grid is not None:
            conn.send(self.grid_frame())
        if self._tick is not None:
            conn.send(frame({"type": "tick", "p": self._tick.price, "t": self._tick.ts}))

    # --- Sinks: called by the market, must not block ------------------------------------------

    def on_tick(self, tick):
        self._tick = tick

    def on_grid(self, grid):
        self._grid = grid

    def on_market(self, status):
        f = frame({"type": "market", **status.as_dict()})
        for conn in list(self.conns):
            conn.send(f)

    def on_result(self, user, s, balance):
        conns = self.by_user.get(user)
        if self.metrics is not None:
            self.metrics.result(OUTCOME_NAMES[s.outcome], s)
        if not conns:
            return
        f = encode_text_frame(
            b'{"type":"result","bet":%d,"outcome":"%s","payout":%d,"balance":%d}'
            % (s.bet, OUTCOME_NAMES[s.outcome].encode(), s.payout, balance))
        for conn in list(conns):
            conn.send_soon(f)

    # --- broadcasting ----------------------------------------------------------------------

    def grid_body(self):
        """JSON bytes of the current grid (cached per version and status)."""
        grid = self._grid or self.market.grid
        status = self.market.status
        key = (grid.version, status.is_open)
        if self._grid_cache[:2] != key:
            body = json.dumps(grid_json(self.cfg, grid, status), separators=(",", ":")).encode()
            self._grid_cache = key + (body,)
        return self._grid_cache[2]

    def grid_frame(self):
        return encode_text_frame(b'{"type":"grid",' + self.grid_body()[1:])

    def _broadcast_loop(self):
        period = 1.0 / max(self.cfg.fanout_hz, 0.1)
        while True:
            gevent.sleep(period)
            try:
                self._broadcast()
            except Exception:   # never let the fan-out die
                import logging
                logging.getLogger("tapgrid.hub").exception("broadcast failed")

    def _broadcast(self):
        frames = []
        tick = self._tick
        if tick is not None and tick is not self._tick_sent:
            self._tick_sent = tick
            frames.append(encode_text_frame(b'{"type":"tick","p":%d,"t":%d}' % (tick.price, tick.ts)))
        grid = self._grid
        if grid is not None and grid is not self._grid_sent:
            self._grid_sent = grid
            frames.append(self.grid_frame())
        if not frames:
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.broadcasts += 1
        conns = list(self.conns)
        for i, conn in enumerate(conns):
            conn.send(data, droppable=True)
            if i % 500 == 499:
                gevent.sleep(0)    # let taps in between slices of a big fan-out

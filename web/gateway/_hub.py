"""Fan-out: the market's events, encoded once, to every connection.

The Fanout is the market's ``Sinks``: ticks and grids are only remembered
when they arrive, and a broadcaster greenlet sends the latest of each at
most ``fanout_hz`` times a second, one encoding per broadcast shared by all
connections. Results go to the player's own connections; market changes go
to everyone at once. Nothing here blocks the caller.

A connection opened with ``/ws?...&grid=2`` gets ``grid2`` frames in place
of ``grid`` (README, "Protocol addition: grid2"): the same grid, each
column's multipliers as one array from its lowest band, about a sixth of
the bytes, which is most of what a 10,000-client fan-out costs. Every other
connection gets the v1 frames, unchanged. Each version is encoded once per
broadcast, and only if some connection uses it.

    hub = Fanout(cfg, metrics)
    market = start_market(system, cfg, sinks=hub)
    hub.start(market)
"""
import json
import time

import gevent

from actors import OUTCOME_NAMES, Sinks

from ._wsfast import encode_text_frame

__all__ = ["Fanout", "grid_json", "grid2_json", "frame"]


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


def grid2_json(cfg, grid, status):
    """The ``grid2`` frame without its type: per column ``lo`` (its lowest
    band) and ``mults``, where ``mults[i]`` is the multiplier of the band
    ``lo + i * band_cents`` (null for a band not offered)."""
    band = cfg.band_cents
    columns = []
    for t0, cells in sorted(grid.columns.items()):
        if not cells:
            columns.append({"t0": t0, "lo": 0, "mults": []})
            continue
        lo = min(cells)
        n = (max(cells) - lo) // band + 1
        mults = [None] * n
        for c, m in cells.items():
            mults[(c - lo) // band] = m
        columns.append({"t0": t0, "lo": lo, "mults": mults})
    return {
        "column_ms": cfg.column_ms, "band_cents": band, "lock_ms": cfg.lock_ms,
        "horizon_ms": cfg.horizon_ms, "price": grid.price, "price_ts": grid.price_ts,
        "market": "open" if status.is_open else "suspended", "columns": columns,
    }


class Fanout(Sinks):
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
        self._grid2_cache = (None, None, None)
        self.compact = set()                     # connections that asked for grid2
        self._loop = None
        self.broadcasts = 0

    def start(self, market):
        self.market = market
        self._loop = gevent.spawn(self._broadcast_loop)

    def stop(self):
        if self._loop is not None:
            self._loop.kill(block=False)

    # --- connections -------------------------------------------------------------------

    def add(self, conn, grid_version=1):
        self.conns.add(conn)
        self.by_user.setdefault(conn.uid, set()).add(conn)
        if grid_version == 2:
            self.compact.add(conn)

    def remove(self, conn):
        self.conns.discard(conn)
        self.compact.discard(conn)
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
            conn.send(self.grid2_frame() if conn in self.compact else self.grid_frame())
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

    feed = None     # a PlayerFeed (wins and leaderboard), when the server has one

    def on_feed(self, view):
        if self.feed is not None:
            self.feed.update(view)

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

    def grid2_frame(self):
        grid = self._grid or self.market.grid
        status = self.market.status
        key = (grid.version, status.is_open)
        if self._grid2_cache[:2] != key:
            body = json.dumps(grid2_json(self.cfg, grid, status), separators=(",", ":")).encode()
            self._grid2_cache = key + (encode_text_frame(b'{"type":"grid2",' + body[1:]),)
        return self._grid2_cache[2]

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
        tick_frame = b""
        tick = self._tick
        if tick is not None and tick is not self._tick_sent:
            self._tick_sent = tick
            tick_frame = encode_text_frame(b'{"type":"tick","p":%d,"t":%d}' % (tick.price, tick.ts))
        grid = self._grid
        new_grid = grid is not None and grid is not self._grid_sent
        if new_grid:
            self._grid_sent = grid
        if not (tick_frame or new_grid):
            return
        compact = self.compact
        # One encoding per version in use, shared by all its connections.
        data = tick_frame + self.grid_frame() if new_grid and len(compact) < len(self.conns) \
            else tick_frame
        data2 = tick_frame + self.grid2_frame() if new_grid and compact else tick_frame
        self.broadcasts += 1
        conns = list(self.conns)
        for i in range(0, len(conns), 500):
            for conn in conns[i:i + 500]:
                conn.send(data2 if conn in compact else data, True)
            gevent.sleep(0)        # let taps in between slices of a big fan-out

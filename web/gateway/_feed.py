"""The live feed of other players' wins and today's leaderboard, fanned out
to this gateway's connections at a bounded rate: at most one ``feed`` frame
per ``feed_every_ms``, and only when the board changed.

    {"type": "feed", "day": "2026-12-02",
     "wins": [{"who": "player-3fa2", "payout": 1560, "mult": 156, "ts": ms}, ...],
     "leaders": [{"who": "player-3fa2", "net": 4200}, ...]}

The board itself is the market's (``actors.Board``): it sees every
settlement, keeps the board in the database's terms and publishes a
``BoardView`` through ``Sinks.on_feed``. A gateway keeps only the last view
it got, so every gateway process shows the same board, and a restart of a
gateway loses nothing.
"""
import json
import logging

import gevent

from ._wsfast import encode_text_frame

__all__ = ["PlayerFeed"]

log = logging.getLogger("tapgrid.feed")
EMPTY = {"day": None, "wins": [], "leaders": []}


class PlayerFeed:
    def __init__(self, cfg, hub):
        self.cfg = cfg
        self.hub = hub
        self.view = None                # the last actors.BoardView from the market
        self._sent = None
        self._loop = None
        self.frames_sent = 0

    def update(self, view):
        """The market's latest board (a Sink: returns at once)."""
        self.view = view

    def snapshot(self):
        return self.view.as_dict() if self.view is not None else dict(EMPTY)

    def start(self):
        self._loop = gevent.spawn(self._run)

    def stop(self):
        if self._loop is not None:
            self._loop.kill(block=False)

    def _run(self):
        period = max(self.cfg.feed_every_ms, 250) / 1000
        while True:
            gevent.sleep(period)
            try:
                self.broadcast()
            except Exception:
                log.exception("feed broadcast failed")

    def broadcast(self):
        """One frame to every connection if the board changed; returns it."""
        view = self.view
        if view is None or view.version == self._sent:
            return None
        self._sent = view.version
        data = encode_text_frame(json.dumps({"type": "feed", **view.as_dict()}, separators=(",", ":")).encode())
        conns = list(self.hub.conns)
        for i, conn in enumerate(conns):
            conn.send(data, droppable=True)
            if i % 500 == 499:
                gevent.sleep(0)
        self.frames_sent += 1
        return data

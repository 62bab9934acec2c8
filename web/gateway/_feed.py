"""The live feed of other players' wins and today's leaderboard (net, with
anonymised names), broadcast to every connection at a bounded rate: at most
one ``feed`` frame per ``feed_every_ms``, and only when something changed.

    {"type": "feed", "day": "2026-12-02",
     "wins": [{"who": "player-3fa2", "payout": 1560, "mult": 156, "ts": ms}, ...],
     "leaders": [{"who": "player-3fa2", "net": 4200}, ...]}

``record`` is called by the Fanout for every settlement and only updates a few
dicts, so it never blocks the market. Names are an HMAC of the user id with
a per-process key: stable for a run, unlinkable to the account. The board
is kept in memory (a restart starts today's board afresh).
"""
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import deque
from datetime import datetime, timezone

import gevent

from actors import WON

from ._wsfast import encode_text_frame

__all__ = ["PlayerFeed"]

log = logging.getLogger("tapgrid.feed")
WINS_KEPT = 10
LEADERS_SHOWN = 5
MAX_PLAYERS = 200_000


_DAY_MS = 86_400_000


def _day(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


class PlayerFeed:
    def __init__(self, cfg, hub, clock=time.time, key=None):
        self.cfg = cfg
        self.hub = hub
        self.clock = clock
        self._key = key or secrets.token_bytes(16)
        self.wins = deque(maxlen=WINS_KEPT)
        self.net = {}                   # uid -> net today (minor units)
        self.day = _day(clock() * 1000)
        # record() runs per settlement on the loop: the day's name is made
        # once per day (UTC days are whole multiples of 86,400,000 ms), and
        # each player's anonymised name once.
        self._day_end = (int(clock() * 1000) // _DAY_MS + 1) * _DAY_MS
        self._names = {}
        self.version = 0
        self._sent = -1
        self._body = None
        self._loop = None
        self.frames_sent = 0

    def who(self, uid):
        name = self._names.get(uid)
        if name is None:
            if len(self._names) >= MAX_PLAYERS:
                self._names.clear()
            name = self._names[uid] = "player-" + hmac.new(
                self._key, str(uid).encode(), hashlib.sha256).hexdigest()[:4]
        return name

    def record(self, uid, s):
        now = int(self.clock() * 1000)
        if now >= self._day_end or now < self._day_end - _DAY_MS:
            self._day_end = (now // _DAY_MS + 1) * _DAY_MS
            day = _day(now)
            if day != self.day:
                self.day, self.net = day, {}
        if uid in self.net or len(self.net) < MAX_PLAYERS:
            self.net[uid] = self.net.get(uid, 0) + (s.payout - s.stake)
        if s.outcome == WON:
            self.wins.appendleft({"who": self.who(uid), "payout": s.payout, "mult": s.mult, "ts": now})
        self.version += 1

    def snapshot(self):
        top = sorted(self.net.items(), key=lambda kv: kv[1], reverse=True)[:LEADERS_SHOWN]
        return {"day": self.day, "wins": list(self.wins),
                "leaders": [{"who": self.who(uid), "net": net} for uid, net in top if net > 0]}

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
        """One frame to every connection if anything changed; returns it."""
        if self.version == self._sent:
            return None
        self._sent = self.version
        data = encode_text_frame(json.dumps({"type": "feed", **self.snapshot()}, separators=(",", ":")).encode())
        conns = list(self.hub.conns)
        for i, conn in enumerate(conns):
            conn.send(data, droppable=True)
            if i % 500 == 499:
                gevent.sleep(0)
        self.frames_sent += 1
        return data

"""The players' board: the latest wins and today's leaderboard (net, with
anonymised names), kept by the market, so every gateway shows the same one.

The market is the one process that sees every settlement and writes the
database (SPEC section 1), so the board lives here, not in a gateway: a
gateway holds only the last ``BoardView`` the market published
(``Sinks.on_feed``), whether it runs in this process or another. The board
is loaded from the database at start, so a restart does not wipe today's
board, and names are an HMAC of the user id with a key kept in the
database's ``meta`` table: the same name for a player across restarts and
processes, unlinkable to the account.

Settlements come as messages (``start_market`` tees ``Sinks.on_result``
into the Board); at most one ``BoardView`` goes out per ``feed_every_ms``,
and only after a change, plus one every ``REPUBLISH_S`` so that a gateway
that started later has the board without waiting for a win.

    >>> import os, tempfile
    >>> from engine import ActorSystem
    >>> from actors import Config, MarketContext, Settlement, Sinks, WON, LOST
    >>> from actors._board import Board, BoardState
    >>> class Seen(Sinks):
    ...     def __init__(self): self.views = []
    ...     def on_feed(self, view): self.views.append(view)
    >>> ctx = MarketContext(Config(feed_every_ms=250), clock=lambda: 1_764_633_600.0,
    ...                     sinks=Seen())
    >>> system = ActorSystem()
    >>> board = system.spawn(Board, ctx, BoardState(b"k" * 16, "2025-12-02", {}, []))
    >>> board.tell(Settlement(1, 7, 0, 0, 1000, 250, WON, 2500))
    >>> board.tell(Settlement(2, 8, 0, 0, 1000, 250, LOST, 0))
    >>> view = board.ask("view", timeout=2)
    >>> [x["net"] for x in view.leaders], [w["payout"] for w in view.wins]
    ([1500], [2500])
    >>> view.leaders[0]["who"] == board.ask(("who", 7), timeout=2)
    True
    >>> system.stop()
"""
import hashlib
import heapq
import hmac
import secrets
from datetime import datetime, timezone
from typing import NamedTuple

from engine import Actor

from ._model import WON, Settlement

__all__ = ["Board", "BoardSinks", "BoardState", "BoardView", "load_board", "read_board",
           "BOARD_KEY_SQL"]

WINS_KEPT = 10
LEADERS_SHOWN = 5
MAX_PLAYERS = 200_000
REPUBLISH_S = 10.0

#: run once by the Writer before the board loads: the names' key, made once per database
BOARD_KEY_SQL = "INSERT OR IGNORE INTO meta(key, value) VALUES ('board_key', ?)"


def day_of(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def _day_start(ms):
    return ms // 86_400_000 * 86_400_000


class BoardState(NamedTuple):
    """What the board starts from: the names' key, the UTC day, each
    player's net that day, and the latest wins ``(uid, payout, mult, ts)``,
    newest first."""
    key: bytes
    day: str
    net: dict
    wins: list


class BoardView(NamedTuple):
    """What the market publishes; ``version`` grows with every change."""
    version: int
    day: str
    wins: tuple
    leaders: tuple

    def as_dict(self):
        """The ``feed`` frame's fields (and ``GET /api/feed``'s answer)."""
        return {"day": self.day, "wins": list(self.wins), "leaders": list(self.leaders)}


def load_board(conn, now_ms):
    """The ``BoardState`` a database holds at ``now_ms`` (a read-only
    connection; run it off the loop). Net today counts bets settled since
    midnight UTC; wins are the latest payouts."""
    from ._model import OPEN
    row = conn.execute("SELECT value FROM meta WHERE key = 'board_key'").fetchone()
    key = bytes(row[0]) if row else secrets.token_bytes(16)
    start = _day_start(now_ms)
    net = dict(conn.execute(
        f"SELECT user, sum(payout - stake) FROM bets WHERE outcome != {OPEN} AND settled >= ?"
        " GROUP BY user", (start,)).fetchall())
    wins = [tuple(r) for r in conn.execute(
        f"SELECT user, payout, mult, settled FROM bets WHERE outcome = {WON}"
        " AND settled IS NOT NULL ORDER BY settled DESC, id DESC LIMIT ?", (WINS_KEPT,))]
    return BoardState(key, day_of(now_ms), net, wins)


def read_board(db, now_ms):
    """``load_board`` on a read-only connection of its own (for ``run_blocking``)."""
    from .store import open_readonly
    conn = open_readonly(db)
    try:
        return load_board(conn, now_ms)
    finally:
        conn.close()


class Board(Actor):
    def __init__(self, ctx, state):
        self.ctx = ctx
        self.key = state.key
        self.day = state.day
        self.net = dict(state.net)
        self.wins = [self._win(*w) for w in state.wins[:WINS_KEPT]]
        self.version = 1
        self._sent = 0

    def on_start(self):
        period = max(self.ctx.cfg.feed_every_ms, 250) / 1000
        self.schedule_every(period, "publish", first=0)
        self.schedule_every(REPUBLISH_S, "republish")

    def who(self, uid):
        return "player-" + hmac.new(self.key, str(uid).encode(), hashlib.sha256).hexdigest()[:4]

    def _win(self, uid, payout, mult, ts):
        return {"who": self.who(uid), "payout": payout, "mult": mult, "ts": ts}

    def _roll_day(self, now):
        day = day_of(now)
        if day != self.day:
            self.day, self.net = day, {}
            self.version += 1

    def receive(self, msg):
        if type(msg) is Settlement:
            self.record(msg)
        elif msg == "publish":
            self._roll_day(self.ctx.now())
            if self.version != self._sent:
                self.publish()
        elif msg == "republish":
            self.publish()
        elif msg == "view":
            return self.view()
        elif type(msg) is tuple and msg[0] == "who":
            return self.who(msg[1])
        return None

    def record(self, s):
        now = self.ctx.now()
        self._roll_day(now)
        uid = s.user
        if uid in self.net or len(self.net) < MAX_PLAYERS:
            self.net[uid] = self.net.get(uid, 0) + (s.payout - s.stake)
        if s.outcome == WON:
            self.wins.insert(0, self._win(uid, s.payout, s.mult, now))
            del self.wins[WINS_KEPT:]
        self.version += 1

    def view(self):
        # O(players), not a sort: at most once per feed_every_ms, after a change
        top = heapq.nlargest(LEADERS_SHOWN, self.net.items(), key=lambda kv: kv[1])
        return BoardView(self.version, self.day, tuple(dict(w) for w in self.wins),
                         tuple({"who": self.who(uid), "net": net} for uid, net in top if net > 0))

    def publish(self):
        self._sent = self.version
        self.ctx.sinks.on_feed(self.view())


class BoardSinks:
    """The caller's Sinks, with every settlement also told to the Board;
    every other hook (v1, and the v1.1 per-market ones a sink may have) is
    the caller's own."""

    def __init__(self, inner, board):
        self.inner = inner
        self.board = board

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def on_result(self, user, settlement, balance):
        self.board.tell(settlement)
        self.inner.on_result(user, settlement, balance)

    def on_market_result(self, market_id, user, settlement, balance):
        self.board.tell(settlement)
        fn = getattr(self.inner, "on_market_result", None)
        if fn is not None:
            fn(market_id, user, settlement, balance)
        else:
            self.inner.on_result(user, settlement, balance)

    def on_feed(self, view):
        fn = getattr(self.inner, "on_feed", None)
        if fn is not None:
            fn(view)

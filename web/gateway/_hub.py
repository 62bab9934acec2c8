"""Fan-out: the market's events, encoded once, to every connection.

The Fanout is the market's ``Sinks``: ticks and grids are only remembered
when they arrive, and wake a broadcaster greenlet that sends the latest of
each at once, unless the previous broadcast was under ``1/fanout_hz`` ago
(then at that moment): a tick waits only for the fan-out itself, not for
a poll, and at most ``fanout_hz`` broadcasts a second go out, one encoding
per broadcast shared by all connections. Results go to the player's own
connections; market changes go to everyone at once. Nothing here blocks
the caller.

A broadcast writes straight to each socket (``Connection.send`` with
``droppable``) and hands the loop back every ``SLICE_S`` (4 ms) of that
work, so a tap's ack waits for one slice, not for 10,000 sends. A
connection whose send buffer is full skips the broadcast (counted:
``tapgrid_fanout_skipped``) and gets its markets' grids whole with the
next one it takes; acks and results are never skipped.

A connection opened with ``/ws?...&grid=2`` gets ``grid2`` frames in place
of ``grid`` (README, "Protocol addition: grid2"): the same grid, each
column's multipliers as one array from its lowest band, about a sixth of
the bytes, which is most of what a 10,000-client fan-out costs. Every other
connection gets the v1 frames, unchanged. Each version is encoded once per
broadcast, and only if some connection uses it.

Several markets (SPEC 9, v1.1): a connection receives the ticks, grids and
market frames of the markets it subscribed to (``{"type": "subscribe",
"markets": [...]}``), the default market until it does; tick frames carry
``"a"`` (the asset), grid, market and result frames ``"market_id"``. The
frames of each market are encoded once per broadcast, and connections with
the same subscription share one concatenation of them.

    hub = Fanout(cfg, metrics)
    market = start_market(system, cfg, sinks=hub)
    hub.start(market)
"""
import json
import time

import gevent
from gevent.event import Event

from actors import OUTCOME_NAMES, Sinks

from ._gridframes import frame, grid2_json, grid_bytes, typed_frame
from ._wsfast import encode_text_frame

__all__ = ["Fanout"]

SLICE_S = 0.004     # the broadcaster gives the loop back after this much work
YIELD_S = 0.0001    # ... for one loop pass (its sockets polled), then goes on


class Fanout(Sinks):
    def __init__(self, cfg, metrics=None):
        self.cfg = cfg
        self.metrics = metrics
        self.conns = set()
        self.by_user = {}
        self.market = None
        self.default_id = None                   # the default market (set by start)
        self._ticks = {}                         # asset -> latest tick
        self._ticks_sent = {}
        self._grids = {}                         # market_id -> latest grid
        self._grids_sent = {}
        self._cache = {}                         # (market_id, version) -> (key, frame bytes)
        self._news = Event()                     # a tick or a grid not yet broadcast
        self._tick_sent = self._grid_sent = None  # the split gateway's RelayFanout's
        self.compact = set()                     # connections that asked for grid2
        self.subs = {}                           # conn -> its markets, if not the default's
        self._loop = None
        self.broadcasts = 0
        self.skipped = 0                         # broadcasts a connection missed (behind)
        self.owed = set()                        # connections that missed a grid since

    def start(self, market):
        self.market = market
        self.default_id = getattr(market, "default_id", None)
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
        self.owed.discard(conn)
        self.compact.discard(conn)
        self.subs.pop(conn, None)
        mine = self.by_user.get(conn.uid)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del self.by_user[conn.uid]

    def markets_of(self, conn):
        return self.subs.get(conn, (self.default_id,))

    def subscribe(self, conn, markets):
        """Choose the markets whose ticks, grids and market frames ``conn``
        receives; their current state is sent at once. An error text for a
        bad list (the caller answers ``bad_request``), else None."""
        known = getattr(self.market, "by_id", None) or {}
        if type(markets) is not list or len(markets) > max(16, len(known)) \
                or not all(type(m) is str for m in markets):
            return "markets must be a list of market ids"
        unknown = [m for m in markets if m not in known]
        if unknown:
            return f"unknown market {unknown[0][:40]!r}"
        chosen = tuple(dict.fromkeys(markets))
        before = self.markets_of(conn)
        if chosen == (self.default_id,):
            self.subs.pop(conn, None)
        else:
            self.subs[conn] = chosen
        for market_id in chosen:
            if market_id not in before:
                self._send_state(conn, market_id)
        return None

    def welcome(self, conn, balance):
        """The first frames of a new connection: hello, market, grid, tick."""
        now = int(time.time() * 1000)
        conn.send(frame({"type": "hello", "user": conn.user, "balance": balance, "server_ts": now}))
        self._send_state(conn, self.default_id)

    def _send_state(self, conn, market_id):
        unit = self._unit(market_id)
        status = unit.ctx.status if unit is not None else self.market.status
        conn.send(self._market_frame(market_id, status))
        if market_id in self._grids:
            conn.send(self.grid2_frame(market_id) if conn in self.compact
                      else self.grid_frame(market_id))
        asset = unit.spec.asset if unit is not None else None
        tick = self._ticks.get(asset)
        if tick is not None:
            conn.send(self._tick_frame(asset, tick))

    def _unit(self, market_id):
        unit = getattr(self.market, "unit", None)
        return unit(market_id) if unit is not None else None

    # --- Sinks: called by the market, must not block ------------------------------------------

    def on_asset_tick(self, asset, tick):
        self._ticks[asset] = tick
        self._news.set()

    def on_market_grid(self, market_id, grid):
        self._grids[market_id] = grid
        self._news.set()

    def on_market_status(self, market_id, status):
        f = self._market_frame(market_id, status)
        default = market_id == self.default_id
        subs = self.subs
        for conn in list(self.conns):
            mine = subs.get(conn)
            if (default and mine is None) or (mine is not None and market_id in mine):
                conn.send(f)

    # v1 hooks, for a market context without the v1.1 ones: the default market
    def on_tick(self, tick):
        self._ticks[self._default_asset()] = tick
        self._news.set()

    def on_grid(self, grid):
        self._grids[self.default_id] = grid
        self._news.set()

    # A relay that assigns the default market's latest tick or grid (the
    # split's gateway) is heard as the v1 hooks: stored, and the broadcaster woken.
    @property
    def _tick(self):
        return self._ticks.get(self._default_asset())

    @_tick.setter
    def _tick(self, tick):
        if tick is not None:
            self.on_tick(tick)

    @property
    def _grid(self):
        return self._grids.get(self.default_id)

    @_grid.setter
    def _grid(self, grid):
        if grid is not None:
            self.on_grid(grid)

    def on_market(self, status):
        self.on_market_status(self.default_id, status)

    def _default_asset(self):
        unit = self._unit(None)
        return unit.spec.asset if unit is not None else None

    feed = None     # a PlayerFeed (wins and leaderboard), when the server has one

    def on_feed(self, view):
        if self.feed is not None:
            self.feed.update(view)

    def on_result(self, user, s, balance):
        self.on_market_result(None, user, s, balance)

    def on_market_result(self, market_id, user, s, balance):
        conns = self.by_user.get(user)
        if self.metrics is not None:
            self.metrics.result(OUTCOME_NAMES[s.outcome], s)
        if not conns:
            return
        if market_id is None:
            f = encode_text_frame(
                b'{"type":"result","bet":%d,"outcome":"%s","payout":%d,"balance":%d}'
                % (s.bet, OUTCOME_NAMES[s.outcome].encode(), s.payout, balance))
        else:
            f = encode_text_frame(
                b'{"type":"result","bet":%d,"outcome":"%s","payout":%d,"balance":%d,'
                b'"market_id":"%s"}' % (s.bet, OUTCOME_NAMES[s.outcome].encode(), s.payout,
                                        balance, market_id.encode()))
        for conn in list(conns):
            conn.send_soon(f)

    # --- encoding ---------------------------------------------------------------------------

    def _market_frame(self, market_id, status):
        body = {"type": "market", **status.as_dict()}
        if market_id is not None:
            body["market_id"] = market_id
        return frame(body)

    @staticmethod
    def _tick_frame(asset, tick):
        if asset is None:
            return encode_text_frame(b'{"type":"tick","p":%d,"t":%d}' % (tick.price, tick.ts))
        return encode_text_frame(b'{"type":"tick","p":%d,"t":%d,"a":"%s"}'
                                 % (tick.price, tick.ts, asset.encode()))

    def _parts(self, market_id):
        """(grid, its market's cfg, status) of ``market_id`` (None: the default)."""
        unit = self._unit(market_id)
        if unit is None:                     # a handle without markets
            return self._grids.get(market_id) or self.market.grid, self.cfg, self.market.status
        ctx = unit.ctx
        return self._grids.get(unit.market_id) or ctx.grid, ctx.cfg, ctx.status

    def _encoded(self, market_id, version):
        grid, cfg, status = self._parts(market_id)
        key = (grid.version, status.is_open)
        slot = (market_id or self.default_id, version)
        cached = self._cache.get(slot)
        if cached is None or cached[0] != key:
            mid = market_id or self.default_id
            if version == 1:
                body = grid_bytes(cfg, grid, status, mid)
            else:
                body = json.dumps(grid2_json(cfg, grid, status, mid),
                                  separators=(",", ":")).encode()
            cached = self._cache[slot] = (key, body)
        return cached[1]

    def grid_body(self, market_id=None):
        """JSON bytes of a market's current grid (cached per version and status)."""
        return self._encoded(market_id, 1)

    def grid_frame(self, market_id=None):
        return typed_frame(b"grid", self._encoded(market_id, 1))

    def grid2_frame(self, market_id=None):
        return typed_frame(b"grid2", self._encoded(market_id, 2))

    # --- broadcasting ----------------------------------------------------------------------

    def _broadcast_loop(self):
        period = 1.0 / max(self.cfg.fanout_hz, 0.1)
        news = self._news
        last = time.monotonic() - period
        while True:
            news.wait()
            wait = last + period - time.monotonic()
            if wait > 0:
                gevent.sleep(wait)     # what arrives meanwhile joins this broadcast
            news.clear()
            last = time.monotonic()
            try:
                self._broadcast()
            except Exception:   # never let the fan-out die
                import logging
                logging.getLogger("tapgrid.hub").exception("broadcast failed")

    def _broadcast(self):
        ticks = {}
        for asset, tick in list(self._ticks.items()):
            if tick is not self._ticks_sent.get(asset):
                self._ticks_sent[asset] = tick
                ticks[asset] = self._tick_frame(asset, tick)
        grids = [m for m, g in list(self._grids.items()) if g is not self._grids_sent.get(m)]
        for m in grids:
            self._grids_sent[m] = self._grids[m]
        if not (ticks or grids):
            return
        compact = self.compact
        subs = self.subs
        owed = self.owed
        cache = {}

        def data(conn):
            # one concatenation per (markets, version, owed): encoded once, shared
            key = (subs.get(conn, default), conn in compact, conn in owed)
            out = cache.get(key)
            if out is None:
                markets, v2, whole = key
                parts = []
                for asset in dict.fromkeys(self._asset_of(m) for m in markets):
                    if asset in ticks:
                        parts.append(ticks[asset])
                for m in markets:
                    if m in grids or (whole and m in self._grids):
                        parts.append(self.grid2_frame(m) if v2 else self.grid_frame(m))
                out = cache[key] = b"".join(parts)
            return out

        default = (self.default_id,)
        self.broadcasts += 1
        self._deliver(list(self.conns), data)

    def _deliver(self, conns, data):
        """``data(conn)`` to each of ``conns``, straight to its socket, with
        the loop given back every ``SLICE_S`` of work, so a tap's ack waits
        for one slice of a big fan-out, never for all of it. A connection
        that is behind skips the broadcast (counted) and is owed its grids."""
        owed = self.owed
        clock = time.perf_counter
        until = clock() + SLICE_S
        for i, conn in enumerate(conns):
            d = data(conn)
            if d:
                if conn.send(d, True) is False:
                    if not conn.closed:
                        self.skipped += 1
                        owed.add(conn)
                elif owed:
                    owed.discard(conn)
            if i & 15 == 15 and clock() >= until:
                # A timer, not sleep(0): the loop polls its sockets before
                # resuming us (sleep(0) may run up to 50 callbacks first).
                gevent.sleep(YIELD_S)
                until = clock() + SLICE_S

    def _asset_of(self, market_id):
        unit = self._unit(market_id)
        return unit.spec.asset if unit is not None else None

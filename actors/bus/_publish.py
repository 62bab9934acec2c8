"""The market's broadcasts: ticks, grids, market status and the players'
board (wins and leaders), encoded once
here and relayed as the same bytes by every gateway; settlements on a
shared results stream every gateway reads.

It is the market's ``Sinks``: each callback only remembers (the latest
tick and grid, the results in order) and wakes one greenlet that talks to
Redis, so the market never waits for a gateway. Ticks and grids go out on
pub/sub (a gateway too slow to read is cut off by Redis and reloads the
latest from ``Keys.state``: it drops ticks, never acks); results on a
stream trimmed with ``MAXLEN ~``, so a gateway that was away a moment
reads on from where it was.

The encoders come from the caller (``encoders.tick(tick)``,
``encoders.grid(grid, status)`` -> (v1 body, v1 frame, grid2 frame),
``encoders.market(status)``), so the bytes are exactly the embedded
server's.
"""
import gevent
from gevent.event import Event

from .._context import Sinks
from .._model import OUTCOME_NAMES
from ._codec import dumps, encode_blob
from ._redis import Backoff, RedisError

__all__ = ["Publisher"]


class Publisher(Sinks):
    def __init__(self, cfg, encoders):
        self.cfg = cfg
        self.encoders = encoders
        self.bus = None
        self.status = None
        self._tick = self._grid = None
        self._tick_sent = self._grid_sent = None
        self._feed = self._feed_sent = None
        self._status_dirty = False
        self._results = []
        self._wake = Event()
        self.published = 0
        self.metrics = None            # the market's /metrics (settled bets by bucket), if any

    # --- Sinks: called by the market's actors; never block --------------------------------

    def on_tick(self, tick):
        self._tick = tick
        self._wake.set()

    def on_grid(self, grid):
        self._grid = grid
        self._wake.set()

    def on_market(self, status):
        self.status = status
        self._status_dirty = True
        self._wake.set()

    def on_feed(self, view):
        self._feed = view               # the Board publishes at a bounded rate
        self._wake.set()

    def on_result(self, user, s, balance):
        row = [user, s.bet, s.col, s.lo, s.stake, s.mult, s.outcome, s.payout, balance]
        market_id = getattr(s, "market_id", None)
        if market_id is not None:
            row.append(market_id)        # carried untouched (several markets)
        self._results.append(row)
        if self.metrics is not None:
            self.metrics.result(OUTCOME_NAMES[s.outcome], s)
        self._wake.set()

    # --- the one greenlet that talks to Redis ---------------------------------------------------

    def run(self, bus, handle):
        self.bus = bus
        self.status = handle.status
        self._status_dirty = True
        keys, r, enc = bus.keys, bus.r, self.encoders
        backoff = Backoff()
        while True:
            self._wake.wait()
            gevent.sleep(0.002)        # a tick and its grid, results of one resolve: one trip
            self._wake.clear()
            pipe = r.pipeline(transaction=False)
            blobs = []
            tick, grid, status = self._tick, self._grid, self.status
            if tick is not None and tick is not self._tick_sent:
                blobs.append((b"t", encode_blob(b"t", {"p": tick.price, "t": tick.ts},
                                                enc.tick(tick))))
            if self._status_dirty:
                blobs.append((b"m", encode_blob(b"m", status.as_dict(), enc.market(status))))
            if grid is not None and (grid is not self._grid_sent or self._status_dirty):
                body, f1, f2 = enc.grid(grid, status)
                blobs.append((b"g", encode_blob(b"g", {"v": grid.version}, body, f1, f2)))
            feed = self._feed
            if feed is not None and feed is not self._feed_sent:
                blobs.append((b"f", encode_blob(b"f", {"v": feed.version, **feed.as_dict()})))
            results, self._results = self._results, []
            for kind, blob in blobs:
                pipe.hset(keys.state, kind, blob)
                pipe.publish(keys.broadcast, blob)
            if blobs and not self._status_dirty:
                # The status is published when it changes; kept fresh in the
                # state hash all along, so a gateway that (re)subscribes after
                # Redis came back empty still finds it.
                pipe.hset(keys.state, b"m", encode_blob(b"m", status.as_dict(),
                                                        enc.market(status)))
            if results:
                pipe.xadd(keys.results, {b"d": dumps(results)}, maxlen=self.cfg.bus_stream_max,
                          approximate=True)
            if not (blobs or results):
                continue
            try:
                pipe.execute()
                backoff.ok()
            except RedisError as exc:
                self._results[:0] = results[-10_000:]   # settlements wait; ticks do not
                self._wake.set()
                backoff.fail("publisher", exc)
                continue
            self.published += len(blobs)
            self._tick_sent, self._grid_sent, self._feed_sent = tick, grid, feed
            if blobs and any(k == b"m" for k, _ in blobs):
                self._status_dirty = False

"""The market's broadcasts: every market's ticks, grids and status, the
market list, and the players' board (wins and leaders), encoded once here
and relayed as the same bytes by every gateway; settlements on a shared
results stream every gateway reads.

It is the market's ``Sinks`` with the per-market hooks (``on_asset_tick``,
``on_market_grid``, ``on_market_status``, ``on_market_result``), so it
hears every market the process runs, each with its id. Each callback only
remembers (the latest tick per asset, grid and status per market, the
results in order) and wakes one greenlet that talks to Redis, so the
market never waits for a gateway. Ticks and grids go out on pub/sub (a
gateway too slow to read is cut off by Redis and reloads the latest from
``Keys.state``: it drops ticks, never acks); results on a stream trimmed
with ``MAXLEN ~``, so a gateway that was away a moment reads on from where
it was.

What goes out (``encode_blob``: kind, JSON head, frames), and the field of
``Keys.state`` that keeps the latest of each:

- ``k`` ``{"default", "markets": [spec...]}``: the markets this process
  runs, the default first (field ``k``): what ``/api/markets`` lists;
- ``t`` ``{"p", "t", "a": asset}``, the tick frame (field ``t:ASSET``);
- ``g`` ``{"v", "id": market_id}``, the v1 body, grid and grid2 frames
  (field ``g:ID``);
- ``m`` ``{"status", "reason", "id"}``, the market frame (field ``m:ID``);
- ``f`` the board (field ``f``).

The encoders come from the caller (``encoders.tick(tick, asset)``,
``encoders.grid(grid, status, cfg, market_id)`` -> (v1 body, v1 frame,
grid2 frame), ``encoders.market(status, market_id)``), so the bytes are
exactly the embedded server's.
"""
import gevent
from gevent.event import Event

from .._context import Sinks
from .._model import OUTCOME_NAMES
from ._codec import Keys, dumps, encode_blob
from ._redis import Backoff, Link, RedisError

__all__ = ["Publisher", "spec_dict"]


def spec_dict(spec):
    """One market's settings as the gateways hear them."""
    return spec._asdict()


class Publisher(Sinks):
    def __init__(self, cfg, encoders):
        self.cfg = cfg
        self.encoders = encoders
        self.bus = None
        self.link = None
        self.units = {}                 # market_id -> MarketUnit (its cfg and status)
        self.default_id = None
        self._ticks, self._ticks_sent = {}, {}       # asset -> latest tick
        self._grids, self._grids_sent = {}, {}       # market_id -> latest grid
        self._statuses = {}                          # market_id -> its status
        self._dirty = set()                          # market ids whose status changed
        self._status_blobs = {}                      # market_id -> its last encoded status
        self._markets_blob = None
        self._feed = self._feed_sent = None
        self._results = []
        self._wake = Event()
        self.published = 0
        self.metrics = None            # the market's /metrics (settled bets by bucket), if any

    # --- Sinks: called by the market's actors; never block --------------------------------

    def on_asset_tick(self, asset, tick):
        self._ticks[asset] = tick
        self._wake.set()

    def on_market_grid(self, market_id, grid):
        self._grids[market_id] = grid
        self._wake.set()

    def on_market_status(self, market_id, status):
        self._statuses[market_id] = status
        self._dirty.add(market_id)
        self._wake.set()

    def on_market_result(self, market_id, user, s, balance):
        self._results.append([user, s.bet, s.col, s.lo, s.stake, s.mult, s.outcome, s.payout,
                              balance, market_id])
        if self.metrics is not None:
            self.metrics.result(OUTCOME_NAMES[s.outcome], s)
        self._wake.set()

    def on_feed(self, view):
        self._feed = view               # the Board publishes at a bounded rate
        self._wake.set()

    # v1 hooks (a caller without markets): the default market's
    def on_tick(self, tick):
        self.on_asset_tick(self._default_asset(), tick)

    def on_grid(self, grid):
        self.on_market_grid(self.default_id, grid)

    def on_market(self, status):
        self.on_market_status(self.default_id, status)

    def on_result(self, user, s, balance):
        self.on_market_result(self.default_id, user, s, balance)

    def _default_asset(self):
        unit = self.units.get(self.default_id)
        return None if unit is None else unit.spec.asset

    # --- the one greenlet that talks to Redis ---------------------------------------------------

    def _blobs(self):
        """What changed since the last publish: [(state field, blob)]."""
        enc = self.encoders
        blobs = []
        for asset, tick in list(self._ticks.items()):
            if tick is not self._ticks_sent.get(asset):
                head = {"p": tick.price, "t": tick.ts, "a": asset}
                blobs.append((Keys.tick_field(asset),
                              encode_blob(b"t", head, enc.tick(tick, asset))))
        dirty, self._dirty = self._dirty, set()
        for mid in dirty:
            status = self._statuses[mid]
            blob = encode_blob(b"m", dict(status.as_dict(), id=mid), enc.market(status, mid))
            self._status_blobs[mid] = blob
            blobs.append((Keys.status_field(mid), blob))
        for mid, grid in list(self._grids.items()):
            if grid is not self._grids_sent.get(mid) or mid in dirty:
                unit = self.units.get(mid)
                status = self._statuses.get(mid) or unit.ctx.status
                body, f1, f2 = enc.grid(grid, status, unit.ctx.cfg if unit else self.cfg, mid)
                blobs.append((Keys.grid_field(mid),
                              encode_blob(b"g", {"v": grid.version, "id": mid}, body, f1, f2)))
        feed = self._feed
        if feed is not None and feed is not self._feed_sent:
            blobs.append((b"f", encode_blob(b"f", {"v": feed.version, **feed.as_dict()})))
        return blobs, dirty

    def run(self, bus, handle):
        self.bus = bus
        self.units = {u.market_id: u for u in handle.units}
        self.default_id = handle.default_id
        for mid, unit in self.units.items():
            self._statuses.setdefault(mid, unit.ctx.status)
            self._dirty.add(mid)
        self._markets_blob = encode_blob(b"k", {
            "default": self.default_id,
            "markets": [spec_dict(u.spec) for u in handle.units]})
        keys = bus.keys
        link = self.link = Link(bus.r)      # its own connection, no pool per trip
        backoff = Backoff()
        first = True
        markets_sent = False
        while True:
            if not first:
                self._wake.wait()
            first = False
            gevent.sleep(0.002)        # a tick and its grid, results of one resolve: one trip
            self._wake.clear()
            ticks, grids, feed = dict(self._ticks), dict(self._grids), self._feed
            blobs, dirty = self._blobs()
            results, self._results = self._results, []
            if not (blobs or results):
                continue
            cmds = []
            if blobs:
                # The market list and every status are kept fresh in the state
                # hash all along, so a gateway that (re)subscribes after Redis
                # came back empty still finds them; published when they change.
                cmds.append(("HSET", keys.state, keys.markets_field, self._markets_blob))
                if not markets_sent:
                    cmds.append(("PUBLISH", keys.broadcast, self._markets_blob))  # gateways up before us
                for mid, blob in self._status_blobs.items():
                    if mid not in dirty:
                        cmds.append(("HSET", keys.state, keys.status_field(mid), blob))
            for field, blob in blobs:
                cmds.append(("HSET", keys.state, field, blob))
                cmds.append(("PUBLISH", keys.broadcast, blob))
            if results:
                cmds.append(("XADD", keys.results, "MAXLEN", "~", self.cfg.bus_stream_max, "*",
                             b"d", dumps(results)))
            try:
                failed = [x for x in link.pipeline(cmds) if isinstance(x, RedisError)]
                if failed:
                    raise failed[0]
                backoff.ok()
            except RedisError as exc:
                self._results[:0] = results[-10_000:]   # settlements wait; ticks do not
                self._dirty |= dirty                     # and so do status changes
                self._wake.set()
                backoff.fail("publisher", exc)
                continue
            self.published += len(blobs)
            self._ticks_sent.update(ticks)
            self._grids_sent.update(grids)
            self._feed_sent = feed
            markets_sent = markets_sent or bool(blobs)

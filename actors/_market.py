"""The MarketMaker: supervisor of the Columns, and the pricer of the grid.

It keeps one ``Column`` per time column from just after the lock out to the
horizon (spawned ahead, stopped when the column locks), publishes the
routing table in ``ctx.columns``, restarts a crashed Column (one-for-one),
and reprices the grid from the latest tick and volatility on every tick,
or at most every ``reprice_ms`` (``GRID_EVERY_MS`` when ``start_market``
spawns it; ticks that arrive while it prices, or before the next grid is
due, are coalesced), on the loop a slice of columns at a time, yielding
between slices.

A MarketMaker with the clock standing still at 1,000,000 ms: with no price yet it
holds betting (``starting``); the first tick gets the grid priced, one
Column per open column, and betting opens:

    >>> import os, tempfile
    >>> from gevent.event import Event
    >>> from engine import ActorSystem
    >>> from actors import Config, MarketMaker, MarketContext, Sinks, Tick
    >>> class OnGrid(Sinks):
    ...     def __init__(self): self.priced = Event()
    ...     def on_grid(self, grid): self.priced.set()
    >>> cfg = Config(db=os.path.join(tempfile.mkdtemp(), "market.db"))
    >>> ctx = MarketContext(cfg, clock=lambda: 1_000.0, sinks=OnGrid())
    >>> system = ActorSystem()
    >>> market = system.spawn(MarketMaker, ctx)
    >>> market.ask("columns", timeout=5)[:3], ctx.status.reason
    ([1005000, 1010000, 1015000], 'stale_price')
    >>> market.tell(Tick(9_500_000, 999_900))
    >>> ctx.sinks.priced.wait(5)
    True
    >>> sorted(ctx.grid.columns) == sorted(ctx.columns), ctx.status.is_open
    (True, True)
    >>> cells = ctx.grid.columns[1_010_000]                 # {band low: multiplier}
    >>> cells[9_500_000] < cells[9_510_000]                 # farther from the price pays more
    True
    >>> system.stop()
"""
import logging

import gevent

from engine import Actor, OneForOne

from ._column import Column
from .feeds import Tick
from ._pricer import price_columns
from ._status import Grid

__all__ = ["MarketMaker", "price_grid", "open_columns", "GRID_EVERY_MS"]

log = logging.getLogger("tapgrid.market")


def open_columns(cfg, now):
    """The t0 of every column open for taps at ``now``: aligned to
    ``column_ms``, after the lock (``now < t0 - lock_ms``), within the horizon."""
    col_ms = cfg.column_ms
    first = (now + cfg.lock_ms) // col_ms * col_ms + col_ms
    return range(first, now + cfg.horizon_ms + 1, col_ms)


# Columns priced per slice of a grid. One column of 101 bands is ~0.45 ms
# of CPU at 100 ms ticks on this box (p99 ~1.2 ms on a loaded one, two
# columns ~1.7: perf/bench_pricer.py); a whole grid is 3-5 ms. In the
# threadpool that time was the loop's too: the Python between numpy's
# loops holds the GIL, and the loop waited up to a switch interval (5 ms).
SLICE_COLUMNS = 1

# How often a served market's MarketMaker reprices the whole grid: at most
# once per this many ms (``start_market`` passes it; a MarketMaker spawned
# alone reprices every tick). The whole grid is display: a tap is priced
# from the asset's newest tick whatever the grid's age (``Column._cells``,
# through the Repricer, the columns being tapped only), so a grid per tick
# bought nothing a tap sees. It was ~80 % of the loop's CPU with 50 idle
# clients and a third of its GIL time at 3,000 taps/s (13 columns of
# numpy-sized Python, ~5-9 ms a grid, ten times a second on the sim's 10 Hz
# feed). 150: with a 10 Hz feed every other tick (5 grids a second, SPEC 5
# allows up to 10); a tick left unpriced is priced by the roll timer once
# due, so the grid is never more than ~250 ms behind the newest tick.
GRID_EVERY_MS = 150


def price_grid(cfg, price, price_ts, sigma, now, version, tick_ms=None, sigma_sd=0.0,
               tick_sd_ms=None, market_id=None, pause=None, sigma_floor=0.0, cache=None,
               window_vr=1.0):
    """Multipliers of every open column, ``SLICE_COLUMNS`` at a time,
    calling ``pause()`` between slices (the MarketMaker passes
    ``gevent.idle``, so no slice holds the loop for more than about a
    millisecond; None: one call after another).

    With ``cache`` (the market's ``Repricer``) each column comes from it: a
    column a Column already priced from this tick is not priced again, a
    pass may price a few cheap columns together (no longer than one far
    column alone), and only a pass made here is followed by a pause.

    ``price`` is the last tick, stamped ``price_ts``; ``tick_ms`` the feed's
    mean tick interval (``Volatility.tick_ms``; default: the configured one),
    which sets how much a discretely observed path undershoots a continuous
    one; ``sigma_sd`` the standard error of log(sigma) (``Volatility.log_sd``);
    ``tick_sd_ms`` the spread of the gaps (``Volatility.tick_sd_ms``), which
    says whether the ticks to come can be placed from the last one;
    ``sigma`` the estimate (``Volatility.estimate``) and ``sigma_floor`` the
    least sigma priced (``Volatility.floor``, see ``price_columns``);
    ``window_vr`` the window's variance ratio (``Volatility.horizon_ratio``).
    """
    if tick_ms is None:
        tick_ms = cfg.tick_interval_ms
    t0s = list(open_columns(cfg, now))
    columns = {}
    if cache is not None:
        priced = False
        for t0 in t0s:
            if priced and pause is not None:
                pause()
            columns[t0], priced = cache.column(cfg, price, price_ts, now, t0, sigma, tick_ms,
                                               sigma_sd, tick_sd_ms, sigma_floor, window_vr, t0s)
        return Grid(version, price, price_ts, max(sigma, sigma_floor), columns, now, market_id)
    for i in range(0, len(t0s), SLICE_COLUMNS):
        if i and pause is not None:
            pause()
        columns.update(price_columns(price, price_ts, now, t0s[i:i + SLICE_COLUMNS],
                                     cfg.column_ms, cfg.band_cents, cfg.max_bands, sigma,
                                     cfg.edge_bp, tick_ms, sigma_sd, tick_sd_ms=tick_sd_ms,
                                     sigma_floor=sigma_floor, window_vr=window_vr))
    return Grid(version, price, price_ts, max(sigma, sigma_floor), columns, now, market_id)


class MarketMaker(Actor):
    supervisor_strategy = OneForOne(max_restarts=20, within=10.0)

    def __init__(self, ctx, reprice_ms=0):
        # A tick reprices the grid once ``reprice_ms`` have passed since the
        # last grid (0: every tick; ``GRID_EVERY_MS`` in a served market); a
        # Column prices from a newer tick itself meanwhile (SPEC 7: a tap
        # is priced from a price at most 250 ms old), through the same
        # Repricer, so no column is priced twice a tick.
        self.ctx = ctx
        self.reprice_ms = reprice_ms

    def on_start(self):
        if not self.ctx.grid.columns:
            self.ctx.status.set("starting", True)   # no prices yet: nothing to offer
        self.last = None
        self.priced_at = 0
        self.version = self.ctx.grid.version
        self.dirty = True
        self._roll()
        self.schedule_every(0.1, "roll")

    def on_stop(self):
        self.ctx.columns.clear()

    def receive_batch(self, batch):
        # Ticks that queued while the pricer ran are coalesced: the newest
        # prices the grid once (pricing each in turn would only add to the
        # age of the last). Columns price from the newest tick meanwhile.
        ticked = False
        for msg, reply in batch:
            if type(msg) is Tick:
                self.last = msg
                self.dirty = ticked = True
                out = None
            else:
                out = self.receive(msg)
            if reply is not None:
                reply.set(out)
        if ticked:
            self._roll()

    def receive(self, msg):
        if type(msg) is Tick:
            self.last = msg
            self.dirty = True
            return self._roll()
        if msg == "roll":
            return self._roll()
        if msg == "columns":
            return sorted(self.ctx.columns)
        return None  # health changes and the like: the status object says it all

    def _roll(self):
        ctx = self.ctx
        cfg = ctx.cfg
        now = ctx.now()
        wanted = set(open_columns(cfg, now))
        # names are system-wide: another market's Columns are named by it too
        scope = "" if getattr(ctx, "default", True) else f"{ctx.market.market_id}:"
        added = False
        for t0 in sorted(wanted - set(ctx.columns)):
            ctx.columns[t0] = self.spawn(Column, ctx, t0, name=f"column-{scope}{t0}")
            self.dirty = added = True
        for t0 in sorted(set(ctx.columns) - wanted):
            ref = ctx.columns.pop(t0)
            ref.stop(wait=False)    # drains: taps already queued get column_closed
            self.dirty = True
        # A new column is priced at once, whatever the cadence: until the grid
        # has it, a tap on it from the grid's tick would find no cells.
        if self.last is not None and self.dirty and (added or now - self.priced_at
                                                     >= self.reprice_ms):
            self.dirty = False
            self.priced_at = now
            self.version += 1
            vol = ctx.vol           # the Watchdog's estimate, fed with the same medians
            # On the loop, in slices: taps, ticks and frames run between them.
            # idle(), not sleep(0): a yield by sleep(0) is a callback, which
            # the loop runs before its timers and I/O, so back-to-back
            # slices kept timers ~50 ms late on a loaded box; idle() waits
            # until they have run.
            grid = price_grid(cfg, self.last.price, self.last.ts, vol.estimate, now,
                              self.version, vol.tick_ms, vol.log_sd, vol.tick_sd_ms,
                              getattr(ctx.market, "market_id", None), pause=gevent.idle,
                              sigma_floor=vol.floor, cache=ctx.repricing,
                              window_vr=vol.horizon_ratio)
            ctx.grid = grid
            ctx.sinks.on_grid(grid)
            if ctx.status.holds("starting"):
                ctx.status.set("starting", False)

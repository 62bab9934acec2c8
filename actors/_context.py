"""What the market's actors share: config, clock, ledger, status, the
priced grid, the column routing table, the writer, and the sinks through
which events flow down to clients (the web layer plugs in there).

The context is a blackboard without locks. That is safe because every
actor, and every gateway greenlet, runs in one OS thread under gevent, and
gevent switches greenlets only at a blocking call (a socket or queue wait,
``run_blocking``, a sleep), never between two Python statements. So each
read-check-write below (``Column``: read the balance, then reserve it) runs
whole, and the rule is only: never put a blocking call between reading a
field and writing what depends on it. Threadpool work (SQLite, pricing)
gets its inputs as arguments and never touches the context.

=================  ==================================  ==========================
field              written by (and when)               why it is safe
=================  ==================================  ==========================
``cfg``, clock     ``start_market``, once              never written again
``ledger``         ``start_market`` loads it before    each Column reserves in one
                   any actor runs; Columns reserve;    synchronous pass over its
                   the Writer releases (failed         batch, and the Writer
                   commit), settles, credits and       credits after the commit
                   adds users, after ``run_blocking``  returned: no switch inside
                   returns                             one update
``status``         Watchdog (``stale_price``),         one owner per cause; ``set``
                   MarketMaker (``starting``),         is synchronous and calls
                   DiskGuard (``disk_low``), Writer    its listeners in line
                   (``disk_full``)
``vol``            Watchdog only (``update`` with      ``update`` is synchronous;
                   each median tick); MarketMaker      MarketMaker reads sigma in
                   and snapshots read it               one pass before pricing
``grid``           MarketMaker only, replaced whole    a ``Grid`` is never mutated
``columns``        MarketMaker only (spawn/stop in     ``MarketHandle.place`` only
                   ``_roll``, cleared in ``on_stop``)  reads it; a tap to a column
                                                       just stopped is answered
                                                       ``column_closed``
``writer``         ``start_market``, once              set before the actors that
                                                       tell it are spawned
``writer_stats``   Columns (``pending_taps`` +=);      ``+=`` on an int runs
                   Writer (``pending_taps`` -=, the    whole; the Writer touches
                   batch counters)                     it after the commit
``sinks``          the caller of ``start_market``;     the web layer's Fanout, set
                   ``start_market`` wraps it in        before any actor that
                   ``BoardSinks`` (settlements also    calls it is spawned
                   go to the Board)
``counters``       Columns and ``MarketHandle.place``  ``count`` has no blocking
                   (reject reasons)                    call in it
=================  ==================================  ==========================

    >>> from actors import Config
    >>> from actors._context import MarketContext
    >>> ctx = MarketContext(Config())
    >>> ctx.now() > 0
    True
"""
import time

from ._ledger import Ledger
from ._odds import Volatility
from ._status import Grid, MarketStatus
from ._taken import TakenNonces

__all__ = ["MarketContext", "Sinks", "WriterStats"]


class Sinks:
    """Downstream callbacks; each must return at once (no blocking)."""

    def on_tick(self, tick):
        pass

    def on_grid(self, grid):
        pass

    def on_market(self, status):
        pass

    def on_result(self, user, settlement, balance):
        pass

    def on_feed(self, view):
        """The players' board (a ``BoardView``, see ``_board``), at a bounded rate."""


class WriterStats:
    """The Writer's statistics: read by Columns (backlog) and /metrics."""

    def __init__(self):
        self.pending_taps = 0          # accepted by columns, not yet answered
        self.batches = 0
        self.bets = 0
        self.settlements = 0
        self.failures = 0
        self.last_batch = 0
        self.max_batch_seen = 0
        self.commit_seconds_total = 0.0
        self.last_commit_seconds = 0.0
        self.batch_sizes = []          # drained by /metrics into a histogram
        self.commit_times = []

    def record(self, n_bets, seconds):
        self.batches += 1
        self.bets += n_bets
        self.last_batch = n_bets
        self.max_batch_seen = max(self.max_batch_seen, n_bets)
        self.commit_seconds_total += seconds
        self.last_commit_seconds = seconds
        if n_bets and len(self.batch_sizes) < 10000:
            self.batch_sizes.append(n_bets)
            self.commit_times.append(seconds)

    def as_dict(self):
        return {k: v for k, v in vars(self).items() if not isinstance(v, list)}


class MarketContext:
    def __init__(self, cfg, clock=None, sinks=None):
        self.cfg = cfg
        self._clock = clock or time.time
        self.ledger = Ledger()
        self.status = MarketStatus()
        self.grid = Grid()
        # The one sigma estimate: fed by the Watchdog's medians, read by the
        # MarketMaker's pricer (and the Watchdog's snapshot), kept across restarts.
        self.vol = Volatility(initial_tick_ms=cfg.tick_interval_ms)
        self.columns = {}              # t0 -> Column ref, maintained by the MarketMaker
        self.writer = None
        self.writer_stats = WriterStats()
        self.sinks = sinks or Sinks()
        self.counters = {}             # reject reasons and other counts
        self.price_boards = {}         # asset -> SourceBoard, kept by its Watchdog (/metrics)
        self.taken = TakenNonces()     # the final replay judge (see _taken)

    def now(self):
        return int(self._clock() * 1000)

    def count(self, key, n=1):
        self.counters[key] = self.counters.get(key, 0) + n

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
``repricing``      Columns and the MarketMaker (the    a look-up, a pricing and a
                   columns priced per tick, see        store with no blocking call
                   ``_reprice``); one per market       between them
=================  ==================================  ==========================

    >>> from actors import Config
    >>> from actors._context import MarketContext
    >>> ctx = MarketContext(Config())
    >>> ctx.now() > 0
    True
"""
import copy
import time

from ._ledger import Ledger
from ._odds import Volatility
from ._reprice import Repricer
from ._status import Grid, MarketStatus
from ._taken import TakenNonces

__all__ = ["MarketContext", "Sinks", "WriterStats", "LatestPrice", "PriceAges"]


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


class _ScopedSinks:
    """One market's (or asset's) view of the server's sinks: a sink with the
    v1.1 hooks (``on_asset_tick``, ``on_market_grid``, ``on_market_status``,
    ``on_market_result``, e.g. the gateway's Fanout) hears every market with
    its id; any other sink hears the default market only, through the v1
    hooks, exactly as before several markets."""
    __slots__ = ("sinks", "market_id", "asset", "default")

    def __init__(self, sinks, market_id, asset, default):
        self.sinks, self.market_id, self.asset, self.default = sinks, market_id, asset, default

    def on_tick(self, tick):
        fn = getattr(self.sinks, "on_asset_tick", None)
        if fn is not None:
            fn(self.asset, tick)
        elif self.default:
            self.sinks.on_tick(tick)

    def on_grid(self, grid):
        fn = getattr(self.sinks, "on_market_grid", None)
        if fn is not None:
            fn(self.market_id, grid)
        elif self.default:
            self.sinks.on_grid(grid)

    def on_market(self, status):
        fn = getattr(self.sinks, "on_market_status", None)
        if fn is not None:
            fn(self.market_id, status)
        elif self.default:
            self.sinks.on_market(status)

    def on_result(self, user, settlement, balance):
        fn = getattr(self.sinks, "on_market_result", None)
        if fn is not None:
            fn(self.market_id, user, settlement, balance)
        else:
            self.sinks.on_result(user, settlement, balance)


class LatestPrice:
    """An asset's newest median tick, set by its Watchdog before anyone
    hears of it: a Column prices a tap from it when the grid is older."""
    __slots__ = ("tick",)

    def __init__(self):
        self.tick = None


class PriceAges:
    """The age (ms) of the price behind each accepted multiplier: the
    recent ones for p50/p99 in /metrics, and counts."""

    def __init__(self, keep=4096):
        from collections import deque
        self.recent = deque(maxlen=keep)
        self.n = 0
        self.repriced = 0              # taps priced from a tick newer than the grid
        self.too_old = 0               # taps refused: the newest price older than max_price_age_ms

    def add(self, age_ms):
        self.recent.append(age_ms)
        self.n += 1

    def quantile(self, q):
        if not self.recent:
            return None
        xs = sorted(self.recent)
        return xs[min(len(xs) - 1, int(q * len(xs)))]


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
        # several markets (actors/_markets.py): a server context is scoped to
        # an asset (its status, vol, latest price) and then to a market (its
        # grid config, status, grid, columns), sharing everything else
        self.asset = "BTC-USD"
        self.latest = LatestPrice()
        self.market = None             # the MarketSpec, in a market's context
        self.number = 0                # the market's number in the markets table
        self.default = True            # the default market (v1 taps go there)
        self.price_ages = PriceAges()
        # each column priced once per tick, by a Column or the MarketMaker
        # (counts shared by every market's: repricing.statistics())
        self.repricing = Repricer()
        self.record = ("ticks", "stale_spans")   # the asset's price-record tables

    def for_asset(self, asset, record=("ticks", "stale_spans"), default=True):
        """The context of one asset's Watchdog and markets: its own status
        (under the server's), volatility and latest price."""
        child = copy.copy(self)
        child.asset = asset
        child.record = record
        child.status = MarketStatus(parent=self.status)
        child.vol = Volatility(initial_tick_ms=self.cfg.tick_interval_ms)
        child.latest = LatestPrice()
        child.default = default        # the default market's asset (v1 sinks hear its ticks)
        child.sinks = _ScopedSinks(self.sinks, None, asset, default)
        return child

    def for_market(self, spec, cfg, number, default, sinks):
        """The context of one market (from its asset's context): its grid
        config, status (under the asset's), grid and columns."""
        child = copy.copy(self)
        child.cfg = cfg
        child.market = spec
        child.number = number
        child.default = default
        child.status = MarketStatus(parent=self.status, market_id=spec.market_id)
        child.grid = Grid(market_id=spec.market_id)
        child.columns = {}
        child.repricing = Repricer(self.repricing.counts)
        child.sinks = _ScopedSinks(sinks, spec.market_id, spec.asset, default)
        return child

    def now(self):
        return int(self._clock() * 1000)

    def count(self, key, n=1):
        self.counters[key] = self.counters.get(key, 0) + n

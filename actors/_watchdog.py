"""The Watchdog: the one door price ticks come through.

It runs the asset's price sources (one feed, or several: see
``_sources.SourceBoard``), rejects outlier and out-of-order ticks per
source (counted), and turns them into one price, the median of the fresh
sources. It keeps that price and its time, feeds the market's one
volatility estimate (``ctx.vol``, which the MarketMaker prices with), and marks
the market **stale** when fewer than ``quorum`` sources ticked within 2x
their interval, or when the fresh ones disagree by more than
``divergence_bp``: betting is suspended at once (``MarketStatus`` cause
``stale_price``) and reopens by itself when the sources agree again. Each
median goes to every subscriber (callables such as ``ref.tell``) and to the
Writer, which keeps it with its sources (the price record settlement is
replayed and verified from); each stale period is recorded there too.

A feed of three ticks, the second a 10% jump; the subscriber (a queue's
``put``) hears that the price is fresh, then gets the two good ticks, and
betting opens with the first of them (no Writer in this sketch, so no tick
is stored and no database is opened):

    >>> from gevent.queue import Queue
    >>> from engine import ActorSystem
    >>> from actors import Config, MarketContext, Tick, Watchdog
    >>> from actors.feeds import Feed
    >>> class Three(Feed):
    ...     def run(self, emit):
    ...         for tick in (Tick(9_500_000, 1_000), Tick(10_450_000, 2_000),
    ...                      Tick(9_501_000, 3_000)):
    ...             self._emit(emit, tick)
    ...         self._stop.wait()
    >>> ctx = MarketContext(Config())
    >>> system = ActorSystem()
    >>> seen = Queue()
    >>> watchdog = system.spawn(Watchdog, ctx, Three(), [seen.put])
    >>> [seen.get(timeout=5) for _ in range(3)]
    [('fresh', ...), Tick(price=9500000, ts=1000), Tick(price=9501000, ts=3000)]
    >>> snap = watchdog.ask("snapshot", timeout=5)
    >>> snap["price"], snap["ticks"], snap["outliers"], ctx.status.is_open
    (9501000, 2, 1, True)
    >>> system.stop()
"""
import logging
import time

import gevent

from engine import Actor

from .feeds import Tick
from ._sources import OK, SourceBoard, source_names
from ._writes import Maintenance, SaveTicks

__all__ = ["Watchdog", "Health"]

log = logging.getLogger("tapgrid.watchdog")


class Health(tuple):
    """``("stale"|"fresh", since_ms)`` published to subscribers on change."""
    __slots__ = ()

    def __new__(cls, state, since):
        return tuple.__new__(cls, (state, since))

    state = property(lambda self: self[0])
    since = property(lambda self: self[1])


class Watchdog(Actor):
    """``feed`` is one Feed or a list of them (the asset's sources)."""

    def __init__(self, ctx, feed, subscribers=(), asset=None):
        self.ctx = ctx
        cfg = ctx.cfg
        self.feeds = list(feed) if isinstance(feed, (list, tuple)) else [feed]
        self.feed = self.feeds[0]
        self.subscribers = list(subscribers)
        intervals = [max(getattr(f, "expected_interval_ms", None) or cfg.tick_interval_ms,
                         cfg.tick_interval_ms) for f in self.feeds]
        names = source_names([getattr(f, "name", "feed") for f in self.feeds])
        self.board = SourceBoard(names, intervals, quorum=cfg.quorum,
                                 divergence_bp=cfg.divergence_bp, outlier_bp=cfg.outlier_bp)
        self.stale_after = max(self.board.stale_after)
        ctx.price_boards[asset or ctx.asset] = self.board

    def on_start(self):
        self.last = None
        self.stale = True               # until the first tick
        self.why = "no price yet"
        self.stats = {"ticks": 0, "outliers": 0, "out_of_order": 0, "stale_periods": 0}
        self.ctx.status.set("stale_price", True)
        tell = self.ref.tell
        self._greenlets = [gevent.spawn(self._pump, f, tell if i == 0 else
                                        (lambda t, i=i: tell((i, t))))
                           for i, f in enumerate(self.feeds)]
        self.schedule_every(min(0.25, min(self.board.stale_after) / 4000), "check")

    def _pump(self, feed, emit):
        try:
            feed.run(emit)
        except gevent.GreenletExit:
            pass
        except Exception:
            log.exception("feed %s died; its price drops out of the median",
                          getattr(feed, "name", "?"))

    def on_stop(self):
        for feed in self.feeds:
            try:
                feed.stop()
            except Exception:
                pass
        for g in self._greenlets:
            g.kill(block=False)

    def subscribe(self, fn):
        self.subscribers.append(fn)

    def receive(self, msg):
        if type(msg) is Tick:
            return self._tick(0, msg)
        if type(msg) is tuple and len(msg) == 2 and type(msg[1]) is Tick:
            return self._tick(msg[0], msg[1])
        if msg == "check":
            return self._check()
        if msg == "snapshot":
            return self.snapshot()
        if isinstance(msg, tuple) and msg and msg[0] == "subscribe":
            self.subscribers.append(msg[1])
            return True
        raise ValueError(f"watchdog: unknown message {msg!r}")

    def snapshot(self):
        last = self.last
        return {"price": last.price if last else None, "ts": last.ts if last else None,
                "sigma": self.ctx.vol.sigma, "stale": self.stale, "stale_after_ms": self.stale_after,
                "why": self.why if self.stale else None, **self.stats,
                "board": self.board.snapshot(_mono_ms())}

    def _tick(self, i, tick):
        board = self.board
        c = board.counts[i]
        before = c["outliers"], c["out_of_order"]
        if not board.update(i, tick, _mono_ms()):
            self.stats["outliers"] += c["outliers"] - before[0]
            self.stats["out_of_order"] += c["out_of_order"] - before[1]
            if c["outliers"] != before[0]:
                log.warning("outlier tick rejected from %s: %s", board.names[i], tick.price)
            return
        state, median = board.evaluate(_mono_ms())
        if state != OK:
            if not self.stale:
                self._set_stale(True, state)
            return
        last = self.last
        # One price per ms in the record: a tick in the same ms (or stamped
        # before the last median by a lagging source) is kept 1 ms later, so
        # the stored path is exactly the path the Resolver saw.
        ts = tick.ts if last is None or tick.ts > last.ts else last.ts + 1
        out = tick if (median == tick.price and ts == tick.ts) else Tick(median, ts)
        self.last = out
        self.stats["ticks"] += 1
        self.ctx.vol.update(out.price, out.ts)
        self.ctx.latest.tick = out      # before anyone hears of it: Columns price from it
        if self.stale:
            self._set_stale(False)
        for fn in self.subscribers:
            fn(out)
        writer = self.ctx.writer
        if writer is not None:
            table = self.ctx.record[0]
            writer.tell(SaveTicks([(out.ts, out.price, board.encode())] if table == "ticks" else
                                  [(out.ts, out.price, board.encode(), table)]))
        self.ctx.sinks.on_tick(out)

    def _check(self):
        state, _ = self.board.evaluate(_mono_ms())
        if state != OK and not self.stale and self.last is not None:
            self._set_stale(True, state)
        elif state == OK and self.stale and self.last is not None:
            # e.g. a diverging source went silent: the others agree again
            self._set_stale(False)

    def _set_stale(self, stale, why=None):
        self.stale = stale
        now = self.ctx.now()
        if stale and self.last is not None:
            # After every price already published (an exchange's clock may
            # run ahead of ours): a tick the Resolver judged clean stays
            # clean when the record is replayed by ``tapgrid verify``.
            now = max(now, self.last.ts + 1)
        if stale:
            self.why = {"quorum": f"fewer than {self.board.quorum} fresh sources"
                                  f" (none for {self.stale_after} ms)" if self.board.quorum > 1
                        else f"no tick for {self.stale_after} ms",
                        "divergence": f"sources disagree by more than"
                                      f" {self.board.divergence_bp} bp"}.get(why, why)
            self.stats["stale_periods"] += 1
            log.warning("price stale: %s; betting suspended", self.why)
        else:
            log.info("price fresh again: betting reopened")
        self.ctx.status.set("stale_price", stale)
        writer = self.ctx.writer
        if writer is not None:
            writer.tell(Maintenance(*record_stale(stale, now, self.ctx.record[1])))
        health = Health("stale" if stale else "fresh", now)
        for fn in self.subscribers:
            fn(health)


def record_stale(stale, now, table="stale_spans"):
    """The statement that keeps a stale period in the price record."""
    if stale:
        return f"INSERT OR REPLACE INTO {table}(start, end) VALUES (?, NULL)", (now,)
    return f"UPDATE {table} SET end = ? WHERE end IS NULL", (now,)


def _mono_ms():
    return time.monotonic() * 1000

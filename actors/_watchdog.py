"""The Watchdog: the one door price ticks come through.

It runs the feed, rejects outlier and out-of-order ticks (counted), keeps
the last price, its exchange time and the volatility estimate, and marks
the market **stale** when no tick arrived within 2x the expected interval:
betting is suspended at once (``MarketStatus`` cause ``stale_price``) and
reopens by itself when ticks flow again. Accepted ticks go to every
subscriber (callables such as ``ref.tell``) and to the Writer, which keeps
them so settlement can be replayed after a crash.

    from actors.feeds import SimFeed
    watchdog = system.spawn(Watchdog, ctx, SimFeed(seed=1), name="watchdog")
    watchdog.ask("snapshot")   # {'price': ..., 'ts': ..., 'stale': ..., ...}
"""
import logging
import time

import gevent

from engine import Actor

from .feeds import Tick
from ._odds import Volatility
from ._writes import SaveTicks

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
    def __init__(self, ctx, feed, subscribers=()):
        self.ctx = ctx
        self.feed = feed
        self.subscribers = list(subscribers)
        interval = getattr(feed, "expected_interval_ms", None) or ctx.cfg.tick_interval_ms
        self.stale_after = 2 * max(interval, ctx.cfg.tick_interval_ms)
        self.outlier_bp = ctx.cfg.outlier_bp

    def on_start(self):
        self.last = None
        self.last_seen = None           # monotonic receipt time
        self.stale = True               # until the first tick
        self.stats = {"ticks": 0, "outliers": 0, "out_of_order": 0, "stale_periods": 0}
        self.vol = Volatility()
        self.ctx.status.set("stale_price", True)
        self._feed_greenlet = gevent.spawn(self._pump)
        self.schedule_every(min(0.25, self.stale_after / 4000), "check")

    def _pump(self):
        tell = self.ref.tell
        try:
            self.feed.run(tell)
        except gevent.GreenletExit:
            pass
        except Exception:
            log.exception("feed %s died; the watchdog will mark the market stale",
                          getattr(self.feed, "name", "?"))

    def on_stop(self):
        try:
            self.feed.stop()
        except Exception:
            pass
        self._feed_greenlet.kill(block=False)

    def subscribe(self, fn):
        self.subscribers.append(fn)

    def receive(self, msg):
        if type(msg) is Tick:
            return self._tick(msg)
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
                "sigma": self.vol.sigma, "stale": self.stale, "stale_after_ms": self.stale_after,
                **self.stats}

    def _tick(self, tick):
        last = self.last
        if tick.price <= 0:
            self.stats["outliers"] += 1
            return
        if last is not None:
            if tick.ts < last.ts:
                self.stats["out_of_order"] += 1
                return
            if abs(tick.price - last.price) * 10000 > self.outlier_bp * last.price:
                self.stats["outliers"] += 1
                log.warning("outlier tick rejected: %s after %s", tick.price, last.price)
                return
        self.last = tick
        self.last_seen = time.monotonic()
        self.stats["ticks"] += 1
        self.vol.update(tick.price, tick.ts)
        if self.stale:
            self._set_stale(False)
        for fn in self.subscribers:
            fn(tick)
        writer = self.ctx.writer
        if writer is not None:
            writer.tell(SaveTicks([(tick.ts, tick.price)]))
        self.ctx.sinks.on_tick(tick)

    def _check(self):
        if self.stale or self.last_seen is None:
            return
        if (time.monotonic() - self.last_seen) * 1000 > self.stale_after:
            self._set_stale(True)

    def _set_stale(self, stale):
        self.stale = stale
        now = self.ctx.now()
        if stale:
            self.stats["stale_periods"] += 1
            log.warning("price stale: no tick for %d ms; betting suspended", self.stale_after)
        else:
            log.info("price fresh again: betting reopened")
        self.ctx.status.set("stale_price", stale)
        health = Health("stale" if stale else "fresh", now)
        for fn in self.subscribers:
            fn(health)

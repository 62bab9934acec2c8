"""The disk guard: suspends betting (``disk_low``) while the database's disk
is below ``min_free_disk``, and reopens it when space returns.

Its own actor so the MarketMaker only supervises Columns and prices the grid;
the measurement (``shutil.disk_usage``) runs off the loop, once a second.

    >>> import os, tempfile
    >>> from engine import ActorSystem
    >>> from actors import Config
    >>> from actors._context import MarketContext
    >>> from actors._diskguard import DiskGuard
    >>> cfg = Config(db=os.path.join(tempfile.mkdtemp(), "g.db"), min_free_disk="100%")
    >>> ctx = MarketContext(cfg)
    >>> system = ActorSystem()
    >>> guard = system.spawn(DiskGuard, ctx)
    >>> guard.ask("disk", timeout=5) > 0, ctx.status.holds("disk_low")
    (True, True)
    >>> cfg.min_free_disk = 0
    >>> _ = guard.ask("disk", timeout=5); ctx.status.holds("disk_low")
    False
    >>> system.stop()
"""
import logging
import os
import shutil

from engine import Actor, run_blocking

__all__ = ["DiskGuard"]

log = logging.getLogger("tapgrid.market")


class DiskGuard(Actor):
    """Owns the ``disk_low`` cause of ``ctx.status``."""

    def __init__(self, ctx, every_s=1.0):
        self.ctx = ctx
        self.every_s = every_s

    def on_start(self):
        self._check()
        self.schedule_every(self.every_s, "disk")

    def receive(self, msg):
        if msg == "disk":
            return self._check()
        return None

    def _check(self):
        """Free bytes now (None if unmeasurable); flips ``disk_low`` on a crossing."""
        cfg = self.ctx.cfg
        d = os.path.dirname(os.path.abspath(cfg.db)) or "."
        try:
            usage = run_blocking(shutil.disk_usage, d)
        except OSError:
            return None
        limit = cfg.min_free_disk
        if isinstance(limit, str) and limit.endswith("%"):
            limit = usage.total * float(limit[:-1]) / 100
        low = usage.free < limit
        if low != self.ctx.status.holds("disk_low"):
            (log.warning if low else log.info)(
                "disk %s: %d bytes free, limit %d", "low" if low else "ok", usage.free, int(limit))
            self.ctx.status.set("disk_low", low)
        return usage.free

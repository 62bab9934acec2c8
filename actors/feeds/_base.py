"""What every price feed is: ``Tick``, the ``Feed`` interface, ``FeedStats``.

    >>> from actors.feeds import Feed, Tick
    >>> class Once(Feed):
    ...     def run(self, emit):
    ...         self._emit(emit, Tick(9_500_000, 0))
    >>> got = []; Once().run(got.append); got
    [Tick(price=9500000, ts=0)]
"""
from collections import namedtuple

from gevent.event import Event

__all__ = ["Tick", "Feed", "FeedStats"]

Tick = namedtuple("Tick", "price ts")
Tick.__doc__ = "One price observation: price in integer cents, ts in Unix ms."


class FeedStats:
    """Counters a feed keeps for /metrics and for humans."""

    __slots__ = ("ticks", "errors", "reconnects", "heartbeats", "malformed",
                 "ignored", "last_error", "last_tick")

    def __init__(self):
        self.ticks = self.errors = self.reconnects = 0
        self.heartbeats = self.malformed = self.ignored = 0
        self.last_error = None
        self.last_tick = None

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self):
        return f"FeedStats({self.as_dict()})"


class Feed:
    """Base of all feeds. A stopped feed stays stopped: make a new one. An
    exception raised by `emit` is the consumer's bug and ends run()."""

    name = "feed"
    expected_interval_ms = 1000

    def __init__(self):
        self.stats = FeedStats()
        self._stop = Event()

    def run(self, emit):
        raise NotImplementedError

    def stop(self):
        self._stop.set()

    @property
    def stopped(self):
        return self._stop.is_set()

    def _emit(self, emit, tick):
        self.stats.ticks += 1
        self.stats.last_tick = tick
        emit(tick)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name} ticks={self.stats.ticks}>"

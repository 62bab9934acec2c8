"""Per-actor timers on the gevent loop, all cancelled when the actor stops.

    >>> import gevent
    >>> from engine import ActorSystem, Actor
    >>> class Ticker(Actor):
    ...     def on_start(self):
    ...         self.n = 0
    ...         self.schedule_every(0.01, "tick")
    ...     def receive(self, msg):
    ...         if msg == "tick": self.n += 1
    ...         elif msg == "n": return self.n
    >>> system = ActorSystem()
    >>> ref = system.spawn(Ticker)
    >>> gevent.sleep(0.05); ref.ask("n") > 0
    True
    >>> system.stop()
"""
from gevent import get_hub

from ._errors import MailboxFull

__all__ = ["Timer", "Timers"]


class Timer:
    """Handle of one scheduled message; ``cancel()`` is idempotent."""
    __slots__ = ("_watcher", "_owner", "repeat")

    def __init__(self, watcher, owner, repeat):
        self._watcher = watcher
        self._owner = owner
        self.repeat = repeat

    @property
    def active(self):
        return self._watcher is not None

    def cancel(self):
        w = self._watcher
        if w is not None:
            self._watcher = None
            w.close()
            self._owner._active.discard(self)


class Timers:
    def __init__(self, cell):
        self._cell = cell
        self._active = set()

    def _fire(self, timer, msg):
        if not timer.repeat or not self._cell.accepting:
            timer.cancel()
        if not self._cell.accepting:
            # The actor is stopping (draining its mailbox): its timers are
            # cancelled with it, so a tick due meanwhile is no dead letter.
            return
        try:
            self._cell.tell(msg)
        except MailboxFull:
            # A timer never blocks the loop: the tick is dropped and counted.
            pass

    def _start(self, after, repeat, msg):
        watcher = get_hub().loop.timer(after, repeat or 0.0)
        timer = Timer(watcher, self, bool(repeat))
        self._active.add(timer)
        watcher.start(self._fire, timer, msg)
        return timer

    def once(self, delay, msg):
        return self._start(max(delay, 0.0), 0.0, msg)

    def every(self, interval, msg, first=None):
        if interval <= 0:
            raise ValueError("interval must be positive")
        return self._start(interval if first is None else max(first, 0.0), interval, msg)

    def cancel_all(self):
        for t in list(self._active):
            t.cancel()

    def __len__(self):
        return len(self._active)

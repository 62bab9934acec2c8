"""``Wake``: an Event for the one greenlet that waits on it, woken through
``engine.wake_soon`` rather than the loop's callback queue.

A gevent ``Event.set`` wakes its waiter with a loop callback, at the end of
the FIFO every greenlet switch goes through. In a reconnect storm that
queue holds thousands of teardowns and upgrades, and a gateway's tap sender,
woken that way, waited behind all of them at every tap's hand-off to the
bus. ``wake_soon`` takes the loop's urgent lane once the queue is long, so
the sender runs in the next turn.

    >>> import gevent
    >>> wake, seen = Wake(), []
    >>> def sender():
    ...     wake.wait(); wake.clear(); seen.append("woken")
    >>> g = gevent.spawn(sender); gevent.sleep(0)
    >>> wake.set(); g.join(1); seen
    ['woken']
"""
from gevent import get_hub, getcurrent

from engine import wake_soon

__all__ = ["Wake"]


class Wake:
    __slots__ = ("flag", "_waiter", "_loop")

    def __init__(self):
        self.flag = False
        self._waiter = None
        self._loop = None

    def set(self):
        self.flag = True
        g = self._waiter
        if g is not None:
            self._waiter = None
            wake_soon(self._loop, self._resume, g)

    @staticmethod
    def _resume(g):
        if not g.dead:
            g.switch()

    def clear(self):
        self.flag = False

    def wait(self):
        """Return once ``set`` (at once if it was set since the last ``clear``)."""
        if self.flag:
            return
        hub = get_hub()
        self._loop = hub.loop
        self._waiter = getcurrent()
        try:
            hub.switch()
        finally:
            self._waiter = None

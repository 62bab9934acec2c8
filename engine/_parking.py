"""A line of parked greenlets that a repeating timer lets go, oldest first.

Pacing work across loop turns comes down to one mechanism: a greenlet that
may not go on yet parks (it switches to the hub, costing nothing but its
frame), and a timer, running in the hub once a period while anyone waits,
resumes some of them straight from its callback (no callback of their own
behind a long callback queue). How many go in a turn is the owner's rule,
so the owner passes ``on_turn``: it runs in the hub each period and calls
``release()`` as often as its rule allows. The line keeps the order, takes
out a greenlet that was killed while parked, and keeps the timer running
exactly while someone waits, even when ``on_turn`` raises.

    >>> import gevent
    >>> line, went = ParkingLine(0.001, lambda: line.release()), []
    >>> def work(i):
    ...     line.park()
    ...     went.append(i)
    >>> _ = gevent.joinall([gevent.spawn(work, i) for i in range(3)])
    >>> went, line.parked, line.waiting, line.timing
    ([0, 1, 2], 3, 0, False)
"""
from collections import deque

from gevent import get_hub, getcurrent

__all__ = ["ParkingLine"]

_GO = object()              # what the timer resumes a parked greenlet with


class ParkingLine:
    def __init__(self, period_s, on_turn):
        self.period_s = period_s
        self._on_turn = on_turn
        self._waiting = deque()        # parked greenlets, oldest first
        self._timer = None
        self._loop = None
        self.parked = 0                # greenlets that had to wait (ever)
        self.worst_wait = 0            # the most parked at once

    @property
    def waiting(self):
        return len(self._waiting)

    @property
    def timing(self):
        """True while the line's timer is running (someone waits)."""
        return self._timer is not None

    def __bool__(self):
        return bool(self._waiting)

    @property
    def loop(self):
        if self._loop is None:
            self._loop = get_hub().loop
        return self._loop

    def park(self):
        """Wait in line until ``release`` lets this greenlet go. The hub
        itself never parks (it would wait for itself): it returns at once."""
        hub = get_hub()
        me = getcurrent()
        if me is hub:
            return
        self._waiting.append(me)
        self.parked += 1
        if len(self._waiting) > self.worst_wait:
            self.worst_wait = len(self._waiting)
        if self._timer is None:
            self._start()
        try:
            got = hub.switch()
        except BaseException:
            # Killed while parked (its client went, the server stopping).
            self._forget(me)
            raise
        if got is not _GO:             # pragma: no cover - a stray switch into us
            self._forget(me)

    def release(self):
        """From ``on_turn``: let the oldest live greenlet go. False when
        nobody was left to go."""
        waiting = self._waiting
        while waiting:
            g = waiting.popleft()
            if not g.dead:
                g.switch(_GO)
                return True
        return False

    def _forget(self, me):
        try:
            self._waiting.remove(me)
        except ValueError:
            pass

    def _start(self):
        self._timer = self.loop.timer(self.period_s, self.period_s)
        self._timer.start(self._turn)

    def _turn(self):
        try:
            self._on_turn()
        finally:
            # Whatever happened above, the line never stops moving, and an
            # empty line costs no timer.
            if not self._waiting:
                self._timer.stop()
                self._timer.close()
                self._timer = None
            elif not self._timer.active:
                self._timer.close()
                self._start()

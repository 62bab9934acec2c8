"""How late the event loop runs: a timer's lateness, measured in the hub.

A greenlet that sleeps 10 ms in a loop and times itself costs two greenlet
switches, a ``Waiter`` and a timer watcher per wake: a hundred wakes a
second, about 1 % of a core on an idle server (py-spy, 50 clients and no
taps: a tenth of what the loop did at rest once the grid stopped being
priced on every tick). ``LagWatch`` keeps one repeating libev timer whose
callback runs in the hub: the same measurement (how much more than
``period_s`` after the previous wake this one came), no greenlet, nothing
allocated per wake but the floats.

    >>> import gevent
    >>> seen = []
    >>> w = LagWatch(seen.append, 0.005).start()
    >>> gevent.sleep(0.05); w.stop()
    >>> len(seen) > 3 and min(seen) >= 0.0
    True
"""
import time

__all__ = ["LagWatch"]


class LagWatch:
    """Calls ``on_lag(ms)`` every ``period_s`` with how many ms late the
    timer fired (never negative), until stopped. The timer never keeps a
    loop alive on its own."""

    def __init__(self, on_lag, period_s=0.01):
        self.on_lag = on_lag
        self.period_s = period_s
        self._timer = None
        self._last = 0.0

    def start(self, loop=None):
        if self._timer is None:
            if loop is None:
                from gevent import get_hub
                loop = get_hub().loop
            # Repeating, not a one-shot re-armed from its own callback: that
            # kept the loop from ever being idle (gevent.idle() never
            # returned, so the grid's slices never went on).
            self._timer = loop.timer(self.period_s, self.period_s)
            self._timer.ref = False
            self._last = time.perf_counter()
            self._timer.start(self._fired)
        return self

    def _fired(self):
        now = time.perf_counter()
        late = (now - self._last - self.period_s) * 1000
        self._last = now
        self.on_lag(max(0.0, late))

    def stop(self):
        if self._timer is not None:
            self._timer.stop()
            self._timer.close()
            self._timer = None

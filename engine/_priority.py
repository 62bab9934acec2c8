"""Work that cannot wait goes before work that can: ``wake_soon`` and
``BulkGate``.

Everything that crosses greenlets in gevent (an ``Event.set``, a
``spawn``, an actor's wake-up, a socket's close) goes through one FIFO of
callbacks that the loop runs in order. Latency-critical work, such as a
player's tap hopping from the frame reader to the verify threads, the
Column, the Writer and back, joins the end of that queue at every hop. When
10,000 connections drop at once, each of their teardowns puts two
callbacks there (its socket's close, its greenlet's end) within 0.1 s, and
at ~27 µs apiece every hop of a tap waits ~0.5 s behind them, while the
loop itself never looks late (each turn is short; the queue is long).

``wake_soon(loop, fn)`` is ``loop.run_callback(fn)`` while that queue is
short (the same order as ever); once it is long (``URGENT_AFTER``), ``fn``
goes to an urgent lane instead: one async watcher of the highest priority,
which libev runs in its next turn, after at most one slice (gevent's switch
interval, 5 ms) of the queue. The engine's actors wake through it, and so
does the tap pipeline's every hop, so a tap crosses a long queue in a few
slices instead of waiting for all of it.

A greenlet about to do bulk work calls ``gate.wait()``. While the loop's
callback queue is shorter than ``max_queue`` and nobody is parked it goes
on at once (the quiet path: one ``len``). Otherwise it parks, and a
repeating timer lets parked greenlets go, oldest first, at most
``per_turn`` a turn and only while the queue is short again: the queue
stays short, so what is queued behind it does not wait. The greenlets are
resumed straight from the timer (no callback of their own).

    >>> gate = BulkGate(max_queue=128, per_turn=32)
    >>> gate.wait()        # a quiet loop: straight through
    >>> gate.parked, gate.waiting
    (0, 0)
"""
from collections import deque

from ._parking import ParkingLine

__all__ = ["BulkGate", "callback_queue_len", "wake_soon", "urgent_lane", "URGENT_AFTER"]

URGENT_AFTER = 64          # callbacks queued: beyond this, wake_soon takes the urgent lane


def callback_queue_len(loop):
    """How many callbacks the loop has queued (0 when it cannot tell)."""
    try:
        return len(loop._callbacks)
    except (AttributeError, TypeError):
        return 0


class _UrgentLane:
    """Callbacks run by one async watcher at the loop's highest priority."""

    def __init__(self, loop):
        self.loop = loop
        self.queue = deque()
        self.watcher = loop.async_()
        try:
            self.watcher.priority = loop.MAXPRI
        except AttributeError:         # pragma: no cover - a loop without priorities
            pass
        self.watcher.start(self._run)
        self.watcher.ref = False       # idle, it must not keep the loop alive
        self.ran = 0                   # callbacks that took this lane (ever)

    def add(self, fn, args=()):
        q = self.queue
        q.append((fn, args))
        if len(q) == 1:
            self.watcher.ref = True
            self.watcher.send()

    def _run(self):
        q = self.queue
        # Only what is here now: what these callbacks add waits a turn, so
        # the lane cannot starve the loop's I/O.
        for _ in range(len(q)):
            fn, args = q.popleft()
            self.ran += 1
            try:
                fn(*args)
            except Exception:          # pragma: no cover - a callback's own bug
                import logging
                logging.getLogger("engine.priority").exception("urgent callback failed")
        if q:
            self.watcher.send()
        else:
            self.watcher.ref = False


_lanes = {}


def urgent_lane(loop):
    lane = _lanes.get(id(loop))
    if lane is None or lane.loop is not loop:
        lane = _lanes[id(loop)] = _UrgentLane(loop)
    return lane


def wake_soon(loop, fn, *args):
    """``loop.run_callback(fn, *args)``, unless the loop's callback queue is
    long: then ``fn`` runs ahead of it, in the loop's next turn."""
    if callback_queue_len(loop) > URGENT_AFTER:
        urgent_lane(loop).add(fn, args)
    else:
        loop.run_callback(fn, *args)


class BulkGate:
    def __init__(self, max_queue=128, per_turn=32, period_s=0.001):
        self.max_queue = max(0, int(max_queue))
        self.per_turn = max(1, int(per_turn))
        self.line = ParkingLine(period_s, self._turn)

    @property
    def parked(self):
        """Greenlets that had to wait (ever)."""
        return self.line.parked

    @property
    def worst_wait(self):
        """The most parked at once."""
        return self.line.worst_wait

    @property
    def waiting(self):
        return self.line.waiting

    def busy(self):
        """True while bulk work should wait."""
        return bool(self.line) or callback_queue_len(self.line.loop) > self.max_queue

    def wait(self):
        """Return when this greenlet may go on with its bulk work."""
        if self.busy():
            self.line.park()

    def _turn(self):
        # In the hub: let the oldest go while the queue is short.
        line, loop = self.line, self.line.loop
        n = 0
        while line and n < self.per_turn and callback_queue_len(loop) <= self.max_queue:
            line.release()
            n += 1

"""How long the cyclic garbage collector stops the process, per generation.

A collection runs inside whatever allocation triggered it, on the event
loop's thread, with the GIL held: a generation-2 pass over a heap of
10,000 connections is a stall of its own, invisible to a profile that
samples Python frames. ``GcWatch`` times every collection through
``gc.callbacks`` (two ``perf_counter`` calls, nothing allocated on the
hot side) and keeps, per generation, the count, the total and the
worst pause and a small histogram, which ``/metrics`` and the console
read.

Why the young collections also need a clock (``GcPacer``): CPython starts
one when allocations minus deallocations pass the gen-0 threshold, and a
freed *old* object counts as a deallocation too. When 10,000 connections
drop and reconnect, the old ones' frees cancel the new ones' allocations,
so no collection starts for seconds while the young generation grows to
millions of objects; the first one then stops the loop for 300 ms (measured
in the storm). Collecting the young generation on a timer keeps it to what
a period allocates.

``settle_gc`` is what a server calls once its long-lived objects exist:
collect, move everything that survived to the permanent generation
(``gc.freeze``: never scanned again) and set the thresholds.

    >>> import gc
    >>> w = GcWatch().start()
    >>> _ = gc.collect(2)
    >>> w.stats[2].count >= 1
    True
    >>> w.stop()
"""
import gc
import time
from collections import deque

__all__ = ["GcWatch", "GcStats", "GcPacer", "GC_PAUSE_BUCKETS", "settle_gc"]

# seconds; fine steps where a tap's 100 ms budget is
GC_PAUSE_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5)


class GcStats:
    """One generation's collections: count, seconds, worst, histogram."""
    __slots__ = ("generation", "count", "seconds", "worst", "collected", "buckets")

    def __init__(self, generation):
        self.generation = generation
        self.count = 0
        self.seconds = 0.0
        self.worst = 0.0
        self.collected = 0            # objects freed
        self.buckets = [0] * (len(GC_PAUSE_BUCKETS) + 1)

    def add(self, seconds, collected):
        self.count += 1
        self.seconds += seconds
        self.collected += collected
        if seconds > self.worst:
            self.worst = seconds
        for i, b in enumerate(GC_PAUSE_BUCKETS):
            if seconds <= b:
                self.buckets[i] += 1
                return
        self.buckets[-1] += 1

    def __repr__(self):
        return (f"<GcStats gen{self.generation} count={self.count} "
                f"total={self.seconds * 1000:.1f}ms worst={self.worst * 1000:.2f}ms>")


class GcWatch:
    """Times every collection of this process while started."""

    def __init__(self, keep=256, notable_s=0.001):
        self.stats = [GcStats(g) for g in range(3)]
        # The latest pauses longer than ``notable_s``: (wall time s, generation,
        # seconds), to line a stall up with what else happened then.
        self.recent = deque(maxlen=keep)
        self.notable_s = notable_s
        self._t0 = 0.0
        self._on = False

    def _callback(self, phase, info):
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            took = time.perf_counter() - self._t0
            gen = info["generation"]
            self.stats[gen].add(took, info.get("collected", 0))
            if took > self.notable_s:
                self.recent.append((time.time(), gen, took))

    def start(self):
        if not self._on:
            gc.callbacks.append(self._callback)
            self._on = True
        return self

    def stop(self):
        if self._on:
            gc.callbacks.remove(self._callback)
            self._on = False

    @property
    def worst(self):
        return max(s.worst for s in self.stats)

    def __repr__(self):
        return "<GcWatch " + " ".join(repr(s) for s in self.stats) + ">"


def settle_gc(thresholds):
    """Collect once, freeze what survived (the process's long-lived state:
    imports, config, actors) out of every later scan, and set the
    collector's ``thresholds`` (gen0, gen1, gen2)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


class GcPacer:
    """Collect the young generations every ``period_s`` from the loop,
    generation 1 every ``gen1_every`` times: each pause stays the size of
    what survived a few periods, however frees and allocations balance.
    Generation 2 is left to CPython's own rule (its threshold, and 25 % of
    the long-lived objects new since the last full pass)."""

    def __init__(self, period_s=0.05, gen1_every=4):
        self.period_s = period_s
        self.gen1_every = max(1, int(gen1_every))
        self._timer = None
        self.ticks = 0

    def start(self, loop=None):
        if self._timer is None and self.period_s > 0:
            if loop is None:
                from gevent import get_hub
                loop = get_hub().loop
            self._timer = loop.timer(self.period_s, self.period_s)
            self._timer.ref = False        # never what keeps a loop alive
            self._timer.start(self._tick)
        return self

    def _tick(self):
        self.ticks += 1
        gc.collect(1 if gc.get_count()[1] + 1 >= self.gen1_every else 0)

    def stop(self):
        if self._timer is not None:
            self._timer.stop()
            self._timer.close()
            self._timer = None

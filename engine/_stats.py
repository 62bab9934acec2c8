"""Statistics objects: one per actor (its mailbox and its life), one for the
system's dead letters. The REPL and ``/metrics`` read the same objects.

    >>> from engine import ActorSystem, Actor
    >>> class Echo(Actor):
    ...     def receive(self, msg): return msg
    >>> system = ActorSystem()
    >>> ref = system.spawn(Echo, name="echo")
    >>> ref.ask("hi", timeout=1)
    'hi'
    >>> ref.stats.processed
    1
    >>> system.stop()
"""
from collections import deque

__all__ = ["ActorStats", "StatsTable", "DeadLetters"]


class ActorStats:
    """Live counters of one actor. ``depth`` reads the mailbox at call time."""
    __slots__ = ("name", "path", "processed", "failures",
                 "restarts", "rejected", "capacity", "_mailbox", "_cell")

    def __init__(self, cell, mailbox, capacity):
        self._cell = cell
        self.name = cell.name
        self.path = cell.path
        self.processed = 0
        self.failures = 0
        self.restarts = 0
        self.rejected = 0
        self.capacity = capacity
        self._mailbox = mailbox

    @property
    def state(self):
        return self._cell.state

    @property
    def peak(self):
        return self._cell.peak

    @property
    def depth(self):
        return len(self._mailbox)

    def as_dict(self):
        return {"name": self.name, "path": self.path, "state": self.state,
                "depth": self.depth, "peak": self.peak, "processed": self.processed,
                "failures": self.failures, "restarts": self.restarts,
                "rejected": self.rejected, "capacity": self.capacity}

    def __repr__(self):
        return ("<ActorStats {name} {state} depth={depth} peak={peak} "
                "processed={processed} failures={failures} restarts={restarts}>"
                .format(**self.as_dict()))


class StatsTable(list):
    """A list of :class:`ActorStats` that prints as a table at the REPL."""

    COLUMNS = ("name", "state", "depth", "peak", "processed", "failures", "restarts")

    def __repr__(self):
        rows = [self.COLUMNS] + [tuple(str(s.as_dict()[c]) for c in self.COLUMNS) for s in self]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.COLUMNS))]
        return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


class DeadLetters:
    """Count of undeliverable messages and the most recent few, by reason."""

    def __init__(self, keep=1000):
        self.count = 0
        self.by_reason = {}
        self.recent = deque(maxlen=keep)

    def record(self, letter):
        self.count += 1
        self.by_reason[letter.reason] = self.by_reason.get(letter.reason, 0) + 1
        self.recent.append(letter)

    def __repr__(self):
        return f"<DeadLetters count={self.count} by_reason={self.by_reason}>"
